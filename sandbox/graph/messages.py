"""Messages: list/get with OData, drafts, PATCH, delete, move/copy, the reply/forward family,
sendMail and draft send (with delivery to sandbox mailboxes), and MIME export."""

from __future__ import annotations

import base64
import binascii
import html
import logging
from typing import Any

from sandbox.graph import errors, odata, rules, schema
from sandbox.graph.calls import Call, page
from sandbox.graph.errors import GraphError
from sandbox.graph.mime import message_mime
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import (
    READ_ONLY_PROPS,
    Attachment,
    Folder,
    Mailbox,
    Message,
    apply_fields,
    default_props,
)
from sandbox.graph.views import message_json

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 10
# Properties Exchange lets a client set only while the message is a draft.
DRAFT_ONLY = frozenset(
    {
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "from",
        "sender",
        "subject",
        "body",
        "internetMessageId",
        "internetMessageHeaders",
    }
)
CLIENT_READ_ONLY = READ_ONLY_PROPS | {"receivedDateTime", "sentDateTime"}


# --- reading -----------------------------------------------------------------------------
def list_messages(call: Call, folder: Folder | None) -> GraphResponse:
    call.authorize("read")
    query = odata.parse_query(call.request.params, entity="message")
    mailbox = call.mailbox
    if folder is None:
        visible = {f.id for f in mailbox.folders.values() if mailbox.is_visible(f)}
        items = [m for m in mailbox.messages.values() if m.folder_id in visible]
        context = "messages"
    else:
        items = [m for m in mailbox.messages.values() if m.folder_id == folder.id]
        context = f"mailFolders('{folder.id}')/messages"
    items.sort(key=lambda m: m.seq, reverse=True)
    skip = query.skip
    if query.search is not None:
        search = query.search
        items = [
            m
            for m in items
            if search.matches({**m.props, "attachmentNames": [a.name for a in m.attachments]})
        ]
        # Search results come sorted by the date and time the message was sent.
        items.sort(key=lambda m: m.props["sentDateTime"], reverse=True)
        items = items[: odata.MAX_SEARCH_RESULTS]
        skip = query.skiptoken or 0
    else:
        if query.filter is not None:
            node = query.filter
            items = [m for m in items if odata.evaluate(node, m.props)]
        orderby = query.orderby or [("receivedDateTime", True)]
        for path, descending in reversed(orderby):
            key = odata.sort_key(path)
            items.sort(key=lambda m, key=key: key(m.props), reverse=descending)  # type: ignore[misc]
        if query.skiptoken is not None:
            skip = query.skiptoken
    immutable = call.immutable
    body = page(
        call,
        items,
        lambda m: message_json(
            m,
            body_type=call.request.body_type,
            immutable=immutable,
            select=query.select,
            expand_attachments=query.expand_attachments,
            expand_select=query.expand_attachment_select,
        ),
        top=query.top,
        skip=skip,
        default_size=DEFAULT_PAGE_SIZE,
        count=query.count,
        context=context,
        use_skiptoken=query.search is not None,
    )
    return GraphResponse(200, body)


def get_message(call: Call, ref: str) -> GraphResponse:
    call.authorize("read")
    query = odata.parse_query(call.request.params, entity="message", collection=False)
    message = call.message(ref)
    body = {"@odata.context": call.context_url("messages/$entity")}
    body.update(
        message_json(
            message,
            immutable=call.immutable,
            body_type=call.request.body_type,
            select=query.select,
            expand_attachments=query.expand_attachments,
            expand_select=query.expand_attachment_select,
        )
    )
    return GraphResponse(200, body)


def message_value(call: Call, ref: str) -> GraphResponse:
    call.authorize("read")
    message = call.message(ref)
    return GraphResponse(200, raw=message_mime(message), content_type="message/rfc822")


def _entity(call: Call, message: Message, status: int = 200) -> GraphResponse:
    body = {"@odata.context": call.context_url("messages/$entity")}
    body.update(message_json(message, immutable=call.immutable, body_type=call.request.body_type))
    return GraphResponse(status, body)


