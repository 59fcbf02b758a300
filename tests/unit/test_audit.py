"""Audit sinks: JSON lines locally, Application Insights custom events when configured."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from shared.audit import AuditEvent, JsonLinesAuditSink, Outcome, build_audit_sink
from shared.audit.sinks import ApplicationInsightsAuditSink


def test_json_lines_sink_appends_one_record_per_event(tmp_path: Path) -> None:
    sink = JsonLinesAuditSink(tmp_path / "audit" / "audit.jsonl")

    sink.emit(AuditEvent("connection.created", Outcome.SUCCESS, connection_id="c1"))
    sink.emit(AuditEvent("auth.denied", Outcome.DENIED, reason="bad_audience"))

    lines = (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["action"] for r in records] == ["connection.created", "auth.denied"]
    assert records[0]["connection_id"] == "c1"
    assert records[1]["outcome"] == "denied"
    assert records[1]["time"].endswith("Z")
    assert "mailbox" not in records[0]  # unset dimensions are left out


def test_without_app_insights_the_json_lines_sink_is_chosen(tmp_path: Path) -> None:
    assert isinstance(build_audit_sink(None, tmp_path / "a.jsonl"), JsonLinesAuditSink)


def test_app_insights_sink_emits_custom_events(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.audit")
    sink = ApplicationInsightsAuditSink(logger)

    with caplog.at_level(logging.INFO, logger="test.audit"):
        sink.emit(AuditEvent("mail.sent", Outcome.SUCCESS, counts={"recipients": 2}))

    record = caplog.records[0]
    assert record.getMessage() == "mail.sent"
    assert getattr(record, "microsoft.custom_event.name") == "mail.sent"
    assert record.outcome == "success"  # type: ignore[attr-defined]
    assert json.loads(record.counts) == {"recipients": 2}  # type: ignore[attr-defined]
