"""One message with `uniqueBody` instead of `body`: the text that is new in it, without the
quoted history below (what a ticketing flow files from a reply).

Graph returns uniqueBody only when `$select` names it, so the message is read with every
documented field selected, uniqueBody in place of body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.graph import GraphRequest
from shared.mail.models import AttachmentInfo, Message, wire_fields

if TYPE_CHECKING:
    from shared.auth.caller import Caller
    from shared.mail.service import MailReader

_SELECT = ",".join(
    sorted(wire_fields(Message) - {"id", "body", "attachments"})  # uniqueBody is among them
)
_FIELDS = wire_fields(Message) - {"body"}
_ATTACHMENT_FIELDS = wire_fields(AttachmentInfo)


async def get_with_unique_body(
    reader: MailReader,
    audit: AuditSink,
    caller: Caller,
    connection_id: str,
    message_id: str,
    *,
    body_type: str,
    include_attachments: bool,
    mailbox: str | None,
    correlation_id: str,
) -> dict[str, Any]:
    params = {"$select": _SELECT}
    if include_attachments:
        params["$expand"] = "attachments($select=id,name,contentType,size,isInline)"
    prefer = (f'outlook.body-content-type="{body_type}"',)
    connection, response = await reader.send(
        caller,
        connection_id,
        lambda p: GraphRequest("GET", p.message(message_id), params=params, prefer=prefer),
        mailbox,
        correlation_id,
    )
    found = response.json() or {}
    message = {k: v for k, v in found.items() if k in _FIELDS}
    if "attachments" in message:
        message["attachments"] = [
            {k: v for k, v in a.items() if k in _ATTACHMENT_FIELDS}
            for a in message["attachments"] or []
        ]
    audit.emit(
        AuditEvent(
            "mail.read",
            Outcome.SUCCESS,
            correlation_id,
            connection_id=connection.id,
            mailbox=(mailbox or connection.mailbox).lower(),
            graph_request_id=response.request_id,
            counts={"items": 1},
        )
    )
    return message
