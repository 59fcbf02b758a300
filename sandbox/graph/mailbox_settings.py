"""A user's Outlook settings: `outlook/masterCategories` (the category list), `mailboxSettings`
(automatic replies and the locale the sandbox keeps), and the `getMailTips` action that reads
them as a sender sees them.

Permissions as Microsoft documents them: categories and settings need MailboxSettings.Read /
MailboxSettings.ReadWrite (no `.Shared` variant exists, so a delegated token reaches only its
own user's); getMailTips needs Mail.Read, like reading that mailbox.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.graph import errors, schema
from sandbox.graph.errors import GraphError
from sandbox.graph.pipeline import GraphResponse
from sandbox.graph.store import parse_datetime

if TYPE_CHECKING:
    from sandbox.graph.calls import Call
    from sandbox.graph.store import Mailbox

# Outlook's default category list for a new mailbox (name, color).
DEFAULT_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("Red category", "preset0"),
    ("Orange category", "preset1"),
    ("Yellow category", "preset3"),
    ("Green category", "preset4"),
    ("Blue category", "preset7"),
    ("Purple category", "preset8"),
)
# Exchange Online's default maximum message size for a recipient (36 MB), in bytes.
MAX_MESSAGE_SIZE = 37_748_736
TENANT_DOMAIN = "contoso.test"
_NS = uuid.UUID("5d6c0b1e-7f0a-4c3e-9b1d-2a8f6e4c3b10")


def category_id(mailbox: Mailbox, name: str) -> str:
    """Deterministic ids (they survive a reset, as the directory's object ids do)."""
    return str(uuid.uuid5(_NS, f"{mailbox.upn}:{name.lower()}"))


def default_categories(mailbox: Mailbox) -> list[dict[str, Any]]:
    return [
        {"id": category_id(mailbox, name), "displayName": name, "color": color}
        for name, color in DEFAULT_CATEGORIES
    ]


def _utc(value: datetime) -> dict[str, str]:
    return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}


def default_settings(mailbox: Mailbox, now: datetime) -> dict[str, Any]:
    """mailboxSettings as Exchange shows a new mailbox: automatic replies off, with a
    scheduled window already filled in (Exchange keeps the last one; a new mailbox shows
    the next day)."""
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return {
        "archiveFolder": mailbox.well_known.get("archive"),
        "timeZone": "UTC",
        "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        "dateFormat": "M/d/yyyy",
        "timeFormat": "h:mm tt",
        "userPurpose": "shared" if mailbox.user.is_shared_mailbox else "user",
        "automaticRepliesSetting": {
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": _utc(start),
            "scheduledEndDateTime": _utc(start + timedelta(days=1)),
        },
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {
            "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "startTime": "08:00:00.0000000",
            "endTime": "17:00:00.0000000",
            "timeZone": {"name": "UTC"},
        },
    }


def _no_query(call: Call) -> None:
    # The product sends none; refusing beats silently ignoring one the sandbox cannot honour.
    if call.request.params:
        raise errors.bad_request("The sandbox supports no query options on this resource.")


# --- outlook/masterCategories -------------------------------------------------------------
def list_categories(call: Call) -> GraphResponse:
    call.authorize("settings_read")
    _no_query(call)
    body = {
        "@odata.context": call.context_url("outlook/masterCategories"),
        "value": [dict(c) for c in call.mailbox.master_categories],
    }
    return GraphResponse(200, body)


def create_category(call: Call) -> GraphResponse:
    call.authorize("settings_write")
    body = call.request.json()
    if not isinstance(body, dict):
        raise errors.body_read_error("The request body must be a JSON object.")
    fields = schema.check_object("outlookCategory", body)
    name = fields.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise errors.bad_request("The displayName is required.", "ErrorInvalidParameter")
    if any(c["displayName"].lower() == name.lower() for c in call.mailbox.master_categories):
        # Code and status not verified against live Graph.
        raise GraphError(409, "ErrorDuplicateCategory", "A category with this name exists.")
    category = {
        "id": category_id(call.mailbox, name),
        "displayName": name,
        "color": fields.get("color") or "none",
    }
    call.mailbox.master_categories.append(category)
    response = GraphResponse(
        201, {"@odata.context": call.context_url("outlook/masterCategories/$entity"), **category}
    )
    response.headers["Location"] = (
        f"{call.graph_base}{call.target.base_path}/outlook/masterCategories('{category['id']}')"
    )
    return response


# --- mailboxSettings ----------------------------------------------------------------------
def get_settings(call: Call, rest: list[str]) -> GraphResponse:
    call.authorize("settings_read")
    _no_query(call)
    settings = call.mailbox.settings
    if not rest:
        context = call.context_url("mailboxSettings")
        return GraphResponse(200, {"@odata.context": context, **_copy(settings)})
    by_lower = {name.lower(): name for name in schema.MAILBOX_SETTINGS_PROPERTIES}
    name = by_lower.get(rest[0].lower())
    if name is None or len(rest) > 1:
        raise errors.unknown_segment(rest[-1])
    value = _copy(settings.get(name))
    context = call.context_url(f"mailboxSettings/{name}")
    if isinstance(value, dict):
        return GraphResponse(200, {"@odata.context": context, **value})
    return GraphResponse(200, {"@odata.context": context, "value": value})