# --- writing -----------------------------------------------------------------------------
def _decode_attachment(call: Call, key: bytes, item: dict[str, Any]) -> Attachment:
    raw = item.get("contentBytes")
    if raw is None:
        raise errors.bad_request(
            "The fileAttachment's contentBytes is required.", "ErrorInvalidRequest"
        )
    try:
        content = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise errors.body_read_error(
            "Cannot convert the literal to the expected type 'Edm.Binary'."
        ) from None
    name = item.get("name")
    if not name:
        raise errors.bad_request("The attachment's name is required.", "ErrorInvalidRequest")
    return call.store.new_attachment(
        call.mailbox,
        key,
        name,
        item.get("contentType") or "application/octet-stream",
        content,
        bool(item.get("isInline", False)),
        item.get("contentId"),
        item.get("contentLocation"),
    )


def _reject_read_only(fields: dict[str, Any]) -> None:
    for name in fields:
        if name in CLIENT_READ_ONLY:
            raise GraphError(400, "ErrorInvalidPropertySet", "Set action is invalid for property.")


def new_draft_props(call: Call, fields: dict[str, Any]) -> dict[str, Any]:
    now = call.store.now()
    props = default_props(now, conversation_seed=call.store.new_key(12))
    props["isDraft"] = True
    props["isRead"] = True
    apply_fields(props, fields)
    return props


def create_draft(call: Call, folder: Folder | None) -> GraphResponse:
    call.authorize("write")
    fields = schema.check_object("message", _object(call.request.json()))
    _reject_read_only(fields)
    props = new_draft_props(call, fields)
    key = call.store.new_key()
    attachments = [_decode_attachment(call, key, a) for a in fields.get("attachments") or []]
    destination = folder or call.mailbox.wk("drafts")
    message = call.store.add_message(call.mailbox, destination, props, attachments, key=key)
    response = _entity(call, message, 201)
    response.headers["Location"] = (
        f"{call.graph_base}{call.target.base_path}/messages/{message.id_for(call.immutable)}"
    )
    return response


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise errors.body_read_error("The request body must be a JSON object.")
    return value


