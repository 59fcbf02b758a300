"""Audit events reach Application Insights as custom events with their dimensions, and with
nothing else: an in-memory OpenTelemetry exporter stands in for the Azure Monitor one, and the
Azure Monitor exporter's own conversion shows the envelope that would be sent."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.monitor.opentelemetry.exporter.export._base import _get_authentication_credential
from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from shared.audit import AuditEvent, Outcome
from shared.audit.sinks import ApplicationInsightsAuditSink

SHARED = Path(__file__).resolve().parents[3] / "shared"
MAILBOX = "alice@contoso.test"
DIMENSIONS = {
    "action",
    "outcome",
    "correlation_id",
    "caller_oid",
    "caller_app_id",
    "tenant_id",
    "connection_id",
    "mailbox",
    "graph_request_id",
    "reason",
    "counts",
    "time",
}
# Attributes OpenTelemetry's logging handler (the one configure_azure_monitor installs) adds by
# itself: where in our code the event left.
BRIDGE = re.compile(r"^code\.")
CUSTOM_EVENT_NAME = "microsoft.custom_event.name"


def emitted_actions() -> list[str]:
    """Every audit action the application emits (so a new one is covered without edits)."""
    pattern = re.compile(r'AuditEvent\(\s*(?:action=)?"([a-z_]+\.[a-z_.]+)"', re.MULTILINE)
    found = set()
    for path in SHARED.rglob("*.py"):
        found.update(pattern.findall(path.read_text(encoding="utf-8")))
    return sorted(found)


@pytest.fixture
def exported() -> Iterator[tuple[ApplicationInsightsAuditSink, InMemoryLogRecordExporter]]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"test.audit.{uuid.uuid4().hex}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        yield ApplicationInsightsAuditSink(logger), exporter
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def full_event(action: str) -> AuditEvent:
    return AuditEvent(
        action=action,
        outcome=Outcome.FAILURE if action.endswith("failed") else Outcome.SUCCESS,
        correlation_id="corr-1",
        caller_oid="0b1c2d3e-0000-4000-8000-000000000001",
        caller_app_id="0b1c2d3e-0000-4000-8000-000000000002",
        tenant_id="8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b",
        connection_id="conn-1",
        mailbox=MAILBOX,
        graph_request_id="graph-req-1",
        reason="invalid_grant" if action.endswith("failed") else None,
        counts={"messages": 3},
    )


def only(exporter: InMemoryLogRecordExporter) -> ReadableLogRecord:
    (record,) = exporter.get_finished_logs()
    return record


def test_the_application_emits_audit_actions() -> None:
    assert len(emitted_actions()) >= 5


@pytest.mark.parametrize("action", emitted_actions())
def test_each_action_arrives_as_a_custom_event_with_its_dimensions(
    exported: tuple[ApplicationInsightsAuditSink, InMemoryLogRecordExporter], action: str
) -> None:
    sink, exporter = exported
    event = full_event(action)

    sink.emit(event)

    record = only(exporter)
    attributes: dict[str, Any] = dict(record.log_record.attributes or {})
    assert record.log_record.body == action
    assert attributes[CUSTOM_EVENT_NAME] == action
    expected = event.to_record()
    expected["counts"] = json.dumps(expected["counts"])
    assert {k: v for k, v in attributes.items() if k in DIMENSIONS} == expected
    # What the Azure Monitor exporter sends: an EventData item named after the action.
    envelope = _convert_log_to_envelope(record)
    assert envelope.data is not None
    assert envelope.data.base_type == "EventData"
    assert envelope.data.base_data.name == action
    properties = dict(envelope.data.base_data.properties)
    assert properties["mailbox"] == MAILBOX
    assert properties["connection_id"] == "conn-1"
    assert properties["outcome"] == str(event.outcome)


@pytest.mark.parametrize("action", emitted_actions())
def test_no_other_data_travels_with_an_event(
    exported: tuple[ApplicationInsightsAuditSink, InMemoryLogRecordExporter], action: str
) -> None:
    sink, exporter = exported

    sink.emit(full_event(action))

    attributes = dict(only(exporter).log_record.attributes or {})
    extra = {k for k in attributes if k not in DIMENSIONS | {CUSTOM_EVENT_NAME}}
    assert all(BRIDGE.match(k) for k in extra), extra
    text = json.dumps(attributes)
    # The only address is the connected mailbox; no token-shaped value rides along.
    assert set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text)) == {MAILBOX}
    assert "eyJ" not in text
    assert "Bearer" not in text


def test_unset_dimensions_are_left_out(
    exported: tuple[ApplicationInsightsAuditSink, InMemoryLogRecordExporter],
) -> None:
    sink, exporter = exported

    sink.emit(AuditEvent("auth.denied", Outcome.DENIED, reason="bad_audience"))

    attributes = dict(only(exporter).log_record.attributes or {})
    assert {k for k in attributes if k in DIMENSIONS} == {"action", "outcome", "reason", "time"}


def test_ingestion_uses_the_managed_identity_named_in_the_authentication_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # infra/main.bicep sets this app setting; Application Insights refuses keyed ingestion.
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "ClientId=11111111-2222-3333-4444-555555555555;Authorization=AAD",
    )

    credential = _get_authentication_credential()

    assert type(credential).__name__ == "ManagedIdentityCredential"
