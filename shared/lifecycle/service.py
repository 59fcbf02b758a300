"""The lifecycle use cases: the timer's run (find due hints, claim, fan out) and the queue
worker's batch (refresh each connection once, with bounded concurrency).

Safe to overlap with itself and with HTTP requests: hints are claimed under ETag conditions,
the worker re-reads the connection row and skips work someone else already did, and the
token service writes a refreshed cache back only under the row's ETag.

Per connection a refresh costs one read and one conditional write of its row; the index
work is per run (a few hint rows claimed and removed) and per batch (one hint arming every
connection of the batch for its next keep-alive, written before any of them is refreshed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.connections.models import ConnectionStatus
from shared.connections.schedule import Due, DueKind, is_due, retry_after
from shared.errors import (
    ConnectionNotFound,
    IdentityUnavailable,
    KeyProviderUnavailable,
    ReauthRequired,
    StorageUnavailable,
)
from shared.lifecycle.maintenance import MaintenanceStep
from shared.lifecycle.messages import MalformedBatch, WorkBatch, WorkItem
from shared.store.due import Hint
from shared.store.queue import QueueUnavailable, WorkQueue
from shared.store.runs import RotationMarker, RunTotals

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.connections.scheduler import DueScheduler
    from shared.connections.tokens import TokenService
    from shared.crypto.keyring import KeyRingCache
    from shared.crypto.keys import KeyRing
    from shared.store.connections import ConnectionStore
    from shared.store.due import DueIndex
    from shared.store.runs import RunLedger

logger = logging.getLogger(__name__)

# A claimed hint is left to its run this long; after that a later run may claim it again
# (the timer stopped between enqueueing its work and removing the hint).
CLAIM_TTL = timedelta(minutes=10)
# A hint names a connection "at" a time; the row's pointer is compared with it to this
# precision (both are the same stored value, this only absorbs timestamp rounding).
_SAME_HINT = timedelta(seconds=1)
# After a key version changes, rotation runs again once this long after the first pass, to
# catch rows sealed meanwhile by workers whose key ring was not refreshed yet (ring TTL 10 min).
ROTATION_CONFIRM_AFTER = timedelta(minutes=15)
# Event loops (by id) whose default executor this module widened, and to how many threads.
_WIDENED: dict[int, int] = {}


class ItemOutcome(StrEnum):
    REFRESHED = "refreshed"
    REAUTH_REQUIRED = "reauth_required"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class LifecycleConfig:
    batch_size: int
    concurrency: int
    run_budget: int


@dataclass(frozen=True)
class RunStarted:
    """What the timer did; the run's totals follow when its last batch settles."""

    run_id: str
    due: int
    batches: int
    reason: str | None = None


