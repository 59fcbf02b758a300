"""Reading mail: list, get, MIME, folders, attachments — for one connection, as its caller.

Each use case: authorize the caller for the connection (someone else's is 404), get the
connection's access token (refreshed once if Graph says 401), send one Graph request through
the client's policies, and pass Graph's JSON back through an allow-list of documented fields.
Audit records what was read (connection, mailbox, item count, Graph request-id), never what
it said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.caller import Caller
from shared.connections.models import Connection
from shared.connections.service import ConnectionService
from shared.connections.tokens import TokenService
from shared.graph import (
    CursorCodec,
    GraphClient,
    GraphRequest,
    GraphResponse,
    GraphUnauthorized,
    ListQuery,
    MailboxPath,
)
from shared.mail.models import AttachmentInfo, MailFolder, Message, wire_fields

_MESSAGE_FIELDS = wire_fields(Message)
_FOLDER_FIELDS = wire_fields(MailFolder)
_ATTACHMENT_FIELDS = wire_fields(AttachmentInfo)
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


def _only(item: Mapping[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in fields}


class MailReader:
    def __init__(
        self,
        connections: ConnectionService,
        tokens: TokenService,
        graph: GraphClient,
        cursors: CursorCodec,
        audit: AuditSink,
    ) -> None:
        self._connections = connections
        self._tokens = tokens
        self._graph = graph
        self._cursors = cursors
        self._audit = audit

    async def send(
        self,
        caller: Caller,
        connection_id: str,
        build: Any,
        mailbox: str | None,
        correlation_id: str,
        *,
        write: bool = False,
    ) -> tuple[Connection, GraphResponse]:
        """Authorize, then send `build(MailboxPath)` as the connection, refreshing once on 401."""
        connection = await self._connections.get(caller, connection_id, write=write)
        request: GraphRequest = build(MailboxPath.of(mailbox))
        mailbox_key = (mailbox or connection.mailbox).lower()
        token = await self._tokens.access_token(connection, correlation_id)
        try:
            response = await self._graph.send(
                request, token=token, mailbox_key=mailbox_key, correlation_id=correlation_id
            )
        except GraphUnauthorized as refused:
            # The cached token was revoked or expired early: one refresh, one more try.
            self._tokens.forget(connection.id)
            if refused.claims:
                # A CAE claims challenge: the one refresh carries the demanded claims.
                token = await self._tokens.refresh_for_claims(
                    connection, refused.claims, correlation_id
                )
            else:
                token = await self._tokens.access_token(
                    connection, correlation_id, force_refresh=True
                )
            response = await self._graph.send(
                request, token=token, mailbox_key=mailbox_key, correlation_id=correlation_id
            )
        return connection, response

    def _audit_read(
        self,
        connection: Connection,
        mailbox: str | None,
        response: GraphResponse,
        count: int,
        cid: str,
    ) -> None:
        self._audit.emit(
            AuditEvent(
                "mail.read",
                Outcome.SUCCESS,
                cid,
                connection_id=connection.id,
                mailbox=(mailbox or connection.mailbox).lower(),
                graph_request_id=response.request_id,
                counts={"items": count},
            )
        )

    async def _page(
        self,
        caller: Caller,
        connection_id: str,
        first: GraphRequest,
        cursor: str | None,
        mailbox: str | None,
        fields: frozenset[str],
        cid: str,
        prefer: tuple[str, ...] = (),
    ) -> Page:
        # A cursor is checked (signature, expiry, connection, Graph host) before anything is
        # sent; the next link it carries replaces the first request.
        request = (
            GraphRequest("GET", self._cursors.decode(cursor, connection_id), prefer=prefer)
            if cursor
            else first
        )
        connection, response = await self.send(
            caller, connection_id, lambda _: request, mailbox, cid
        )
        body = response.json() or {}
        items = [_only(item, fields) for item in body.get("value", [])]
        next_link = body.get("@odata.nextLink")
        self._audit_read(connection, mailbox, response, len(items), cid)
        return Page(items, self._cursors.encode(next_link, connection_id) if next_link else None)

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
        path = MailboxPath.of(mailbox)
        first = GraphRequest(
            "GET",
            path.messages() if folder == "all" else path.folder_messages(folder),
            params=query.params() if not cursor else None,
        )
        return await self._page(
            caller, connection_id, first, cursor, mailbox, _MESSAGE_FIELDS, correlation_id
        )

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
    ) -> dict[str, Any]:
        prefer = (f'outlook.body-content-type="{body_type}"',)
        params = (
            {"$expand": "attachments($select=id,name,contentType,size,isInline)"}
            if (include_attachments)
            else None
        )
        connection, response = await self.send(
            caller,
            connection_id,
            lambda p: GraphRequest("GET", p.message(message_id), params=params, prefer=prefer),
            mailbox,
            correlation_id,
        )
        message = _only(response.json() or {}, _MESSAGE_FIELDS)
        if "attachments" in message:
            message["attachments"] = [
                _only(a, _ATTACHMENT_FIELDS) for a in message["attachments"] or []
            ]
        self._audit_read(connection, mailbox, response, 1, correlation_id)
        return message

    async def get_mime(
        self, caller: Caller, connection_id: str, message_id: str, mailbox: str | None, cid: str
    ) -> bytes:
        connection, response = await self.send(
            caller,
            connection_id,
            lambda p: GraphRequest("GET", p.message_mime(message_id)),
            mailbox,
            cid,
        )
        self._audit_read(connection, mailbox, response, 1, cid)
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
        path = MailboxPath.of(mailbox)
        first = GraphRequest(
            "GET",
            path.child_folders(parent) if parent else path.folders(),
            params={"$top": str(_PAGE)},
        )
        return await self._page(
            caller, connection_id, first, cursor, mailbox, _FOLDER_FIELDS, correlation_id
        )

    async def list_attachments(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        cursor: str | None,
        mailbox: str | None,
        cid: str,
    ) -> Page:
        # Without $select Graph would inline every attachment's contentBytes.
        first = GraphRequest(
            "GET",
            MailboxPath.of(mailbox).attachments(message_id),
            params={"$select": "id,name,contentType,size,isInline,lastModifiedDateTime"},
        )
        return await self._page(
            caller, connection_id, first, None, mailbox, _ATTACHMENT_FIELDS, cid
        )

    async def get_attachment(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        attachment_id: str,
        mailbox: str | None,
        cid: str,
    ) -> dict[str, Any]:
        connection, response = await self.send(
            caller,
            connection_id,
            lambda p: GraphRequest(
                "GET",
                p.attachment(message_id, attachment_id),
                params={"$select": "id,name,contentType,size,isInline,lastModifiedDateTime"},
            ),
            mailbox,
            cid,
        )
        self._audit_read(connection, mailbox, response, 1, cid)
        return _only(response.json() or {}, _ATTACHMENT_FIELDS)

    async def attachment_content(
        self,
        caller: Caller,
        connection_id: str,
        message_id: str,
        attachment_id: str,
        mailbox: str | None,
        cid: str,
    ) -> Content:
        info = await self.get_attachment(
            caller, connection_id, message_id, attachment_id, mailbox, cid
        )
        connection, response = await self.send(
            caller,
            connection_id,
            lambda p: GraphRequest("GET", p.attachment_content(message_id, attachment_id)),
            mailbox,
            cid,
        )
        self._audit_read(connection, mailbox, response, 1, cid)
        return Content(
            response.content,
            str(info.get("contentType") or "application/octet-stream"),
            info.get("name"),
        )