def update_message(call: Call, ref: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(ref)
    fields = schema.check_object("message", _object(call.request.json()))
    if "attachments" in fields:
        raise errors.bad_request("Attachments are added with POST .../attachments.")
    _reject_read_only(fields)
    if not message.props["isDraft"] and any(name in DRAFT_ONLY for name in fields):
        raise GraphError(
            400,
            "ErrorInvalidPropertyUpdateSentMessage",
            "Update operation is not supported for some property on a sent message.",
        )
    apply_fields(message.props, fields)
    call.store.touch(message)
    call.store.updated(call.mailbox, message)
    return _entity(call, message)


def delete_message(call: Call, ref: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(ref)
    call.store.soft_delete(call.mailbox, message)
    return GraphResponse(204)


def permanent_delete(call: Call, ref: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(ref)
    schema.check_action("permanentDelete", call.request.json(required=False))
    call.store.purge(call.mailbox, message)
    return GraphResponse(204)


def destination(call: Call, ref: Any) -> Folder:
    if not isinstance(ref, str) or not ref:
        raise errors.bad_request(
            "The DestinationId parameter is required.", "ErrorInvalidIdMalformed"
        )
    return call.folder(ref)


def move_or_copy(call: Call, ref: str, action: str) -> GraphResponse:
    call.authorize("write")
    message = call.message(ref)
    params = schema.check_action(action, call.request.json())
    folder = destination(call, params.get("DestinationId"))
    if action == "move":
        result = call.store.move(call.mailbox, message, folder)
    else:
        result = call.store.copy(call.mailbox, message, folder)
    return _entity(call, result, 201)


# --- replies and forwards ----------------------------------------------------------------
def _address(recipient: dict[str, Any] | None) -> str:
    return str(((recipient or {}).get("emailAddress") or {}).get("address") or "").lower()


def _quoted_body(original: Message, comment: str | None) -> dict[str, Any]:
    props = original.props
    body = props.get("body") or {}
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() != "html":
        content = f"<div>{html.escape(content)}</div>"
    sender = (props.get("from") or {}).get("emailAddress") or {}
    header = (
        "<hr><div><b>From:</b> "
        + html.escape(f"{sender.get('name') or ''} <{sender.get('address') or ''}>")
        + f"<br><b>Sent:</b> {html.escape(props.get('sentDateTime') or '')}"
        + f"<br><b>Subject:</b> {html.escape(props.get('subject') or '')}</div>"
    )
    intro = f"<div>{html.escape(comment)}</div>" if comment else ""
    return {"contentType": "html", "content": f"<html><body>{intro}{header}{content}</body></html>"}


def _prefixed(prefix: str, subject: str) -> str:
    return subject if subject.lower().startswith(prefix.lower()) else f"{prefix} {subject}"


def build_response_draft(
    call: Call, original: Message, action: str, params: dict[str, Any]
) -> tuple[dict[str, Any], list[Attachment], bytes]:
    """The draft that createReply/createReplyAll/createForward make (and reply/forward send)."""
    comment = params.get("Comment")
    overrides: dict[str, Any] = dict(params.get("Message") or {})
    if comment and overrides.get("body"):
        raise errors.bad_request(
            "Specify either the Comment parameter or the body of the Message parameter, not both.",
            "ErrorInvalidRequest",
        )
    _reject_read_only(overrides)
    me = call.mailbox.upn
    props = original.props
    fields: dict[str, Any] = {"body": _quoted_body(original, comment)}
    attachments: list[Attachment] = []
    key = call.store.new_key()
    if action in ("createReply", "reply", "createReplyAll", "replyAll"):
        fields["subject"] = _prefixed("RE:", props.get("subject") or "")
        # Graph addresses the reply to the sender; honouring replyTo is left to the client, as
        # the createReply documentation says.
        to = [props["from"]] if props.get("from") else []
        cc: list[dict[str, Any]] = []
        if action in ("createReplyAll", "replyAll"):
            seen = {_address(r) for r in to}
            for recipient in props.get("toRecipients") or []:
                if _address(recipient) not in seen and _address(recipient) != me:
                    to.append(recipient)
                    seen.add(_address(recipient))
            cc = [
                r
                for r in props.get("ccRecipients") or []
                if _address(r) not in seen and _address(r) != me
            ]
        fields["toRecipients"] = to
        fields["ccRecipients"] = cc
    else:
        fields["subject"] = _prefixed("FW:", props.get("subject") or "")
        fields["toRecipients"] = list(params.get("ToRecipients") or [])
        attachments = [call.store.copy_attachment(call.mailbox, a) for a in original.attachments]
    fields.update({k: v for k, v in overrides.items() if k != "attachments"})
    draft = new_draft_props(call, fields)
    draft["conversationId"] = props.get("conversationId")
    draft["conversationIndex"] = props.get("conversationIndex")
    attachments += [_decode_attachment(call, key, a) for a in overrides.get("attachments") or []]
    return draft, attachments, key


def create_response(call: Call, ref: str, action: str) -> GraphResponse:
    call.authorize("write")
    original = call.message(ref)
    params = schema.check_action(action, call.request.json(required=False))
    props, attachments, key = build_response_draft(call, original, action, params)
    draft = call.store.add_message(
        call.mailbox, call.mailbox.wk("drafts"), props, attachments, key=key
    )
    return _entity(call, draft, 201)


def respond(call: Call, ref: str, action: str) -> GraphResponse:
    call.authorize("send")
    original = call.message(ref)
    params = schema.check_action(action, call.request.json(required=False))
    props, attachments, _ = build_response_draft(call, original, action, params)
    send(call, props, attachments, save_to_sent=True)
    return GraphResponse(202)


# --- sending -----------------------------------------------------------------------------
def _has_recipients(props: dict[str, Any]) -> bool:
    return any(props.get(name) for name in ("toRecipients", "ccRecipients", "bccRecipients"))


def _no_recipients() -> GraphError:
    return GraphError(
        400,
        "ErrorInvalidRecipients",
        "At least one recipient isn't valid., A message can't be sent because it contains"
        " no recipients.",
    )


def send(
    call: Call, props: dict[str, Any], attachments: list[Attachment], *, save_to_sent: bool
) -> Message | None:
    """Send as the mailbox: a new item in Sent Items (new ids, as Exchange gives the sent copy)
    and a copy in the Inbox of every recipient who is a sandbox user."""
    if not _has_recipients(props):
        raise _no_recipients()
    props = _as_sent(call, props)
    sent: Message | None = None
    if save_to_sent:
        sent = call.store.add_message(
            call.mailbox, call.mailbox.wk("sentitems"), props, attachments
        )
    _deliver(call, props, attachments)
    return sent


def _as_sent(call: Call, props: dict[str, Any]) -> dict[str, Any]:
    now = call.store.now()
    owner = {"emailAddress": {"name": call.target.user.display_name, "address": call.mailbox.upn}}
    props = dict(props)
    props.update(
        {
            "isDraft": False,
            "isRead": True,
            "sentDateTime": now,
            "receivedDateTime": now,
            "createdDateTime": now,
            "lastModifiedDateTime": now,
        }
    )
    props["from"] = props.get("from") or owner
    props["sender"] = props.get("sender") or props["from"]
    return props


def _deliver(call: Call, props: dict[str, Any], attachments: list[Attachment]) -> None:
    store = call.store
    delivered: set[str] = set()
    for name in ("toRecipients", "ccRecipients", "bccRecipients"):
        for recipient in props.get(name) or []:
            address = _address(recipient)
            if not address or address in delivered:
                continue
            delivered.add(address)
            user = call.ctx.directory.find(address)
            if user is None:
                continue
            mailbox: Mailbox = store.ensure_mailbox(user)
            copy = {k: v for k, v in props.items()}
            copy["isRead"] = False
            copy["bccRecipients"] = []
            copy["flag"] = {"flagStatus": "notFlagged"}
            copy["categories"] = []
            copy["inferenceClassification"] = "focused"
            # Delivery runs the recipient's inbox rules (they decide the folder).
            rules.deliver(
                store,
                mailbox,
                _deep(copy),
                [store.copy_attachment(mailbox, a) for a in attachments],
            )
            logger.info("delivered a message to a sandbox mailbox")


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


def send_mail(call: Call) -> GraphResponse:
    call.authorize("send")
    params = schema.check_action("sendMail", call.request.json())
    fields = params.get("Message")
    if not fields:
        raise errors.bad_request("The Message parameter is required.", "ErrorInvalidRequest")
    _reject_read_only(fields)
    props = new_draft_props(call, fields)
    key = call.store.new_key()
    attachments = [_decode_attachment(call, key, a) for a in fields.get("attachments") or []]
    save = params.get("SaveToSentItems")
    send(call, props, attachments, save_to_sent=True if save is None else bool(save))
    return GraphResponse(202)


def send_draft(call: Call, ref: str) -> GraphResponse:
    call.authorize("send")
    draft = call.message(ref)
    schema.check_action("send", call.request.json(required=False))
    if not draft.props["isDraft"]:
        raise GraphError(400, "ErrorInvalidOperation", "Only draft messages can be sent.")
    if not _has_recipients(draft.props):
        raise _no_recipients()
    # The draft itself becomes the Sent Items copy: its immutable id finds the sent message,
    # as Microsoft documents for immutable ids.
    draft.props.update(_as_sent(call, draft.props))
    call.store.move(call.mailbox, draft, call.mailbox.wk("sentitems"))
    _deliver(call, draft.props, draft.attachments)
    return GraphResponse(202)