class LifecycleService:
    def __init__(
        self,
        *,
        config: LifecycleConfig,
        due: DueIndex,
        scheduler: DueScheduler,
        ledger: RunLedger,
        connections: ConnectionStore,
        tokens: TokenService,
        key_ring: KeyRingCache,
        queue: WorkQueue,
        audit: AuditSink,
        rotate: Callable[[KeyRing], Awaitable[int]] | None = None,
        ensure_tables: Callable[[], Awaitable[None]] | None = None,
        steps: Sequence[MaintenanceStep] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._due = due
        self._scheduler = scheduler
        self._ledger = ledger
        self._connections = connections
        self._tokens = tokens
        self._key_ring = key_ring
        self._queue = queue
        self._audit = audit
        self._rotate = rotate
        self._ensure_tables = ensure_tables
        # Purges of expiring records, subscription renewal: each reports its own figure.
        self._steps = tuple(steps)
        self._figures = (*_SUMMARY_COUNTS, *(step.figure for step in self._steps))
        self._clock = clock

    # -- the timer ----------------------------------------------------------------------

    async def run(self) -> RunStarted:
        """One timer run. Never raises for an unavailable dependency: the run stops, and its
        summary event (`lifecycle.run`, outcome failure) names which dependency."""
        run_id = uuid.uuid4().hex
        started = self._clock()
        counts: Counter[str] = Counter()
        try:
            ring = await self._key_ring.get()
            if self._ensure_tables is not None:
                await self._ensure_tables()
            for step in self._steps:
                counts[step.figure] += await step.run(started)
            counts["rows_rekeyed"] = await self._rotate_if_needed(ring, started)
            hints = await self._claim_due(run_id, started, counts)
            batches = self._batches(run_id, hints)
            counts["due"] += sum(len(b.items) for b in batches)
            sent = 0
            try:
                for batch in batches:
                    await self._queue.send(batch.encode())
                    sent += 1
            except QueueUnavailable:
                # The unsent hints stay claimed until CLAIM_TTL, then a later run takes them.
                counts["failed"] += sum(len(b.items) for b in batches[sent:])
                await self._remove_sent(hints, batches[:sent])
                return await self._open_run(run_id, started, counts, sent, "queue_unavailable")
            await self._remove_sent(hints, batches)
            return await self._open_run(run_id, started, counts, sent, None)
        except StorageUnavailable:
            return self._stopped(run_id, started, counts, "storage_unavailable")
        except KeyProviderUnavailable:
            return self._stopped(run_id, started, counts, "key_provider_unavailable")

    async def _claim_due(self, run_id: str, now: datetime, counts: Counter[str]) -> list[Hint]:
        claimed: list[Hint] = []
        named = 0
        async for hint in self._due.due(now):
            if named >= self._config.run_budget:
                break  # the rest stays due for the next run
            won = await self._due.claim(hint, run_id, now + CLAIM_TTL)
            if won is None:  # another run claimed it first
                counts["due"] += len(hint.connection_ids)
                counts["skipped"] += len(hint.connection_ids)
                continue
            claimed.append(won)
            named += len(won.connection_ids)
        return claimed

    def _batches(self, run_id: str, hints: list[Hint]) -> list[WorkBatch]:
        # A connection named by several hints is worked once, for its latest hint (the
        # worker would drop the earlier ones anyway: the row points at a later hint).
        latest: dict[str, WorkItem] = {}
        for hint in sorted(hints, key=lambda h: h.at):
            for connection_id in hint.connection_ids:
                latest[connection_id] = WorkItem(connection_id, hint.at, hint.attempts)
        items = list(latest.values())
        size = self._config.batch_size
        return [
            WorkBatch(run_id, n, tuple(items[start : start + size]))
            for n, start in enumerate(range(0, len(items), size))
        ]

    async def _remove_sent(self, hints: list[Hint], sent: list[WorkBatch]) -> None:
        """Remove the hints whose every connection is now on the queue (the queue holds the
        work from here: a batch that keeps failing is re-hinted by `poisoned`)."""
        queued = {item.connection_id for batch in sent for item in batch.items}
        for hint in hints:
            if queued.issuperset(hint.connection_ids):
                await self._due.remove(hint)

    async def _open_run(
        self, run_id: str, started: datetime, counts: Counter[str], sent: int, reason: str | None
    ) -> RunStarted:
        if sent == 0:
            # Nothing fanned out: the timer's own counts are the whole run.
            self._summary(run_id, started, dict(counts), reason)
        else:
            totals = await self._ledger.record(
                run_id, dict(counts), batches=sent, started=started, reason=reason
            )
            if totals is not None:  # every batch already settled before we got here
                self._emit_totals(totals)
        return RunStarted(run_id, counts["due"], sent, reason)

    def _stopped(
        self, run_id: str, started: datetime, counts: Counter[str], reason: str
    ) -> RunStarted:
        logger.warning("lifecycle run %s stopped: %s", run_id, reason)
        self._summary(run_id, started, dict(counts), reason)
        return RunStarted(run_id, counts["due"], 0, reason)

    async def _rotate_if_needed(self, ring: KeyRing, now: datetime) -> int:
        """Re-encrypt rows under old key versions, only when the versions changed since the
        last rotation (and once more ROTATION_CONFIRM_AFTER later): no scan otherwise."""
        if self._rotate is None:
            return 0
        marker = await self._ledger.rotation_marker()
        versions = (ring.aes_current, ring.fernet_current)
        if marker is not None and (marker.aes, marker.fernet) == versions:
            if marker.confirmed or now - marker.first_at < ROTATION_CONFIRM_AFTER:
                return 0
            rewritten = await self._rotate(ring)
            await self._ledger.set_rotation_marker(
                RotationMarker(*versions, marker.first_at, confirmed=True)
            )
            return rewritten
        rewritten = await self._rotate(ring)
        # A fresh deployment (no marker yet) has nothing old to confirm.
        await self._ledger.set_rotation_marker(
            RotationMarker(*versions, now, confirmed=marker is None)
        )
        return rewritten

    # -- the queue worker ---------------------------------------------------------------

    async def work(self, body: bytes) -> dict[str, int]:
        """Work one batch. Raises (so the host retries the message, and after 5 attempts
        moves it to the poison queue) when storage or key material is unavailable."""
        batch = WorkBatch.decode(body)
        self._ensure_threads()
        now = self._clock()
        # One hint arms every connection of the batch for its next keep-alive, written before
        # any refresh (a row only ever points at a hint that exists). Those not refreshed
        # are left with a harmless extra hint.
        armed = Due(now + self._scheduler.idle, DueKind.KEEPALIVE)
        await self._due.add([item.connection_id for item in batch.items], armed)
        gate = asyncio.Semaphore(self._config.concurrency)
        retry: dict[int, list[str]] = {}

        async def one(item: WorkItem) -> ItemOutcome:
            async with gate:
                outcome = await self._refresh(batch.run_id, item, armed)
            if outcome is ItemOutcome.FAILED:
                retry.setdefault(item.attempts + 1, []).append(item.connection_id)
            return outcome

        outcomes = await asyncio.gather(*(one(item) for item in batch.items))
        for attempts, connection_ids in retry.items():
            await self._retry_later(connection_ids, attempts)
        counts = {o.value: 0 for o in ItemOutcome}
        for outcome in outcomes:
            counts[outcome.value] += 1
        await self._settle(batch, counts, None)
        return counts

    def _ensure_threads(self) -> None:
        """MSAL is synchronous: each refresh holds a thread of the loop's default executor
        (asyncio.to_thread) for its whole round trip. That pool has min(32, cores + 4)
        threads, which on a 2-core worker would cap REFRESH_CONCURRENCY at 6; give the loop
        a pool at least that wide, once per loop."""
        loop = asyncio.get_running_loop()
        if _WIDENED.get(id(loop), 0) >= self._config.concurrency:
            return
        workers = max(self._config.concurrency, min(32, (os.cpu_count() or 1) + 4))
        loop.set_default_executor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lifecycle")
        )
        _WIDENED[id(loop)] = workers

    async def _refresh(self, run_id: str, item: WorkItem, armed: Due) -> ItemOutcome:
        sealed = await self._connections.open_cache(item.connection_id)
        if sealed is None or sealed.connection.status is not ConnectionStatus.ACTIVE:
            # Deleted, or waiting for the person to reconnect: no attempts until they do
            # (a reconnect arms the connection again).
            return ItemOutcome.SKIPPED
        pointer = sealed.connection.due_at
        if pointer is not None and pointer > item.at + _SAME_HINT:
            return ItemOutcome.SKIPPED  # a later hint covers it: refreshed or moved since
        now = self._clock()
        due = self._scheduler.plan(sealed.connection, sealed.cache, now)
        if due is None:
            return ItemOutcome.SKIPPED
        if not is_due(due, now):
            # The hint fired early (a refresh on the request path moved the deadline on
            # without writing the index): arm it for the real time.
            await self._scheduler.reschedule(sealed, due)
            return ItemOutcome.SKIPPED
        try:
            stored = await self._tokens.refresh(sealed, run_id, armed)
        except ConnectionNotFound:
            return ItemOutcome.SKIPPED
        except ReauthRequired:
            return ItemOutcome.REAUTH_REQUIRED  # the token service marked and audited it
        except IdentityUnavailable as exc:
            # 5xx / timeouts / throttling at the identity provider, or an OAuth error other
            # than a lost grant: the token service turns each (MSAL's and requests' exceptions
            # included) into this one. `work` writes the retry hint (with backoff) for the
            # batch's failures.
            logger.info(
                "refresh of %s failed (%s); backing off", item.connection_id, type(exc).__name__
            )
            return ItemOutcome.FAILED
        # Not stored: another writer (a request, another worker) wrote the row first and
        # armed it; that refresh stands for this one.
        return ItemOutcome.REFRESHED if stored else ItemOutcome.SKIPPED

    async def poisoned(self, body: bytes) -> None:
        """A batch failed five times: record it, hint its connections again (with backoff,
        so they are retried by a later run), and settle it as failed so that its run still
        completes."""
        try:
            batch: WorkBatch | None = WorkBatch.decode(body)
        except MalformedBatch as exc:
            batch, reason = None, f"malformed:{exc}"
        else:
            reason = "batch_failed"
        items = len(batch.items) if batch else 0
        self._audit.emit(
            AuditEvent(
                "lifecycle.poison",
                Outcome.FAILURE,
                batch.run_id if batch else None,
                reason=reason,
                counts={"items": items},
            )
        )
        if batch is not None:
            attempts = max((item.attempts for item in batch.items), default=0) + 1
            await self._retry_later([item.connection_id for item in batch.items], attempts)
            await self._settle(batch, {"failed": items}, "batch_poisoned")

    async def _retry_later(self, connection_ids: list[str], attempts: int) -> None:
        """Hint connections again after `attempts` consecutive failures, with backoff."""
        await self._due.add(connection_ids, retry_after(attempts, self._clock()), attempts)

    async def _settle(self, batch: WorkBatch, counts: dict[str, int], reason: str | None) -> None:
        totals = await self._ledger.record(batch.run_id, counts, batch=batch.index, reason=reason)
        if totals is not None:
            self._emit_totals(totals)

    # -- the summary --------------------------------------------------------------------

    def _emit_totals(self, totals: RunTotals) -> None:
        self._summary(totals.run_id, totals.started, totals.counts, totals.reason)

    def _summary(
        self, run_id: str, started: datetime, counts: dict[str, int], reason: str | None
    ) -> None:
        duration = max(0, int((self._clock() - started).total_seconds() * 1000))
        summary = {name: counts.get(name, 0) for name in self._figures}
        summary["duration_ms"] = duration
        failed = reason is not None
        self._audit.emit(
            AuditEvent(
                "lifecycle.run",
                Outcome.FAILURE if failed else Outcome.SUCCESS,
                run_id,
                reason=reason,
                counts=summary,
            )
        )
        logger.info("lifecycle run %s: %s%s", run_id, summary, f" ({reason})" if failed else "")


