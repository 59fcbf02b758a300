"""Outlook settings of one connection's mailbox, as its caller: the category list, automatic
replies (read and change) and mail tips for recipients.

Thin on purpose: each use case opens the connected mailbox once (authorized, its token
refreshed once on 401) and makes one Graph call through it; the one write is audited by the
writer's own `audited`. Graph's JSON comes back through an
allow-list of the documented fields; audit records counts, never setting texts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.audit import AuditSink
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
    from shared.connections.mailbox import ConnectedMailbox, Mailboxes
    from shared.mail.writer import MailWriter

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
    def __init__(self, mailboxes: Mailboxes, writer: MailWriter, audit: AuditSink) -> None:
        self._mailboxes = mailboxes
        self._writer = writer
        self._audit = audit

    async def _read(
        self,
        caller: Caller,
        connection_id: str,
        mailbox: str | None,
        cid: str,
        request: Callable[[MailboxPath], GraphRequest],
    ) -> tuple[ConnectedMailbox, dict[str, Any]]:
        from shared.mail.service import audit_read

        mb = await self._mailboxes.open(caller, connection_id, mailbox, correlation_id=cid)
        response = await mb.send(request(mb.path))
        body = response.json() or {}
        count = len(body.get("value", [])) if "value" in body else 1
        audit_read(self._audit, mb, response, count)
        return mb, body

    async def categories(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> list[dict[str, Any]]:
        _, body = await self._read(
            caller, connection_id, mailbox, cid, lambda p: GraphRequest("GET", categories_path(p))
        )
        return [_only(c, _CATEGORY_FIELDS) for c in body.get("value", [])]

    async def automatic_replies(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> dict[str, Any]:
        _, body = await self._read(
            caller,
            connection_id,
            mailbox,
            cid,
            lambda p: GraphRequest("GET", automatic_replies_path(p)),
        )
        return _only(body, _REPLIES_FIELDS)

    async def update_automatic_replies(
        self, mb: ConnectedMailbox, body: AutomaticRepliesUpdate
    ) -> dict[str, Any]:
        patch = {"automaticRepliesSetting": body.graph()}
        async with self._writer.audited("mailbox.automatic_replies_updated", mb, {"items": 1}):
            response = await mb.send(
                GraphRequest("PATCH", mailbox_settings_path(mb.path), json=patch)
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
        _, answered = await self._read(
            caller,
            connection_id,
            mailbox,
            cid,
            # A POST that only reads: repeating it after a lost answer is harmless.
            lambda p: GraphRequest(
                "POST", mail_tips_path(p), json=payload, idempotent=True, reads_only=True
            ),
        )
        return [_only(t, _TIPS_FIELDS) for t in answered.get("value", [])]
