"""Application (app-only) connections: created by an admin for a shared or service mailbox,
used with the app's own client-credentials token, reach limited by Exchange Online's RBAC
for Applications management scope.

Security decisions, each for a reason:
- Only a `Connections.Admin` caller (or a person in ADMIN_GROUP_ID) creates one or changes
  its allow-list: an application connection reaches a mailbox without any person's consent.
- The service proves it can reach the mailbox (`GET /users/{mailbox}/mailFolders/inbox`)
  before storing anything, so that a connection exists only for a mailbox in scope.
- No grant is stored: the token comes from the app's credential, per worker, in memory.
- Who may use it is the creator plus an explicit allow-list; everyone else gets 404, as for
  someone else's delegated connection.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.policy import require_connections_admin
from shared.connections.app_scope import MAIL_ROLES
from shared.connections.models import Connection, ConnectionKind, ConnectionStatus
from shared.errors import (
    ConnectionNotFound,
    FieldError,
    MailboxOutOfScope,
    ReauthRequired,
    ValidationFailed,
)
from shared.graph.client import GraphRequest
from shared.graph.errors import GraphNotFound
from shared.graph.paths import mailbox_segment

if TYPE_CHECKING:
    from shared.auth.caller import Caller
    from shared.connections.mailbox import Mailboxes
    from shared.store.connections import ConnectionStore

logger = logging.getLogger(__name__)

MODE = str(ConnectionKind.APPLICATION)
# How often the lifecycle checks that an application connection still reaches its mailbox.
SCOPE_CHECK_EVERY = timedelta(days=1)
MAX_ALLOWED = 50
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UPN = re.compile(r"^[^\s@<>\"'/\\#?]{1,128}@[a-z0-9.-]{1,253}$")


def allowed_entries(values: Sequence[str]) -> tuple[str, ...]:
    """An allow-list as stored: lower-case, unique, each an object/app id (GUID) or a UPN."""
    cleaned: list[str] = []
    problems: list[FieldError] = []
    if len(values) > MAX_ALLOWED:
        raise ValidationFailed(f"allowed may name at most {MAX_ALLOWED} principals.")
    for index, value in enumerate(values):
        entry = value.strip().lower()
        if not (_GUID.match(entry) or _UPN.match(entry)):
            problems.append(
                FieldError(("body", "allowed", index), "must be an app id, object id or UPN")
            )
        elif entry not in cleaned:
            cleaned.append(entry)
    if problems:
        raise ValidationFailed("allowed is not valid.", errors=problems)
    return tuple(cleaned)


class ApplicationConnections:
    def __init__(
        self,
        store: ConnectionStore,
        mailboxes: Mailboxes,
        audit: AuditSink,
        admin_group_id: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._mailboxes = mailboxes
        self._audit = audit
        self._admin_group = admin_group_id
        self._now = clock

    async def create(
        self,
        caller: Caller,
        mailbox: str,
        *,
        display_name: str | None,
        allowed: Sequence[str],
        correlation_id: str,
    ) -> Connection:
        require_connections_admin(caller, self._admin_group)
        mailbox_segment(mailbox)  # a 400 for anything that is not a UPN or an object id
        mailbox = mailbox.strip().lower()
        entries = allowed_entries(allowed)
        now = self._now()
        connection_id = await self._store.claim_id(
            caller.tenant_id, caller.oid, f"app:{mailbox}", secrets.token_urlsafe(24)
        )
        connection = Connection(
            id=connection_id,
            owner_oid=caller.oid,
            owner_tid=caller.tenant_id,
            mailbox=mailbox,
            scopes=[],
            status=ConnectionStatus.ACTIVE,
            created_at=now,
            # For an application connection: when its reach was last verified.
            last_refreshed_at=now,
            kind=ConnectionKind.APPLICATION,
            allowed=entries,
            display_name=display_name,
        )
        try:
            roles = await self._probe(connection, correlation_id)
        except (MailboxOutOfScope, ReauthRequired, ValidationFailed) as refused:
            self._audit.emit(self._event(caller, connection, correlation_id, refused))
            raise
        # The Entra-granted permissions the app's token carried (none where Exchange's RBAC
        # for Applications alone grants them): losing them later means "admin consent".
        connection = replace(connection, scopes=sorted(roles & MAIL_ROLES))
        await self._store.save_application(connection)
        self._audit.emit(self._event(caller, connection, correlation_id))
        return connection

    async def update_allowed(
        self, caller: Caller, connection_id: str, allowed: Sequence[str], correlation_id: str
    ) -> Connection:
        require_connections_admin(caller, self._admin_group)
        entries = allowed_entries(allowed)
        connection = await self._store.get(connection_id)
        if (
            connection is None
            or not connection.is_application
            or connection.owner_tid != caller.tenant_id
        ):
            raise ConnectionNotFound("No application connection with this id.")
        await self._store.set_allowed(connection.id, entries)
        updated = replace(connection, allowed=entries)
        self._audit.emit(
            AuditEvent(
                "connection.updated",
                Outcome.SUCCESS,
                correlation_id,
                caller_oid=caller.oid,
                caller_app_id=caller.app_id,
                tenant_id=caller.tenant_id,
                connection_id=connection.id,
                mailbox=connection.mailbox,
                mode=MODE,
                counts={"allowed": len(entries)},
            )
        )
        return updated

    async def check_scope(self, started: datetime) -> int:
        """The lifecycle's daily step: each application connection not checked for a day is
        probed once; one that no longer reaches its mailbox becomes `out_of_scope`, one that
        does again becomes `active` (an admin fixed the scope). Returns how many changed."""
        changed = 0
        correlation_id = f"scope-check-{started:%Y%m%dT%H%M%S}"
        for connection in await self._store.list_application():
            checked = connection.last_refreshed_at
            if checked is not None and started - checked < SCOPE_CHECK_EVERY:
                continue
            status = ConnectionStatus.ACTIVE
            reason: str | None = None
            try:
                await self._probe(connection, correlation_id)
            except MailboxOutOfScope:
                status, reason = ConnectionStatus.OUT_OF_SCOPE, "mailbox_out_of_scope"
            except ReauthRequired:
                status, reason = ConnectionStatus.OUT_OF_SCOPE, "app_permission_missing"
            except ValidationFailed:
                status, reason = ConnectionStatus.OUT_OF_SCOPE, "mailbox_not_found"
            await self._store.save_application(
                replace(connection, status=status, last_refreshed_at=started)
            )
            if status is connection.status:
                continue
            changed += 1
            self._audit.emit(
                AuditEvent(
                    f"connection.{status}",
                    Outcome.FAILURE if reason else Outcome.SUCCESS,
                    correlation_id,
                    tenant_id=connection.owner_tid,
                    connection_id=connection.id,
                    mailbox=connection.mailbox,
                    reason=reason,
                    mode=MODE,
                )
            )
        return changed

    async def _probe(self, connection: Connection, correlation_id: str) -> frozenset[str]:
        """Reach the mailbox's inbox with the app's token and return the token's Graph
        permissions; raises MailboxOutOfScope, ReauthRequired (no loginUrl: the app lost its
        Graph permissions) or ValidationFailed (no such mailbox)."""
        mb = self._mailboxes.system(connection, correlation_id=correlation_id)
        request = GraphRequest("GET", f"{mb.path.folders()}/inbox", params={"$select": "id"})
        try:
            await mb.send(request)
        except GraphNotFound:
            raise ValidationFailed(
                "No mailbox with this name or id exists in the tenant.",
                errors=[FieldError(("body", "mailbox"), "no such mailbox")],
            ) from None
        return mb.app_roles

    def _event(
        self,
        caller: Caller,
        connection: Connection,
        correlation_id: str,
        refused: Exception | None = None,
    ) -> AuditEvent:
        return AuditEvent(
            "connection.created",
            Outcome.FAILURE if refused else Outcome.SUCCESS,
            correlation_id,
            caller_oid=caller.oid,
            caller_app_id=caller.app_id,
            tenant_id=caller.tenant_id,
            connection_id=None if refused else connection.id,
            mailbox=connection.mailbox,
            reason=getattr(refused, "code", None),
            mode=MODE,
        )
