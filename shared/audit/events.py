"""The audit event and the port every sink implements."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


@dataclass(frozen=True)
class AuditEvent:
    """Fixed dimensions (security.md "Audit"). No field may hold a token, a secret, a message
    subject or body, or a recipient address other than the connected mailbox."""

    action: str  # e.g. "connection.created", "mail.sent", "auth.denied"
    outcome: Outcome
    correlation_id: str | None = None
    caller_oid: str | None = None
    caller_app_id: str | None = None
    tenant_id: str | None = None
    connection_id: str | None = None
    mailbox: str | None = None
    graph_request_id: str | None = None
    reason: str | None = None  # a stable reason code, never free text from outside
    # How the connection reaches its mailbox (`delegated` / `application`), where it matters.
    mode: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_record(self) -> dict[str, Any]:
        # Field by field rather than dataclasses.asdict, which deep-copies every value: the
        # values are strings and one dict of ints (copied), and this runs once per request.
        record: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None and value != {}:
                record[name] = dict(value) if name == "counts" else value
        record["time"] = self.time.isoformat().replace("+00:00", "Z")
        record["outcome"] = str(self.outcome)
        return record


_FIELD_NAMES = tuple(f.name for f in fields(AuditEvent))


class AuditSink(Protocol):
    def emit(self, event: AuditEvent) -> None: ...
