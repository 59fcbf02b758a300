"""A per-worker budget for audit events that anonymous requests cause (a sign-in started, a
callback that failed): anyone can send those requests, so without a budget anyone could grow
the audit log as fast as they can send them.

Fixed one-minute windows: the first `per_minute` events of a window pass; the first one over
the budget is replaced by one `audit.budget_exceeded` event naming the action, and the rest
are only counted; the next window's first event is preceded by an `audit.suppressed` event
with that count, so the trail shows how much was dropped and when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.audit.events import AuditEvent, AuditSink, Outcome

ANONYMOUS_EVENTS_PER_MINUTE = 120
_WINDOW_SECONDS = 60.0


class AuditBudget:
    """An `AuditSink` that passes at most `per_minute` events a minute to `sink`."""

    def __init__(
        self,
        sink: AuditSink,
        per_minute: int = ANONYMOUS_EVENTS_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start = clock()
        self._passed = 0
        self._suppressed = 0

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            now = self._clock()
            if now - self._window_start >= _WINDOW_SECONDS:
                if self._suppressed:
                    self._sink.emit(
                        AuditEvent(
                            "audit.suppressed",
                            Outcome.FAILURE,
                            reason="anonymous_budget",
                            counts={"suppressed": self._suppressed},
                        )
                    )
                self._window_start, self._passed, self._suppressed = now, 0, 0
            if self._passed < self._per_minute:
                self._passed += 1
                self._sink.emit(event)
                return
            self._suppressed += 1
            if self._suppressed == 1:
                self._sink.emit(
                    AuditEvent(
                        "audit.budget_exceeded",
                        Outcome.FAILURE,
                        event.correlation_id,
                        reason=event.action,
                        counts={"perMinute": self._per_minute},
                    )
                )
