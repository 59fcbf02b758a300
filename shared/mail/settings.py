"""Outlook settings of one connection's mailbox, as its caller: the category list, automatic
replies (read and change) and mail tips for recipients.

Thin on purpose: each use case is one Graph call through the mail services' own plumbing
(`MailReader.send` for reads: authorize, token, one refresh on 401; `MailWriter.graph` and
`audited` for the one write), so it moves with them. Graph's JSON comes back through an
allow-list of the documented fields; audit records counts, never setting texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.graph import GraphRequest, MailboxPath
from shared.mail.models import wire_fields
from shared.mail.settings_models import (
    AutomaticRepliesSetting,
    AutomaticRepliesUpdate,
    MailTips,
    MailTipsRequest,
    OutlookCategory,
)

if TYPE_CHECKING:  # the writer imports httpx: not at cold start
    from shared.auth.caller import Caller
    from shared.connections.models import Connection
    from shared.graph import GraphResponse
    from shared.mail.service import MailReader
    from shared.mail.writer import MailWriter, WriteContext

_CATEGORY_FIELDS = wire_fields(OutlookCategory)
_REPLIES_FIELDS = wire_fields(AutomaticRepliesSetting)
_TIPS_FIELDS = wire_fields(MailTips)


def _only(item: Any, fields: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in dict(item or {}).items() if k in fields}


def categories_path(path: MailboxPath) -> str:
    return f"{path.root}/outlook/masterCategories"


def automatic_replies_path(path: MailboxPath) -> str:
    return f"{path.root}/mailboxSettings/automaticRepliesSetting"


def mailbox_settings_path(path: MailboxPath) -> str:
    return f"{path.root}/mailboxSettings"


def mail_tips_path(path: MailboxPath) -> str:
    return f"{path.root}/getMailTips"


class OutlookSettings:
    def __init__(self, reader: MailReader, writer: MailWriter, audit: AuditSink) -> None:
        self._reader = reader
        self._writer = writer
        self._audit = audit

    async def categories(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> list[dict[str, Any]]:
        connection, response = await self._reader.send(
            caller,
            connection_id,
            lambda p: GraphRequest("GET", categories_path(p)),
            mailbox,
            cid,
        )
        items = [_only(c, _CATEGORY_FIELDS) for c in (response.json() or {}).get("value", [])]
        self._audit_read(connection, mailbox, response, len(items), cid)
        return items

    async def automatic_replies(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> dict[str, Any]:
        connection, response = await self._reader.send(
            caller,
            connection_id,
            lambda p: GraphRequest("GET", automatic_replies_path(p)),
            mailbox,
            cid,
        )
        self._audit_read(connection, mailbox, response, 1, cid)
        return _only(response.json(), _REPLIES_FIELDS)

    async def update_automatic_replies(
        self, ctx: WriteContext, body: AutomaticRepliesUpdate
    ) -> dict[str, Any]:
        patch = {"automaticRepliesSetting": body.graph()}
        async with self._writer.audited("mailbox.automatic_replies_updated", ctx, {"items": 1}):
            response = await self._writer.graph(
                ctx, lambda p: GraphRequest("PATCH", mailbox_settings_path(p), json=patch)
            )
            answered = (response.json() or {}).get("automaticRepliesSetting")
            return _only(answered, _REPLIES_FIELDS)

    async def mail_tips(
        self,
        caller: Caller,
        connection_id: str,
        body: MailTipsRequest,
        mailbox: str | None,
        cid: str,
    ) -> list[dict[str, Any]]:
        payload = body.graph()
        connection, response = await self._reader.send(
            caller,
            connection_id,
            # A POST that only reads: repeating it after a lost answer is harmless.
            lambda p: GraphRequest("POST", mail_tips_path(p), json=payload, idempotent=True),
            mailbox,
            cid,
        )
        items = [_only(t, _TIPS_FIELDS) for t in (response.json() or {}).get("value", [])]
        self._audit_read(connection, mailbox, response, len(items), cid)
        return items

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
