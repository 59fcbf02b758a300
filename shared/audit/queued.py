"""Audit events emitted from a worker thread, off the request's critical path, none lost.

Why: the Application Insights sink turns each event into an OpenTelemetry log record (its
attributes, its trace context) before OpenTelemetry's own batch processor queues it; that
work happens on the request otherwise. Here a request only puts the event on a queue.

No event is lost:
- the queue is bounded, and a full queue makes `emit` wait for room (back-pressure), never
  drop;
- `close()` (at the end of the container, and at interpreter exit through `atexit`, which
  runs before OpenTelemetry's own exit handler flushes its batch) emits what is still queued;
- after `close()`, `emit` hands events to the sink directly.
The event's time is taken when it is created, so queueing does not change what it says.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading

from shared.audit.events import AuditEvent, AuditSink

logger = logging.getLogger(__name__)

MAX_QUEUED = 10_000


class QueuedAuditSink:
    """An `AuditSink` that passes events to `sink` on its own thread, in order."""

    def __init__(self, sink: AuditSink, max_queued: int = MAX_QUEUED) -> None:
        self._sink = sink
        self._queue: queue.Queue[AuditEvent | None] = queue.Queue(max_queued)
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-sink", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def emit(self, event: AuditEvent) -> None:
        with self._lock:
            if not self._closed:
                self._queue.put(event)  # waits while the queue is full: never drops
                return
        self._sink.emit(event)

    def close(self, timeout_seconds: float = 10.0) -> None:
        """Emit everything queued, then stop the thread (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)  # the thread stops there
        self._thread.join(timeout_seconds)
        # Whatever the thread did not reach in time is emitted here.
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                break
            if event is not None:
                self._deliver(event)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while (event := self._queue.get()) is not None:
            self._deliver(event)

    def _deliver(self, event: AuditEvent) -> None:
        try:
            self._sink.emit(event)
        except Exception:  # a thread's edge: log (no content in an event) and go on
            logger.exception("an audit event could not be emitted: %s", event.action)
