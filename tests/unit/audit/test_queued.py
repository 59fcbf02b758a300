"""Audit events emitted from a worker thread (shared/audit/queued.py): in order, none lost —
not when the queue is full, not when the worker shuts down."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from shared.audit import AuditEvent, MemoryAuditSink, Outcome
from shared.audit.queued import QueuedAuditSink
from tests.support.processes import ROOT


def event(n: int) -> AuditEvent:
    return AuditEvent("mail.read", Outcome.SUCCESS, f"corr-{n}", counts={"items": n})


class GatedSink(MemoryAuditSink):
    """Holds every event until `gate` opens, and records the thread that emitted it."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.threads: set[str] = set()

    def emit(self, event: AuditEvent) -> None:
        self.gate.wait(10)
        self.threads.add(threading.current_thread().name)
        super().emit(event)


def test_events_reach_the_sink_in_order_from_another_thread() -> None:
    inner = GatedSink()
    sink = QueuedAuditSink(inner)

    for n in range(100):
        sink.emit(event(n))  # returns at once: the sink is still held
    assert inner.events == []
    inner.gate.set()
    sink.close()

    assert [e.correlation_id for e in inner.events] == [f"corr-{n}" for n in range(100)]
    assert inner.threads == {"audit-sink"}


def test_a_full_queue_makes_emit_wait_instead_of_dropping() -> None:
    inner = GatedSink()
    sink = QueuedAuditSink(inner, max_queued=2)
    emitted = threading.Event()

    def emit_five() -> None:
        for n in range(5):
            sink.emit(event(n))
        emitted.set()

    producer = threading.Thread(target=emit_five)
    producer.start()
    assert not emitted.wait(0.2)  # one held by the sink, two queued: the fourth waits
    inner.gate.set()
    producer.join(10)
    sink.close()

    assert emitted.is_set()
    assert [e.counts["items"] for e in inner.events] == [0, 1, 2, 3, 4]


def test_close_emits_what_is_queued_and_later_events_go_straight_to_the_sink() -> None:
    inner = MemoryAuditSink()
    sink = QueuedAuditSink(inner)
    for n in range(50):
        sink.emit(event(n))

    sink.close()
    assert len(inner.events) == 50
    sink.emit(event(50))

    assert len(inner.events) == 51
    sink.close()  # idempotent


def test_events_still_queued_at_a_clean_exit_are_emitted(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    # A slow sink and an interpreter that ends right after emitting, without close():
    # the atexit hook must deliver every event before the process is gone.
    script = f"""
import time
from pathlib import Path
from shared.audit import AuditEvent, JsonLinesAuditSink, Outcome
from shared.audit.queued import QueuedAuditSink

class Slow(JsonLinesAuditSink):
    def emit(self, event):
        time.sleep(0.01)
        super().emit(event)

sink = QueuedAuditSink(Slow(Path({str(log)!r})))
for n in range(20):
    sink.emit(AuditEvent("mail.sent", Outcome.SUCCESS, f"corr-{{n}}"))
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["correlation_id"] for r in lines] == [f"corr-{n}" for n in range(20)]
