"""The slice of Graph's v1.0 metadata (CSDL) that the sandbox emits and accepts, embedded so the
sandbox needs nothing outside the repo at run time. tests/sandbox/graph/test_csdl_fidelity.py
proves every entry here against Microsoft's v1.0-Prod.csdl.

Request bodies are checked against it as Graph's OData layer does: an unknown property or a
value of the wrong type is a 400 `RequestBodyRead`, never silently dropped.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from sandbox.graph.errors import GraphError, body_read_error

# type name -> (base type or None, {property: CSDL type}); structural properties only.
ENTITY_TYPES: dict[str, tuple[str | None, dict[str, str]]] = {
    "entity": (None, {"id": "Edm.String"}),
    "outlookItem": (
        "entity",
        {
            "categories": "Collection(Edm.String)",
            "changeKey": "Edm.String",
            "createdDateTime": "Edm.DateTimeOffset",
            "lastModifiedDateTime": "Edm.DateTimeOffset",
        },
    ),
    "message": (
        "outlookItem",
        {
            "bccRecipients": "Collection(graph.recipient)",
            "body": "graph.itemBody",
            "bodyPreview": "Edm.String",
            "ccRecipients": "Collection(graph.recipient)",
            "conversationId": "Edm.String",
            "conversationIndex": "Edm.Binary",
            "flag": "graph.followupFlag",
            "from": "graph.recipient",
            "hasAttachments": "Edm.Boolean",
            "importance": "graph.importance",
            "inferenceClassification": "graph.inferenceClassificationType",
            "internetMessageHeaders": "Collection(graph.internetMessageHeader)",
            "internetMessageId": "Edm.String",
            "isDeliveryReceiptRequested": "Edm.Boolean",
            "isDraft": "Edm.Boolean",
            "isRead": "Edm.Boolean",
            "isReadReceiptRequested": "Edm.Boolean",
            "parentFolderId": "Edm.String",
            "receivedDateTime": "Edm.DateTimeOffset",
            "replyTo": "Collection(graph.recipient)",
            "sender": "graph.recipient",
            "sentDateTime": "Edm.DateTimeOffset",
            "subject": "Edm.String",
            "toRecipients": "Collection(graph.recipient)",
            "uniqueBody": "graph.itemBody",
            "webLink": "Edm.String",
        },
    ),
    "mailFolder": (
        "entity",
        {
            "childFolderCount": "Edm.Int32",
            "displayName": "Edm.String",
            "isHidden": "Edm.Boolean",
            "parentFolderId": "Edm.String",
            "totalItemCount": "Edm.Int32",
            "unreadItemCount": "Edm.Int32",
        },
    ),
    "attachment": (
        "entity",
        {
            "contentType": "Edm.String",
            "isInline": "Edm.Boolean",
            "lastModifiedDateTime": "Edm.DateTimeOffset",
            "name": "Edm.String",
            "size": "Edm.Int32",
        },
    ),
    "fileAttachment": (
        "attachment",
        {
            "contentBytes": "Edm.Binary",
            "contentId": "Edm.String",
            "contentLocation": "Edm.String",
        },
    ),
    # GET/POST me/outlook/masterCategories.
    "outlookCategory": ("entity", {"color": "graph.categoryColor", "displayName": "Edm.String"}),
    # mailFolders/inbox/messageRules (sandbox/graph/rules.py).
    "messageRule": (
        "entity",
        {
            "actions": "graph.messageRuleActions",
            "conditions": "graph.messageRulePredicates",
            "displayName": "Edm.String",
            "exceptions": "graph.messageRulePredicates",
            "hasError": "Edm.Boolean",
            "isEnabled": "Edm.Boolean",
            "isReadOnly": "Edm.Boolean",
            "sequence": "Edm.Int32",
        },
    ),
}

# Navigation properties (CSDL <NavigationProperty>) of the entity types above.
NAVIGATION: dict[str, dict[str, str]] = {
    "message": {
        "attachments": "Collection(graph.attachment)",
        "extensions": "Collection(graph.extension)",
        "multiValueExtendedProperties": "Collection(graph.multiValueLegacyExtendedProperty)",
        "singleValueExtendedProperties": "Collection(graph.singleValueLegacyExtendedProperty)",
    },
    "mailFolder": {
        "childFolders": "Collection(graph.mailFolder)",
        "messageRules": "Collection(graph.messageRule)",
        "messages": "Collection(graph.message)",
        "multiValueExtendedProperties": "Collection(graph.multiValueLegacyExtendedProperty)",
        "singleValueExtendedProperties": "Collection(graph.singleValueLegacyExtendedProperty)",
    },
}

COMPLEX_TYPES: dict[str, dict[str, str]] = {
    "recipient": {"emailAddress": "graph.emailAddress"},
    "emailAddress": {"address": "Edm.String", "name": "Edm.String"},
    "itemBody": {"content": "Edm.String", "contentType": "graph.bodyType"},
    "followupFlag": {
        "completedDateTime": "graph.dateTimeTimeZone",
        "dueDateTime": "graph.dateTimeTimeZone",
        "flagStatus": "graph.followupFlagStatus",
        "startDateTime": "graph.dateTimeTimeZone",
    },
    "dateTimeTimeZone": {"dateTime": "Edm.String", "timeZone": "Edm.String"},
    "internetMessageHeader": {"name": "Edm.String", "value": "Edm.String"},
    # mailboxSettings/automaticRepliesSetting (GET, PATCH through mailboxSettings).
    "automaticRepliesSetting": {
        "externalAudience": "graph.externalAudienceScope",
        "externalReplyMessage": "Edm.String",
        "internalReplyMessage": "Edm.String",
        "scheduledEndDateTime": "graph.dateTimeTimeZone",
        "scheduledStartDateTime": "graph.dateTimeTimeZone",
        "status": "graph.automaticRepliesStatus",
    },
    "localeInfo": {"displayName": "Edm.String", "locale": "Edm.String"},
    # getMailTips' answer, one per address.
    "mailTips": {
        "automaticReplies": "graph.automaticRepliesMailTips",
        "customMailTip": "Edm.String",
        "deliveryRestricted": "Edm.Boolean",
        "emailAddress": "graph.emailAddress",
        "error": "graph.mailTipsError",
        "externalMemberCount": "Edm.Int32",
        "isModerated": "Edm.Boolean",
        "mailboxFull": "Edm.Boolean",
        "maxMessageSize": "Edm.Int32",
        "recipientScope": "graph.recipientScopeType",
        "recipientSuggestions": "Collection(graph.recipient)",
        "totalMemberCount": "Edm.Int32",
    },
    "automaticRepliesMailTips": {
        "message": "Edm.String",
        "messageLanguage": "graph.localeInfo",
        "scheduledEndTime": "graph.dateTimeTimeZone",
        "scheduledStartTime": "graph.dateTimeTimeZone",
    },
    "mailTipsError": {"code": "Edm.String", "message": "Edm.String"},
    # An inbox rule's actions and its conditions / exceptions (sandbox/graph/rules.py).
    "messageRuleActions": {
        "assignCategories": "Collection(Edm.String)",
        "copyToFolder": "Edm.String",
        "delete": "Edm.Boolean",
        "forwardAsAttachmentTo": "Collection(graph.recipient)",
        "forwardTo": "Collection(graph.recipient)",
        "markAsRead": "Edm.Boolean",
        "markImportance": "graph.importance",
        "moveToFolder": "Edm.String",
        "permanentDelete": "Edm.Boolean",
        "redirectTo": "Collection(graph.recipient)",
        "stopProcessingRules": "Edm.Boolean",
    },
    "messageRulePredicates": {
        "bodyContains": "Collection(Edm.String)",
        "bodyOrSubjectContains": "Collection(Edm.String)",
        "categories": "Collection(Edm.String)",
        "fromAddresses": "Collection(graph.recipient)",
        "hasAttachments": "Edm.Boolean",
        "headerContains": "Collection(Edm.String)",
        "importance": "graph.importance",
        "isApprovalRequest": "Edm.Boolean",
        "isAutomaticForward": "Edm.Boolean",
        "isAutomaticReply": "Edm.Boolean",
        "isEncrypted": "Edm.Boolean",
        "isMeetingRequest": "Edm.Boolean",
        "isMeetingResponse": "Edm.Boolean",
        "isNonDeliveryReport": "Edm.Boolean",
        "isPermissionControlled": "Edm.Boolean",
        "isReadReceipt": "Edm.Boolean",
        "isSigned": "Edm.Boolean",
        "isVoicemail": "Edm.Boolean",
        "messageActionFlag": "graph.messageActionFlag",
        "notSentToMe": "Edm.Boolean",
        "recipientContains": "Collection(Edm.String)",
        "senderContains": "Collection(Edm.String)",
        "sensitivity": "graph.sensitivity",
        "sentCcMe": "Edm.Boolean",
        "sentOnlyToMe": "Edm.Boolean",
        "sentToAddresses": "Collection(graph.recipient)",
        "sentToMe": "Edm.Boolean",
        "sentToOrCcMe": "Edm.Boolean",
        "subjectContains": "Collection(Edm.String)",
        "withinSizeRange": "graph.sizeRange",
    },
    "sizeRange": {"maximumSize": "Edm.Int32", "minimumSize": "Edm.Int32"},
    "attachmentItem": {
        "attachmentType": "graph.attachmentType",
        "contentId": "Edm.String",
        "contentType": "Edm.String",
        "isInline": "Edm.Boolean",
        "name": "Edm.String",
        "size": "Edm.Int64",
    },
}

ENUM_TYPES: dict[str, tuple[str, ...]] = {
    "importance": ("low", "normal", "high"),
    "followupFlagStatus": ("notFlagged", "complete", "flagged"),
    "bodyType": ("text", "html"),
    "inferenceClassificationType": ("focused", "other"),
    "attachmentType": ("file", "item", "reference"),
    "automaticRepliesStatus": ("disabled", "alwaysEnabled", "scheduled"),
    "externalAudienceScope": ("none", "contactsOnly", "all"),
    "categoryColor": ("none", *(f"preset{i}" for i in range(25))),
    "mailTipsType": (
        "automaticReplies",
        "mailboxFullStatus",
        "customMailTip",
        "externalMemberCount",
        "totalMemberCount",
        "maxMessageSize",
        "deliveryRestriction",
        "moderationStatus",
        "recipientScope",
        "recipientSuggestions",
    ),
    "recipientScopeType": ("none", "internal", "external", "externalPartner", "externalNonPartner"),
    "messageActionFlag": (
        "any",
        "call",
        "doNotForward",
        "followUp",
        "fyi",
        "forward",
        "noResponseNecessary",
        "read",
        "reply",
        "replyToAll",
        "review",
    ),
    "sensitivity": ("normal", "personal", "private", "confidential"),
}
# Enums declared IsFlags="true": a value is a comma-separated list of members.
FLAGS_ENUMS = frozenset({"mailTipsType", "recipientScopeType"})

# mailboxSettings' properties (a complex type); the sandbox stores them all but implements the
# semantics of automaticRepliesSetting only (the rest is kept and echoed as written).
MAILBOX_SETTINGS_PROPERTIES: dict[str, str] = {
    "archiveFolder": "Edm.String",
    "automaticRepliesSetting": "graph.automaticRepliesSetting",
    "dateFormat": "Edm.String",
    "delegateMeetingMessageDeliveryOptions": "graph.delegateMeetingMessageDeliveryOptions",
    "language": "graph.localeInfo",
    "timeFormat": "Edm.String",
    "timeZone": "Edm.String",
    "userPurpose": "graph.userPurpose",
    "workingHours": "graph.workingHours",
}
# The mailboxSettings properties a PATCH may change in the sandbox (the others are typed by
# types the sandbox does not embed: a PATCH naming them is refused as unsupported).
MAILBOX_SETTINGS_WRITABLE = frozenset(
    {"automaticRepliesSetting", "dateFormat", "language", "timeFormat", "timeZone"}
)

# Bound actions' parameters (CSDL <Action IsBound="true">, binding parameter left out).
ACTION_PARAMETERS: dict[str, dict[str, str]] = {
    "sendMail": {"Message": "graph.message", "SaveToSentItems": "Edm.Boolean"},
    "createReply": {"Message": "graph.message", "Comment": "Edm.String"},
    "createReplyAll": {"Message": "graph.message", "Comment": "Edm.String"},
    "createForward": {
        "ToRecipients": "Collection(graph.recipient)",
        "Message": "graph.message",
        "Comment": "Edm.String",
    },
    "reply": {"Message": "graph.message", "Comment": "Edm.String"},
    "replyAll": {"Message": "graph.message", "Comment": "Edm.String"},
    "forward": {
        "ToRecipients": "Collection(graph.recipient)",
        "Message": "graph.message",
        "Comment": "Edm.String",
    },
    "send": {},
    "move": {"DestinationId": "Edm.String"},
    "copy": {"DestinationId": "Edm.String"},
    "permanentDelete": {},
    "createUploadSession": {"AttachmentItem": "graph.attachmentItem"},
    # Bound to graph.user, not graph.message.
    "getMailTips": {
        "EmailAddresses": "Collection(Edm.String)",
        "MailTipsOptions": "graph.mailTipsType",
    },
}

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")


def entity_properties(type_name: str) -> dict[str, str]:
    """Structural properties of an entity type, inherited ones included."""
    props: dict[str, str] = {}
    current: str | None = type_name
    while current is not None:
        base, own = ENTITY_TYPES[current]
        props = {**own, **props}
        current = base
    return props


def structural_properties(type_name: str) -> dict[str, str]:
    if type_name in ENTITY_TYPES:
        return entity_properties(type_name)
    return COMPLEX_TYPES[type_name]


def _unknown_property(name: str, type_name: str) -> GraphError:
    return body_read_error(
        f"The property '{name}' does not exist on type 'microsoft.graph.{type_name}'. Make sure"
        " to only use property names that are defined by the type or mark the type as open type."
    )


def _convert_error(value: Any, edm: str) -> GraphError:
    return body_read_error(f"Cannot convert the literal '{value}' to the expected type '{edm}'.")


def check_value(type_ref: str, value: Any, *, allow_navigation: bool = True) -> Any:
    """Validate `value` against a CSDL type reference; returns it normalised (enum spelling)."""
    if value is None:
        return None
    if type_ref.startswith("Collection("):
        inner = type_ref[len("Collection(") : -1]
        if not isinstance(value, list):
            raise body_read_error(
                "An unexpected 'StartObject' node was found when reading from the JSON reader."
                " A 'StartArray' node was expected."
                if isinstance(value, dict)
                else _convert_error(value, type_ref).message
            )
        return [check_value(inner, item) for item in value]
    if type_ref.startswith("Edm."):
        return _check_primitive(type_ref, value)
    name = type_ref.removeprefix("graph.")
    if name in ENUM_TYPES:
        if not isinstance(value, str):
            raise _convert_error(value, f"microsoft.graph.{name}")
        if name in FLAGS_ENUMS:
            return ", ".join(_enum_member(name, part.strip()) for part in value.split(","))
        return _enum_member(name, value)
    if not isinstance(value, dict):
        raise body_read_error(
            "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader."
            " A 'StartObject' node was expected."
        )
    return check_object(name, value, allow_navigation=allow_navigation)


def _enum_member(name: str, value: str) -> str:
    for member in ENUM_TYPES[name]:
        if member.lower() == value.lower():
            return member
    raise body_read_error(
        f"The value '{value}' is not valid for the enum type 'microsoft.graph.{name}'."
    )


def check_object(
    type_name: str, body: dict[str, Any], *, allow_navigation: bool = True
) -> dict[str, Any]:
    props = structural_properties(type_name)
    navigation = NAVIGATION.get(type_name, {}) if allow_navigation else {}
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata.") or key.startswith("@microsoft.graph."):
            out[key] = value
            continue
        if key in props:
            out[key] = check_value(props[key], value)
        elif key == "attachments" and "attachments" in navigation:
            if not isinstance(value, list):
                raise _convert_error(value, "Collection(microsoft.graph.attachment)")
            out[key] = [check_attachment(item) for item in value]
        elif key in navigation:
            raise GraphError(
                400,
                "BadRequest",
                f"The sandbox does not support the navigation property '{key}' in request bodies.",
            )
        else:
            raise _unknown_property(key, type_name)
    return out


def check_attachment(body: Any) -> dict[str, Any]:
    """An attachment in a request body: its concrete type must be given, as attachment is
    abstract in the CSDL; the sandbox implements fileAttachment only."""
    if not isinstance(body, dict):
        raise _convert_error(body, "microsoft.graph.attachment")
    odata_type = body.get("@odata.type")
    if odata_type is None:
        raise body_read_error(
            "Cannot create an abstract class. The type 'microsoft.graph.attachment' is abstract;"
            " specify '@odata.type'."
        )
    if str(odata_type).lstrip("#").lower() != "microsoft.graph.fileattachment":
        raise GraphError(
            400,
            "BadRequest",
            f"The sandbox supports only '#microsoft.graph.fileAttachment', not '{odata_type}'.",
        )
    return check_object("fileAttachment", body)


def check_action(action: str, body: Any) -> dict[str, Any]:
    """Action parameters, matched case-insensitively as Graph does; keys come back in the
    CSDL spelling."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise body_read_error("The request body must be a JSON object.")
    params = ACTION_PARAMETERS[action]
    by_lower = {name.lower(): name for name in params}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = by_lower.get(key.lower())
        if name is None:
            raise body_read_error(
                f"The parameter '{key}' in the request payload is not a valid parameter for the"
                f" operation '{action}'."
            )
        type_ref = params[name]
        if type_ref == "graph.message":
            if value is not None and not isinstance(value, dict):
                raise _convert_error(value, "microsoft.graph.message")
            out[name] = check_object("message", value) if value is not None else None
        else:
            out[name] = check_value(type_ref, value)
    return out


def _check_primitive(edm: str, value: Any) -> Any:
    if edm == "Edm.String":
        if not isinstance(value, str):
            raise _convert_error(value, edm)
        return value
    if edm == "Edm.Boolean":
        if not isinstance(value, bool):
            raise _convert_error(value, edm)
        return value
    if edm in ("Edm.Int32", "Edm.Int64"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _convert_error(value, edm)
        limit = 2**31 if edm == "Edm.Int32" else 2**63
        if not -limit <= value < limit:
            raise _convert_error(value, edm)
        return value
    if edm == "Edm.DateTimeOffset":
        if not isinstance(value, str) or not _DATETIME.match(value):
            raise _convert_error(value, edm)
        return value
    if edm == "Edm.Binary":
        if not isinstance(value, str):
            raise _convert_error(value, edm)
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _convert_error(value[:40], edm) from None
        return value
    raise _convert_error(value, edm)
