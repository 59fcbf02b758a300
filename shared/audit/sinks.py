"""Audit sinks: JSON lines (local), Application Insights custom events, in-memory (tests)."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from shared.audit.events import AuditEvent, AuditSink
from shared.audit.queued import QueuedAuditSink

AUDIT_LOGGER = "outlook_integration.audit"
# Log records carrying this attribute become customEvents in Application Insights
# (azure-monitor-opentelemetry-exporter's convention), with the other attributes as
# customDimensions.
_CUSTOM_EVENT_NAME = "microsoft.custom_event.name"


class JsonLinesAuditSink:
    """Appends one JSON object per line; safe across threads of one worker.

    The file is opened for each event (it may be moved or deleted between two), its folder
    made when the file cannot be opened for want of it, not checked before every event."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def emit(self, event: AuditEvent) -> None:
        line = json.dumps(event.to_record(), separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            try:
                self._append(line)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._append(line)

    def _append(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


class ApplicationInsightsAuditSink:
    """Sends events as Application Insights custom events through OpenTelemetry logging."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def emit(self, event: AuditEvent) -> None:
        record = event.to_record()
        dims: dict[str, Any] = {
            k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in record.items()
        }
        dims[_CUSTOM_EVENT_NAME] = event.action
        self._logger.info(event.action, extra=dims)


class MemoryAuditSink:
    """Keeps events in a list: for unit tests."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def emit(self, event: AuditEvent) -> None:
        self.events.append(event)


def build_audit_sink(app_insights_connection_string: str | None, jsonl_path: Path) -> AuditSink:
    if not app_insights_connection_string:
        return JsonLinesAuditSink(jsonl_path)
    # Imported here: the distro is heavy and only needed when Application Insights is on.
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(
        connection_string=app_insights_connection_string, logger_name=AUDIT_LOGGER
    )
    logger = logging.getLogger(AUDIT_LOGGER)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # audit events are not logs: keep them out of the host's log
    # Off the request's path (shared/audit/queued.py). The JSON-lines sink above stays
    # synchronous: it is the local one, and a line is in the file when the response is sent.
    return QueuedAuditSink(ApplicationInsightsAuditSink(logger))
