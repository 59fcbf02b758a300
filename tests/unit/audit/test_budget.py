"""The per-worker budget for audit events anonymous requests cause (shared/audit/budget.py)."""

from __future__ import annotations

from shared.audit import AuditEvent, MemoryAuditSink, Outcome
from shared.audit.budget import AuditBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def login(n: int) -> AuditEvent:
    return AuditEvent("auth.login_started", Outcome.SUCCESS, f"corr-{n}")


def test_events_within_the_budget_pass_unchanged() -> None:
    sink = MemoryAuditSink()
    budget = AuditBudget(sink, per_minute=3, clock=Clock())

    for n in range(3):
        budget.emit(login(n))

    assert [e.correlation_id for e in sink.events] == ["corr-0", "corr-1", "corr-2"]


def test_a_flood_is_cut_to_the_budget_with_one_notice_per_minute() -> None:
    sink = MemoryAuditSink()
    budget = AuditBudget(sink, per_minute=3, clock=Clock())

    for n in range(1000):
        budget.emit(login(n))

    assert [e.action for e in sink.events] == ["auth.login_started"] * 3 + ["audit.budget_exceeded"]
    assert sink.events[-1].reason == "auth.login_started"


def test_the_next_minute_reports_how_many_were_dropped_and_passes_again() -> None:
    sink = MemoryAuditSink()
    clock = Clock()
    budget = AuditBudget(sink, per_minute=2, clock=clock)
    for n in range(10):
        budget.emit(login(n))

    clock.now += 60
    budget.emit(login(99))

    suppressed = [e for e in sink.events if e.action == "audit.suppressed"]
    assert [e.counts for e in suppressed] == [{"suppressed": 8}]
    assert sink.events[-1].correlation_id == "corr-99"
