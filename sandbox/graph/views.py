"""Graph's JSON for messages, folders and attachments, rendered from the store."""

from __future__ import annotations

import base64
import html
import re
from typing import Any
from urllib.parse import quote

from sandbox.graph.store import Attachment, Folder, Mailbox, Message
from sandbox.graph.unique_body import unique_body

# Graph returns these only when $select asks for them.
SELECT_ONLY = ("internetMessageHeaders", "uniqueBody")
MESSAGE_ORDER = (
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def web_link(message_id: str) -> str:
    return (
        "https://outlook.office365.com/owa/?ItemID="
        f"{quote(message_id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem"
    )


def html_body(content: str) -> str:
    """How Exchange renders a plain-text body as HTML."""
    escaped = html.escape(content).replace("\r\n", "\n").replace("\n", "<br>\r\n")
    return (
        '<html><head>\r\n<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"</head><body><div>{escaped}</div></body></html>"
    )


def text_body(content: str) -> str:
    """How Exchange renders an HTML body as text (tags dropped, entities decoded)."""
    content = re.sub(r"(?is)<(script|style|head)[^>]*>.*?</\1>", "", content)
    content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\r\n", content)
    return html.unescape(re.sub(r"<[^>]+>", "", content)).strip()


def render_body(body: dict[str, Any] | None, body_type: str | None) -> dict[str, Any] | None:
    """Graph returns bodies as HTML unless `Prefer: outlook.body-content-type="text"`;
    `body_type` None returns the body as stored (the control API's view)."""
    if body is None or body_type is None:
        copied: dict[str, Any] | None = _copy(body)
        return copied
    stored = str(body.get("contentType", "text")).lower()
    content = str(body.get("content") or "")
    if stored == body_type:
        return {"contentType": body_type, "content": content}
    if body_type == "text":
        return {"contentType": "text", "content": text_body(content)}
    return {"contentType": "html", "content": html_body(content)}


def message_json(
    message: Message,
    *,
    immutable: bool,
    select: list[str] | None = None,
    expand_attachments: bool = False,
    body_type: str | None = "html",
    expand_select: list[str] | None = None,
) -> dict[str, Any]:
    props = message.props
    message_id = message.id_for(immutable)
    out: dict[str, Any] = {
        "@odata.etag": f'W/"{props["changeKey"]}"',
        "id": message_id,
    }
    names = select if select is not None else MESSAGE_ORDER
    for name in names:
        if name == "id":
            continue
        if name == "webLink":
            out[name] = web_link(message_id)
        elif name == "body":
            out[name] = render_body(props.get("body"), body_type)
        elif name == "uniqueBody":
            out[name] = render_body(unique_body(props.get("body")), body_type)
        else:
            out[name] = _copy(props.get(name))
    if expand_attachments:
        out["attachments"] = [
            attachment_json(
                a,
                include_content=expand_select is None or "contentBytes" in expand_select,
                select=expand_select,
            )
            for a in message.attachments
        ]
    return out


def folder_json(
    mailbox: Mailbox, folder: Folder, select: list[str] | None = None
) -> dict[str, Any]:
    children = sum(1 for f in mailbox.folders.values() if f.parent_id == folder.id)
    total = unread = 0
    for message in mailbox.messages.values():
        if message.folder_id == folder.id:
            total += 1
            if not message.props["isRead"]:
                unread += 1
    full: dict[str, Any] = {
        "id": folder.id,
        "displayName": folder.display_name,
        "parentFolderId": folder.parent_id,
        "childFolderCount": children,
        "unreadItemCount": unread,
        "totalItemCount": total,
        "isHidden": folder.is_hidden,
    }
    if select is None:
        return full
    return {"id": folder.id, **{name: full[name] for name in select if name != "id"}}


def attachment_json(
    attachment: Attachment, *, include_content: bool = True, select: list[str] | None = None
) -> dict[str, Any]:
    full: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": attachment.content_type,
        "id": attachment.id,
        "lastModifiedDateTime": attachment.last_modified,
        "name": attachment.name,
        "contentType": attachment.content_type,
        "size": attachment.size,
        "isInline": attachment.is_inline,
        "contentId": attachment.content_id,
        "contentLocation": attachment.content_location,
    }
    if include_content:
        full["contentBytes"] = base64.b64encode(attachment.content).decode("ascii")
    if select is None:
        return full
    keep = {"@odata.type", "@odata.mediaContentType", "id", *select}
    if "contentBytes" in select:
        full["contentBytes"] = base64.b64encode(attachment.content).decode("ascii")
    return {k: v for k, v in full.items() if k in keep}
