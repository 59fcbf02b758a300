"""The lifecycle service with in-memory fakes: what a run and a batch decide, and which
summary they emit. (The real tables, queue and sandbox are in tests/integration.)"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.audit import AuditEvent, MemoryAuditSink
from shared.connections.models import Connection, ConnectionStatus
from shared.errors import GraphUnavailable, KeyProviderUnavailable, ReauthRequired
from shared.lifecycle.messages import WorkBatch, WorkItem
from shared.lifecycle.planning import Due, DueKind
from shared.lifecycle.queue import QueueUnavailable
from shared.lifecycle.service import LifecycleConfig, LifecycleService
from shared.store.due import DueEntry
from shared.store.runs import RunTotals

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BASIS = NOW - timedelta(days=8)
RUN = "0123456789abcdef0123456789abcdef"


def connection(cid: str, **changes: Any) -> Connection:
    base = Connection(
        id=cid,
        owner_oid="oid",
        owner_tid="tid",
        mailbox="alice@contoso.test",
        scopes=[],
        status=ConnectionStatus.ACTIVE,
        created_at=BASIS,
        last_refreshed_at=BASIS,
    )
    return replace(base, **changes)


class FakeDue:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], DueEntry] = {}
        self.lose_claims: set[str] = set()
        self._etag = 0

    def add(self, cid: str, bucket: str = "202611171200", run_id: str = "", **kw: Any) -> None:
        self._etag += 1
        self.entries[(bucket, cid)] = DueEntry(
            cid,
            bucket,
            kw.get("at", BASIS + timedelta(days=7)),
            kw.get("kind", DueKind.KEEPALIVE),
            kw.get("basis", BASIS),
            kw.get("attempts", 0),
            run_id,
            str(self._etag),
        )

    async def due(self, now: datetime) -> AsyncIterator[DueEntry]:
        for entry in sorted(self.entries.values(), key=lambda e: e.bucket):
            if not entry.run_id:
                yield entry

    async def claim(self, entry: DueEntry, run_id: str, until: datetime) -> bool:
        if entry.connection_id in self.lose_claims:
            return False
        self.entries[(entry.bucket, entry.connection_id)] = replace(entry, run_id=run_id)
        return True

    async def get(self, bucket: str, cid: str) -> DueEntry | None:
        return self.entries.get((bucket, cid))

    async def done(self, entry: DueEntry) -> None:
        current = self.entries.get((entry.bucket, entry.connection_id))
        if current is not None and current.etag == entry.etag:
            del self.entries[(entry.bucket, entry.connection_id)]

    async def schedule(self, cid: str, due: Due, basis: datetime, attempts: int = 0) -> None:
        self.add(cid, due.bucket, at=due.at, kind=due.kind, basis=basis, attempts=attempts)


class FakeLedger:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    async def record(
        self,
        run_id: str,
        counts: dict[str, int],
        *,
        batch: int | None = None,
        batches: int | None = None,
        started: datetime | None = None,
        reason: str | None = None,
    ) -> RunTotals | None:
        row = self.rows.setdefault(run_id, {"counts": {}, "settled": set(), "done": False})
        if row["done"] or (batch is not None and batch in row["settled"]):
            return None
        for k, v in counts.items():
            row["counts"][k] = row["counts"].get(k, 0) + v
        if batch is not None:
            row["settled"].add(batch)
        row.update({k: v for k, v in (("batches", batches), ("started", started)) if v})
        row["reason"] = row.get("reason") or reason
        if "batches" in row and "started" in row and len(row["settled"]) >= row["batches"]:
            row["done"] = True
            return RunTotals(run_id, row["counts"], row["started"], row["reason"])
        return None

    async def rotation_marker(self) -> None:
        return None


class FakeStore:
    def __init__(self, *connections: Connection) -> None:
        self.rows = {c.id: c for c in connections}

    async def get(self, cid: str) -> Connection | None:
        return self.rows.get(cid)


class FakeTokens:
    def __init__(self, failures: dict[str, Exception] | None = None) -> None:
        self.failures = failures or {}
        self.refreshed: list[str] = []

    async def access_token(self, conn: Connection, corr: str, *, force_refresh: bool) -> str:
        assert force_refresh
        if conn.id in self.failures:
            raise self.failures[conn.id]
        self.refreshed.append(conn.id)
        return "token"


class FakeFlows:
    async def purge_expired(self, now: datetime) -> int:
        return 2


class FakeRing:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    async def get(self) -> object:
        if self.error:
            raise self.error
        return object()


class FakeQueue:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[str] = []
        self.fail = fail

    async def send(self, text: str) -> None:
        if self.fail:
            raise QueueUnavailable("down")
        self.sent.append(text)

    async def aclose(self) -> None:
        return None


def service(
    due: FakeDue,
    store: FakeStore,
    tokens: FakeTokens | None = None,
    queue: FakeQueue | None = None,
    ring: FakeRing | None = None,
    batch_size: int = 2,
) -> tuple[LifecycleService, MemoryAuditSink, FakeQueue]:
    audit = MemoryAuditSink()
    queue = queue or FakeQueue()
    built = LifecycleService(
        config=LifecycleConfig(batch_size=batch_size, concurrency=4, run_budget=100),
        due=due,  # type: ignore[arg-type]
        ledger=FakeLedger(),  # type: ignore[arg-type]
        connections=store,  # type: ignore[arg-type]
        tokens=tokens or FakeTokens(),  # type: ignore[arg-type]
        flows=FakeFlows(),  # type: ignore[arg-type]
        key_ring=ring or FakeRing(),  # type: ignore[arg-type]
        queue=queue,
        audit=audit,
        clock=lambda: NOW,
    )
    return built, audit, queue


def runs(audit: MemoryAuditSink) -> list[AuditEvent]:
    return [e for e in audit.events if e.action == "lifecycle.run"]


async def work_all(svc: LifecycleService, queue: FakeQueue) -> None:
    for text in queue.sent:
        await svc.work(base64.b64decode(text))


async def test_a_run_with_nothing_due_emits_one_summary_and_queues_nothing() -> None:
    svc, audit, queue = service(FakeDue(), FakeStore())

    started = await svc.run()

    assert started.batches == 0 and queue.sent == []
    [summary] = runs(audit)
    assert summary.outcome == "success" and summary.counts["due"] == 0
    assert summary.counts["flows_purged"] == 2


async def test_due_entries_fan_out_in_batches_and_the_last_batch_emits_the_totals() -> None:
    due = FakeDue()
    ids = [f"conn{n:020d}" for n in range(5)]
    for cid in ids:
        due.add(cid)
    tokens = FakeTokens()
    svc, audit, queue = service(due, FakeStore(*(connection(c) for c in ids)), tokens)

    started = await svc.run()
    assert (started.due, started.batches, runs(audit)) == (5, 3, [])
    await work_all(svc, queue)

    [summary] = runs(audit)
    assert summary.correlation_id == started.run_id
    assert {k: summary.counts[k] for k in ("due", "refreshed", "failed", "skipped")} == {
        "due": 5,
        "refreshed": 5,
        "failed": 0,
        "skipped": 0,
    }
    assert sorted(tokens.refreshed) == ids and due.entries == {}


async def test_a_redelivered_batch_refreshes_nothing_twice() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000")
    tokens = FakeTokens()
    svc, audit, queue = service(due, FakeStore(connection("conn00000000000000000000")), tokens)
    await svc.run()

    await work_all(svc, queue)
    await work_all(svc, queue)

    assert tokens.refreshed == ["conn00000000000000000000"]
    assert len(runs(audit)) == 1


async def test_an_entry_claimed_by_another_run_is_skipped() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000")
    due.lose_claims.add("conn00000000000000000000")
    svc, audit, queue = service(due, FakeStore(connection("conn00000000000000000000")))

    await svc.run()

    assert queue.sent == []
    assert runs(audit)[0].counts["skipped"] == 1


@pytest.mark.parametrize(
    "stored",
    [
        None,
        connection("conn00000000000000000000", status=ConnectionStatus.REAUTH_REQUIRED),
        connection("conn00000000000000000000", last_refreshed_at=NOW - timedelta(minutes=1)),
    ],
    ids=["deleted", "waiting-for-reconnect", "refreshed-by-someone-else"],
)
async def test_work_someone_else_did_or_that_cannot_be_done_is_skipped_and_unindexed(
    stored: Connection | None,
) -> None:
    due = FakeDue()
    due.add("conn00000000000000000000", run_id=RUN)
    tokens = FakeTokens()
    svc, _, _ = service(due, FakeStore(*([stored] if stored else [])), tokens)
    batch = WorkBatch(RUN, 0, (WorkItem("conn00000000000000000000", "202611171200"),))

    counts = await svc.work(base64.b64decode(batch.encode()))

    assert counts["skipped"] == 1 and tokens.refreshed == [] and due.entries == {}


async def test_a_lost_grant_is_counted_and_taken_out_of_the_index() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000", run_id=RUN)
    tokens = FakeTokens({"conn00000000000000000000": ReauthRequired("https://login")})
    svc, _, _ = service(due, FakeStore(connection("conn00000000000000000000")), tokens)
    batch = WorkBatch(RUN, 0, (WorkItem("conn00000000000000000000", "202611171200"),))

    counts = await svc.work(base64.b64decode(batch.encode()))

    assert counts["reauth_required"] == 1 and due.entries == {}


async def test_a_transient_failure_is_rescheduled_with_one_more_attempt() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000", run_id=RUN, attempts=1)
    tokens = FakeTokens({"conn00000000000000000000": GraphUnavailable("down")})
    svc, _, _ = service(due, FakeStore(connection("conn00000000000000000000")), tokens)
    batch = WorkBatch(RUN, 0, (WorkItem("conn00000000000000000000", "202611171200"),))

    counts = await svc.work(base64.b64decode(batch.encode()))

    [entry] = due.entries.values()
    assert counts["failed"] == 1
    assert (entry.kind, entry.attempts, entry.at) == (
        DueKind.RETRY,
        2,
        NOW + timedelta(minutes=10),
    )
    assert entry.basis == BASIS  # still the same grant: the retry is not mistaken for stale


async def test_key_material_unavailable_stops_the_run_and_says_why() -> None:
    svc, audit, queue = service(
        FakeDue(), FakeStore(), ring=FakeRing(KeyProviderUnavailable("vault down"))
    )

    started = await svc.run()

    [summary] = runs(audit)
    assert started.reason == summary.reason == "key_provider_unavailable"
    assert summary.outcome == "failure" and queue.sent == []


async def test_an_unreachable_queue_stops_the_run_and_counts_the_unsent_work_as_failed() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000")
    svc, audit, _ = service(
        due, FakeStore(connection("conn00000000000000000000")), queue=FakeQueue(fail=True)
    )

    await svc.run()

    [summary] = runs(audit)
    assert summary.reason == "queue_unavailable" and summary.counts["failed"] == 1


async def test_a_poisoned_batch_is_audited_and_completes_its_run_as_failed() -> None:
    due = FakeDue()
    due.add("conn00000000000000000000")
    svc, audit, queue = service(due, FakeStore(connection("conn00000000000000000000")))
    await svc.run()

    await svc.poisoned(base64.b64decode(queue.sent[0]))

    [poison] = [e for e in audit.events if e.action == "lifecycle.poison"]
    [summary] = runs(audit)
    assert poison.counts == {"items": 1} and poison.reason == "batch_failed"
    assert summary.reason == "batch_poisoned" and summary.counts["failed"] == 1


async def test_a_malformed_poisoned_message_is_still_audited() -> None:
    svc, audit, _ = service(FakeDue(), FakeStore())

    await svc.poisoned(b"garbage")

    [poison] = [e for e in audit.events if e.action == "lifecycle.poison"]
    assert poison.reason == "malformed:not_json" and poison.counts == {"items": 0}
