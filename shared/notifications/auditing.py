"""The audit event of a subscription or delivery outcome, with the connection's dimensions
(never a URL, clientState, signing secret or message content)."""

from __future__ import annotations

from shared.audit import AuditEvent, Outcome
from shared.auth.caller import Caller
from shared.connections.models import Connection


def connection_event(
    action: str,
    outcome: Outcome,
    cid: str,
    connection: Connection,
    *,
    caller: Caller | None = None,
    reason: str | None = None,
    counts: dict[str, int] | None = None,
) -> AuditEvent:
    return AuditEvent(
        action,
        outcome,
        cid,
        caller_oid=caller.oid if caller else None,
        caller_app_id=caller.app_id if caller else None,
        tenant_id=connection.owner_tid,
        connection_id=connection.id,
        mailbox=connection.mailbox,
        reason=reason,
        counts=counts or {},
    )