# Every run's summary has these, then one figure per maintenance step.
_SUMMARY_COUNTS = (
    "due",
    "refreshed",
    "reauth_required",
    "failed",
    "skipped",
    "rows_rekeyed",
)


def table_creator(service: TableServiceClient, names: list[str]) -> Callable[[], Awaitable[None]]:
    """Create the tables a run reads if they are missing. The worker's TableSet creates each
    table once per process; a storage account reset under a running worker (an emulator
    restarted empty, a table deleted by hand) would otherwise fail every later run."""

    async def ensure() -> None:
        from azure.core.exceptions import ResourceExistsError

        from shared.store.errors import storage_errors

        for name in names:
            with storage_errors("create table"), contextlib.suppress(ResourceExistsError):
                await service.create_table(name)

    return ensure


def key_rotation(
    service: TableServiceClient, key_ring: KeyRingCache, table_prefix: str, audit: AuditSink
) -> Callable[[KeyRing], Awaitable[int]]:
    """The rotate-keys command's work, as the timer calls it (progress goes to the log)."""

    async def rotate(_ring: KeyRing) -> int:
        from shared.crypto.rotation import rotate_keys
        from shared.store.sealed import sealed_tables

        report = await rotate_keys(
            service,
            await key_ring.envelope(),
            sealed_tables(table_prefix),
            progress=lambda line: logger.info("key rotation: %s", line),
            audit=audit,
        )
        return report.counts()["rewritten"]

    return rotate
