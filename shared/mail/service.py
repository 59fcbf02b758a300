"""Reading mail: list, get, MIME, folders, attachments — for one connection, as its caller.

Each use case opens the connection once (`Mailboxes.open`: the caller authorized, someone
else's is 404; the handle holds the token, refreshed once if Graph says 401), sends its
Graph requests through the handle, and passes Graph's JSON back through an allow-list of
documented fields.
Audit records what was read (connection, mailbox, item count, Graph request-id), never what
it said.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.caller import Caller
from shared.connections.mailbox import ConnectedMailbox, Mailboxes
from shared.graph import CursorCodec, GraphRequest, GraphResponse, ListQuery
from shared.mail.models import ATTACHMENT_FIELDS, FOLDER_FIELDS, MESSAGE_FIELDS, cut_to

# Graph returns uniqueBody (the new text of a reply, without the quoted history) only when
# `$select` names it: such a read selects every documented field, uniqueBody in place of body.
_UNIQUE_FIELDS = MESSAGE_FIELDS - {"body"}
_UNIQUE_SELECT = ",".join(sorted(_UNIQUE_FIELDS - {"id", "attachments"}))

# Folder and attachment listings are small; one page of this size covers real mailboxes.
_PAGE = 100


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class Content:
    data: bytes
    content_type: str
    filename: str | None


# Without $select Graph would inline every attachment's contentBytes.
_ATTACHMENT_SELECT = {"$select": "id,name,contentType,size,isInline,lastModifiedDateTime"}


def audit_read(audit: AuditSink, mb: ConnectedMailbox, response: GraphResponse, count: int) -> None:
    """The one audit event of a read: what was read (connection, mailbox, item count, Graph
    request-id), never what it said."""
    audit.emit(
        AuditEvent(
            "mail.read",
            Outcome.SUCCESS,
            mb.correlation_id,
            connection_id=mb.connection_id,
            mailbox=mb.key,
            graph_request_id=response.request_id,
            counts={"items": count},
        )
    )


class MailReader:
    def __init__(self, mailboxes: Mailboxes, cursors: CursorCodec, audit: AuditSink) -> None:
        self._mailboxes = mailboxes
        self._cursors = cursors
        self._audit = audit

    async def _open(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> ConnectedMailbox:
        return await self._mailboxes.open(caller, connection_id, mailbox, correlation_id=cid)

    def _audit_read(self, mb: ConnectedMailbox, response: GraphResponse, count: int) -> None:
        audit_read(self._audit, mb, response, count)

    async def _page(
        self, mb: ConnectedMailbox, first: GraphRequest, cursor: str | None, fields: frozenset[str]
    ) -> Page:
        # A cursor is checked (signature, expiry, connection, Graph host) before anything is
        # sent; the next link it carries replaces the first request.
        request = (
            GraphRequest("GET", self._cursors.decode(cursor, mb.connection_id)) if cursor else first
        )
        response = await mb.send(request)
        body = response.json() or {}
        items = [cut_to(item, fields) for item in body.get("value", [])]
        next_link = body.get("@odata.nextLink")
        self._audit_read(mb, response, len(items))
        return Page(items, self._cursors.encode(next_link, mb.connection_id) if next_link else None)

    async def list_messages(
        self,
        caller: Caller,
        connection_id: str,
        *,
        folder: str,
        query: ListQuery,
        cursor: str | None,
        mailbox: str | None,
        correlation_id: str,
    ) -> Page:
        mb = await self._open(caller, connection_id, mailbox, correlation_id)
        first = GraphRequest(
            "GET",
            mb.path.messages() if folder == "all" else mb.path.folder_messages(folder),
            params=query.params() if not cursor else None,
        )
        return await self._page(mb, first, cursor, MESSAGE_FIELDS)

    async def get_message(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        *,
        body_type: str,
        include_attachments: bool,
        mailbox: str | None,
        correlation_id: str,
        unique_body: bool = False,
    ) -> dict[str, Any]:
        """One message; with `unique_body`, `uniqueBody` in place of `body`."""
        mb = await self._open(caller, connection_id, mailbox, correlation_id)
        prefer = (f'outlook.body-content-type="{body_type}"',)
        params: dict[str, str] = {}
        if unique_body:
            params["$select"] = _UNIQUE_SELECT
        if include_attachments:
            params["$expand"] = "attachments($select=id,name,contentType,size,isInline)"
        response = await mb.send(
            GraphRequest("GET", mb.path.message(message_id), params=params or None, prefer=prefer)
        )
        fields = _UNIQUE_FIELDS if unique_body else MESSAGE_FIELDS
        message = cut_to(response.json() or {}, fields)
        if "attachments" in message:
            message["attachments"] = [
                cut_to(a, ATTACHMENT_FIELDS) for a in message["attachments"] or []
            ]
        self._audit_read(mb, response, 1)
        return message

    async def get_mime(
        self, caller: Caller, connection_id: str, message_id: str, mailbox: str | None, cid: str
    ) -> bytes:
        mb = await self._open(caller, connection_id, mailbox, cid)
        response = await mb.send(GraphRequest("GET", mb.path.message_mime(message_id)))
        self._audit_read(mb, response, 1)
        return response.content

    async def list_folders(
        self,
        caller: Caller,
        connection_id: str,
        *,
        parent: str | None,
        cursor: str | None,
        mailbox: str | None,
        correlation_id: str,
    ) -> Page:
        mb = await self._open(caller, connection_id, mailbox, correlation_id)
        first = GraphRequest(
            "GET",
            mb.path.child_folders(parent) if parent else mb.path.folders(),
            params={"$top": str(_PAGE)},
        )
        return await self._page(mb, first, cursor, FOLDER_FIELDS)

    async def list_attachments(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        cursor: str | None,
        mailbox: str | None,
        cid: str,
    ) -> Page:
        mb = await self._open(caller, connection_id, mailbox, cid)
        first = GraphRequest("GET", mb.path.attachments(message_id), params=_ATTACHMENT_SELECT)
        # Graph pages a long attachment list like any collection (api.md: attachments too):
        # its nextLink comes back as `nextCursor` and is followed here.
        return await self._page(mb, first, cursor, ATTACHMENT_FIELDS)

    async def get_attachment(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        attachment_id: str,
        mailbox: str | None,
        cid: str,
    ) -> dict[str, Any]:
        mb = await self._open(caller, connection_id, mailbox, cid)
        return await self._attachment_info(mb, message_id, attachment_id)

    async def _attachment_info(
        self, mb: ConnectedMailbox, message_id: str, attachment_id: str
    ) -> dict[str, Any]:
        response = await mb.send(
            GraphRequest(
                "GET", mb.path.attachment(message_id, attachment_id), params=_ATTACHMENT_SELECT
            )
        )
        self._audit_read(mb, response, 1)
        return cut_to(response.json() or {}, ATTACHMENT_FIELDS)

    async def attachment_content(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        attachment_id: str,
        mailbox: str | None,
        cid: str,
    ) -> Content:
        mb = await self._open(caller, connection_id, mailbox, cid)
        info = await self._attachment_info(mb, message_id, attachment_id)
        response = await mb.send(
            GraphRequest("GET", mb.path.attachment_content(message_id, attachment_id))
        )
        self._audit_read(mb, response, 1)
        return Content(
            response.content,
            str(info.get("contentType") or "application/octet-stream"),
            info.get("name"),
        )
