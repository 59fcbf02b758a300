"""Inbox rules: `mailFolders/inbox/messageRules` (Graph's messageRule: list, get, create,
update, delete), and running them, in `sequence` order, on mail delivered to the inbox.

Permissions as Microsoft documents them: reading rules needs MailboxSettings.Read, changing
them MailboxSettings.ReadWrite (no `.Shared` variant: a delegated token reaches only its own
user's rules; app roles of the same names reach every mailbox in the app's scope).

How rules run, as Exchange runs them on delivery:
- enabled rules in ascending `sequence` (creation order between equal ones);
- `conditions`: every predicate given must hold (none given: every message); a collection
  predicate holds when any of its entries does; string tests ignore case; a boolean
  predicate is a condition only when `true`;
- `exceptions`: the rule is skipped when any predicate given there holds;
- actions: `markAsRead`, `markImportance`, `assignCategories` change the message;
  `copyToFolder` files a copy; `moveToFolder` files the message there (a later rule's move
  files a copy, as Outlook documents for several move rules); `delete` moves it to Deleted
  Items; `permanentDelete` drops it; `stopProcessingRules` ends the run;
- the message is stored where the rules leave it, once: a message a rule moves never
  appears in the inbox, and only its final folder's subscriptions are notified `created`
  (Exchange runs server-side rules before the item is saved, so no inbox notification).

Predicates and actions the sandbox does not run (forwarding, headers, meeting and
message-class tests, size...) are refused with 400 when a rule names them, rather than
stored and silently ignored.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.graph import errors, schema
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import MessageRule

if TYPE_CHECKING:
    from sandbox.graph.calls import Call
    from sandbox.graph.store import Attachment, Folder, Mailbox, MailStore, Message

SUPPORTED_PREDICATES = frozenset(
    {
        "subjectContains",
        "bodyContains",
        "bodyOrSubjectContains",
        "fromAddresses",
        "senderContains",
        "recipientContains",
        "sentToAddresses",
        "sentToMe",
        "sentCcMe",
        "sentToOrCcMe",
        "sentOnlyToMe",
        "hasAttachments",
        "importance",
    }
)
SUPPORTED_ACTIONS = frozenset(
    {
        "moveToFolder",
        "copyToFolder",
        "delete",
        "permanentDelete",
        "markAsRead",
        "markImportance",
        "assignCategories",
        "stopProcessingRules",
    }
)
# Set by Exchange, never by a request body.
READ_ONLY = frozenset({"id", "hasError", "isReadOnly"})
# The order Graph renders a rule's properties in.
_ORDER = ("displayName", "sequence", "isEnabled", "hasError", "isReadOnly")


# --- the Graph endpoint -------------------------------------------------------------------
def _inbox(call: Call, folder_ref: str) -> Folder:
    folder = call.folder(folder_ref)
    if folder.well_known != "inbox":
        # Graph keeps rules on the Inbox only; code and wording not verified against live Graph.
        raise errors.bad_request("Message rules exist only on the Inbox folder.")
    return folder


def _find(call: Call, rule_id: str) -> MessageRule:
    for rule in call.mailbox.message_rules:
        if rule.id == rule_id:
            return rule
    raise errors.item_not_found()


def rule_json(rule: MessageRule) -> dict[str, Any]:
    """A rule as Graph renders it: unset predicates and actions left out."""
    out: dict[str, Any] = {"id": rule.id}
    for name in _ORDER:
        out[name] = rule.props.get(name)
    for name in ("conditions", "actions", "exceptions"):
        value = rule.props.get(name)
        if value:
            out[name] = {k: _copy(v) for k, v in value.items() if v is not None}
    return out


def list_rules(call: Call, folder_ref: str) -> GraphResponse:
    call.authorize("settings_read")
    _inbox(call, folder_ref)
    body = {
        "@odata.context": call.context_url(f"mailFolders('{folder_ref}')/messageRules"),
        "value": [rule_json(r) for r in ordered(call.mailbox)],
    }
    return GraphResponse(200, body)


def get_rule(call: Call, folder_ref: str, rule_id: str) -> GraphResponse:
    call.authorize("settings_read")
    _inbox(call, folder_ref)
    return _entity(call, folder_ref, _find(call, rule_id))


def create_rule(call: Call, folder_ref: str) -> GraphResponse:
    call.authorize("settings_write")
    _inbox(call, folder_ref)
    fields = _fields(call)
    mailbox = call.mailbox
    if "sequence" not in fields or fields["sequence"] is None:
        fields["sequence"] = (
            max((r.props["sequence"] for r in mailbox.message_rules), default=0) + 1
        )
    props: dict[str, Any] = {"isEnabled": True, "hasError": False, "isReadOnly": False}
    props.update(fields)
    _check(call, props)
    rule = MessageRule(id=_new_id(call), props=props, created=call.store.next_seq())
    mailbox.message_rules.append(rule)
    response = _entity(call, folder_ref, rule, 201)
    response.headers["Location"] = (
        f"{call.graph_base}{call.target.base_path}/mailFolders/{folder_ref}/messageRules/{rule.id}"
    )
    return response


def update_rule(call: Call, folder_ref: str, rule_id: str) -> GraphResponse:
    call.authorize("settings_write")
    _inbox(call, folder_ref)
    rule = _find(call, rule_id)
    # A complex value (conditions, actions, exceptions) replaces the old one whole; not
    # verified against live Graph.
    props = {**rule.props, **_fields(call)}
    _check(call, props)
    props["hasError"] = False
    rule.props = props
    return _entity(call, folder_ref, rule)


def delete_rule(call: Call, folder_ref: str, rule_id: str) -> GraphResponse:
    call.authorize("settings_write")
    _inbox(call, folder_ref)
    call.mailbox.message_rules.remove(_find(call, rule_id))
    return GraphResponse(204)


def _entity(call: Call, folder_ref: str, rule: MessageRule, status: int = 200) -> GraphResponse:
    context = call.context_url(f"mailFolders('{folder_ref}')/messageRules/$entity")
    return GraphResponse(status, {"@odata.context": context, **rule_json(rule)})


def _new_id(call: Call) -> str:
    # Exchange's rule ids are short base64 strings ("AQAAAJ5dZqA="): 8 bytes, a 1 first.
    # Ids with '/' or '+' are passed over: they would need escaping in a URL path.
    taken = {r.id for r in call.mailbox.message_rules}
    while True:
        candidate = base64.b64encode(b"\x01\x00\x00\x00" + call.store.new_key(4)).decode()
        if candidate not in taken and not {"/", "+"} & set(candidate):
            return candidate


def _fields(call: Call) -> dict[str, Any]:
    body = call.request.json()
    if not isinstance(body, dict):
        raise errors.body_read_error("The request body must be a JSON object.")
    fields = schema.check_object("messageRule", body, allow_navigation=False)
    for name in fields:
        if name in READ_ONLY:
            raise GraphError(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")
    return {k: v for k, v in fields.items() if not k.startswith("@")}


def _check(call: Call, props: dict[str, Any]) -> None:
    """What Exchange requires of a rule (codes and wording not verified against live Graph);
    folder references are resolved and stored as folder ids."""
    name = props.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise errors.bad_request("The displayName is required.", "ErrorInvalidParameter")
    if props.get("sequence") is None or props["sequence"] < 1:
        raise errors.bad_request("The sequence must be 1 or more.", "ErrorInvalidParameter")
    if props.get("isEnabled") is None:
        props["isEnabled"] = True
    for part in ("conditions", "exceptions"):
        for key, value in (props.get(part) or {}).items():
            if _given(value) and key not in SUPPORTED_PREDICATES:
                raise errors.bad_request(f"The sandbox does not run the rule predicate '{key}'.")
    actions = {k: v for k, v in (props.get("actions") or {}).items() if _given(v)}
    for key in actions:
        if key not in SUPPORTED_ACTIONS:
            raise errors.bad_request(f"The sandbox does not run the rule action '{key}'.")
    if not set(actions) - {"stopProcessingRules"}:
        raise errors.bad_request("A rule needs at least one action.", "ErrorInvalidParameter")
    for key in ("moveToFolder", "copyToFolder"):
        if key in actions:
            props["actions"][key] = call.folder(str(actions[key])).id


# --- running the rules on delivery --------------------------------------------------------
def ordered(mailbox: Mailbox) -> list[MessageRule]:
    return sorted(mailbox.message_rules, key=lambda r: (r.props["sequence"], r.created))


@dataclass
class Filing:
    """Where the rules put a delivered message."""

    folder: Folder | None  # None: permanently deleted
    copies: list[Folder] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)  # rule ids, in the order they ran


def deliver(
    store: MailStore,
    mailbox: Mailbox,
    props: dict[str, Any],
    attachments: list[Attachment],
    key: bytes | None = None,
) -> Message | None:
    """Deliver a message to the mailbox's inbox: run its rules, then store the message (and
    any copies) where they leave it. None when a rule deleted it permanently."""
    filing = file_message(mailbox, props, attachments)
    message = None
    if filing.folder is not None:
        message = store.add_message(mailbox, filing.folder, props, attachments, key=key)
    for folder in filing.copies:
        copy = _copy(props)
        store.add_message(
            mailbox, folder, copy, [store.copy_attachment(mailbox, a) for a in attachments]
        )
    return message


def file_message(mailbox: Mailbox, props: dict[str, Any], attachments: list[Attachment]) -> Filing:
    """Run the mailbox's enabled rules on an incoming message: changes `props` in place
    (read state, importance, categories) and says where the message and its copies go."""
    filing = Filing(folder=mailbox.wk("inbox"))
    if not mailbox.message_rules:
        return filing
    incoming = _Incoming.of(mailbox, props, attachments)
    moved = False
    for rule in ordered(mailbox):
        spec = rule.props
        if not spec.get("isEnabled"):
            continue
        if not incoming.meets_all(spec.get("conditions") or {}):
            continue
        if incoming.meets_any(spec.get("exceptions") or {}):
            continue
        filing.applied.append(rule.id)
        actions = spec.get("actions") or {}
        if actions.get("markAsRead"):
            props["isRead"] = True
        if actions.get("markImportance"):
            props["importance"] = actions["markImportance"]
        for category in actions.get("assignCategories") or []:
            if category not in props.setdefault("categories", []):
                props["categories"].append(category)
        for name in ("copyToFolder", "moveToFolder"):
            if not actions.get(name):
                continue
            folder = mailbox.folders.get(actions[name])
            if folder is None:  # the folder was deleted since: Exchange flags the rule
                spec["hasError"] = True
            elif name == "moveToFolder" and not moved:
                filing.folder, moved = folder, True
            elif folder not in filing.copies:
                filing.copies.append(folder)
        if actions.get("delete") and not moved:
            filing.folder, moved = mailbox.wk("deleteditems"), True
        if actions.get("permanentDelete"):
            filing.folder, moved = None, True
        if actions.get("stopProcessingRules"):
            break
    return filing


_TAG = re.compile(r"<[^>]+>")


@dataclass
class _Incoming:
    """The parts of an incoming message the predicates test, lower-cased once."""

    owner: str
    subject: str
    body: str
    sender: str
    sender_name: str
    to: list[tuple[str, str]]  # (address, name)
    cc: list[tuple[str, str]]
    has_attachments: bool
    importance: str

    @classmethod
    def of(
        cls, mailbox: Mailbox, props: dict[str, Any], attachments: list[Attachment]
    ) -> _Incoming:
        body = props.get("body") or {}
        text = str(body.get("content") or "")
        if str(body.get("contentType", "text")).lower() == "html":
            text = html.unescape(_TAG.sub(" ", text))
        sender = (props.get("from") or props.get("sender") or {}).get("emailAddress") or {}
        return cls(
            owner=mailbox.upn.lower(),
            subject=str(props.get("subject") or "").lower(),
            body=text.lower(),
            sender=str(sender.get("address") or "").lower(),
            sender_name=str(sender.get("name") or "").lower(),
            to=_people(props.get("toRecipients")),
            cc=_people(props.get("ccRecipients")),
            has_attachments=any(not a.is_inline for a in attachments),
            importance=str(props.get("importance") or "normal").lower(),
        )

    def meets_all(self, predicates: dict[str, Any]) -> bool:
        tests = [self._test(k, v) for k, v in predicates.items() if _given(v)]
        return all(tests)

    def meets_any(self, predicates: dict[str, Any]) -> bool:
        return any(self._test(k, v) for k, v in predicates.items() if _given(v))

    def _test(self, name: str, value: Any) -> bool:
        to = {a for a, _ in self.to}
        cc = {a for a, _ in self.cc}
        if name == "subjectContains":
            return _contains(self.subject, value)
        if name == "bodyContains":
            return _contains(self.body, value)
        if name == "bodyOrSubjectContains":
            return _contains(self.subject, value) or _contains(self.body, value)
        if name == "fromAddresses":
            return self.sender in _addresses(value)
        if name == "senderContains":
            return _contains(self.sender, value) or _contains(self.sender_name, value)
        if name == "recipientContains":
            return any(
                _contains(address, value) or _contains(name_, value)
                for address, name_ in self.to + self.cc
            )
        if name == "sentToAddresses":
            return bool((to | cc) & _addresses(value))
        if name == "sentToMe":
            return self.owner in to
        if name == "sentCcMe":
            return self.owner in cc
        if name == "sentToOrCcMe":
            return self.owner in to | cc
        if name == "sentOnlyToMe":
            return to | cc == {self.owner}
        if name == "hasAttachments":
            return self.has_attachments
        if name == "importance":
            return self.importance == str(value).lower()
        raise AssertionError(f"unsupported predicate {name}")  # refused when the rule was saved


def _given(value: Any) -> bool:
    """A predicate that takes part: a boolean one only when true, a list only when not
    empty."""
    return value is not None and value is not False and value != []


def _contains(text: str, needles: list[str]) -> bool:
    return any(needle.lower() in text for needle in needles if needle)


def _people(recipients: Any) -> list[tuple[str, str]]:
    out = []
    for recipient in recipients or []:
        email = (recipient or {}).get("emailAddress") or {}
        out.append((str(email.get("address") or "").lower(), str(email.get("name") or "").lower()))
    return out


def _addresses(recipients: list[dict[str, Any]]) -> set[str]:
    return {address for address, _ in _people(recipients) if address}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