def update_settings(call: Call) -> GraphResponse:
    call.authorize("settings_write")
    body = call.request.json()
    if not isinstance(body, dict):
        raise errors.body_read_error("The request body must be a JSON object.")
    updated: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key not in schema.MAILBOX_SETTINGS_PROPERTIES:
            raise errors.body_read_error(
                f"The property '{key}' does not exist on type 'microsoft.graph.mailboxSettings'."
                " Make sure to only use property names that are defined by the type or mark the"
                " type as open type."
            )
        if key not in schema.MAILBOX_SETTINGS_WRITABLE:
            raise errors.bad_request(f"The sandbox does not support changing '{key}'.")
        updated[key] = schema.check_value(schema.MAILBOX_SETTINGS_PROPERTIES[key], value)
    replies = updated.get("automaticRepliesSetting")
    if replies is not None:
        # A complex value is merged: properties left out keep their value, as Exchange does.
        merged = {**call.mailbox.settings["automaticRepliesSetting"], **replies}
        _check_window(merged)
        updated["automaticRepliesSetting"] = merged
    call.mailbox.settings.update(_copy(updated))
    context = call.context_url("mailboxSettings")
    return GraphResponse(200, {"@odata.context": context, **_copy(updated)})


def _check_window(replies: dict[str, Any]) -> None:
    if replies.get("status") != "scheduled":
        return
    start, end = (
        _instant(replies.get("scheduledStartDateTime")),
        _instant(replies.get("scheduledEndDateTime")),
    )
    if start is None or end is None or end <= start:
        # Wording not verified against live Graph.
        raise errors.bad_request(
            "A scheduled automatic reply needs a start before its end.", "ErrorInvalidParameter"
        )


def _instant(value: Any) -> datetime | None:
    """A dateTimeTimeZone in UTC (the only zone the sandbox converts) as an instant."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        return None
    zone = str(value.get("timeZone") or "UTC")
    if zone.upper() not in ("UTC", "ETC/UTC", "Z"):
        raise errors.bad_request(f"The sandbox converts only UTC times, not '{zone}'.")
    try:
        return parse_datetime(str(value["dateTime"]))
    except ValueError:
        raise errors.body_read_error(
            "Cannot convert the literal to the expected type 'Edm.DateTimeOffset'."
        ) from None


def replying_now(settings: dict[str, Any], now: datetime) -> bool:
    replies = settings.get("automaticRepliesSetting") or {}
    status = replies.get("status")
    if status == "alwaysEnabled":
        return True
    if status != "scheduled":
        return False
    start = _instant(replies.get("scheduledStartDateTime"))
    end = _instant(replies.get("scheduledEndDateTime"))
    return start is not None and end is not None and start <= now < end


# --- getMailTips --------------------------------------------------------------------------
def get_mail_tips(call: Call) -> GraphResponse:
    call.authorize("read")
    params = schema.check_action("getMailTips", call.request.json())
    addresses = params.get("EmailAddresses")
    if not addresses:
        raise errors.bad_request("The EmailAddresses parameter is required.", "ErrorInvalidRequest")
    options = {o.strip() for o in str(params.get("MailTipsOptions") or "").split(",") if o}
    now = call.store.clock()
    value = [_tips(call, str(address), options, now) for address in addresses]
    context = f"{call.graph_base}/$metadata#Collection(microsoft.graph.mailTips)"
    return GraphResponse(200, {"@odata.context": context, "value": value})


def _tips(call: Call, address: str, options: set[str], now: datetime) -> dict[str, Any]:
    tips: dict[str, Any] = {"emailAddress": {"name": "", "address": address}}
    local, at, domain = address.partition("@")
    if not local or not at or not domain or " " in address:
        # Code and wording not verified against live Graph.
        tips["error"] = {"code": "InvalidRecipient", "message": "The recipient is not valid."}
        return tips
    internal = domain.lower() == TENANT_DOMAIN
    user = call.ctx.directory.find(address) if internal else None
    if internal and user is None:
        tips["error"] = {"code": "UnknownRecipient", "message": "The recipient was not found."}
        return tips
    settings = call.store.ensure_mailbox(user).settings if user is not None else {}
    if "automaticReplies" in options:
        tips["automaticReplies"] = _automatic_replies(settings, now)
    if "mailboxFullStatus" in options:
        tips["mailboxFull"] = False
    if "customMailTip" in options:
        tips["customMailTip"] = ""
    if "externalMemberCount" in options:
        tips["externalMemberCount"] = 0
    if "totalMemberCount" in options:
        tips["totalMemberCount"] = 1
    if "maxMessageSize" in options:
        tips["maxMessageSize"] = MAX_MESSAGE_SIZE
    if "deliveryRestriction" in options:
        tips["deliveryRestricted"] = False
    if "moderationStatus" in options:
        tips["isModerated"] = False
    if "recipientScope" in options:
        tips["recipientScope"] = "internal" if internal else "external"
    if "recipientSuggestions" in options:
        tips["recipientSuggestions"] = []
    return tips


def _automatic_replies(settings: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The reply a sender of this tenant would get (senders here are always internal, so the
    internal message applies)."""
    if not settings or not replying_now(settings, now):
        return {"message": ""}
    replies = settings["automaticRepliesSetting"]
    tips: dict[str, Any] = {
        "message": replies.get("internalReplyMessage") or "",
        "messageLanguage": _copy(settings.get("language")),
    }
    if replies.get("status") == "scheduled":
        tips["scheduledStartTime"] = _copy(replies.get("scheduledStartDateTime"))
        tips["scheduledEndTime"] = _copy(replies.get("scheduledEndDateTime"))
    return tips


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
