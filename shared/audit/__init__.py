"""Audit events: what happened, to which connection, by whom — never content or secrets.

Services emit `AuditEvent`s through the `AuditSink` port; `build_audit_sink` picks the sink
from settings (Application Insights when its connection string is set, JSON lines otherwise).
"""

from shared.audit.events import AuditEvent, AuditSink, Outcome
from shared.audit.sinks import JsonLinesAuditSink, MemoryAuditSink, build_audit_sink

__all__ = [
    "AuditEvent",
    "AuditSink",
    "JsonLinesAuditSink",
    "MemoryAuditSink",
    "Outcome",
    "build_audit_sink",
]
