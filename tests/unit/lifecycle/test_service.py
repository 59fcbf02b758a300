"""The lifecycle service with in-memory fakes: what a run and a batch decide, and which
summary they emit. (The real tables, queue and sandbox are in tests/integration.)"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.audit import AuditEvent, MemoryAuditSink
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import Due, DueKind
from shared.connections.scheduler import DueScheduler
from shared.errors import IdentityUnavailable, KeyProviderUnavailable, ReauthRequired
from shared.lifecycle.maintenance import MaintenanceStep
from shared.lifecycle.messages import WorkBatch, WorkItem
from shared.lifecycle.service import LifecycleConfig, LifecycleService
from shared.store.connections import SealedCache
from shared.store.due import Hint
from shared.store.queue import QueueUnavailable
from shared.store.runs import RunTotals

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BASIS = NOW - timedelta(days=8)
IDLE = timedelta(days=7)
HINT_AT = BASIS + IDLE  # the keep-alive hint of a connection last refreshed at BASIS
RUN = "0123456789abcdef0123456789abcdef"
C0 = "conn00000000000000000000"


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
        due_at=HINT_AT,
    )
    return replace(base, **changes)


class FakeDue:
    def __init__(self) -> None:
        self.hints: dict[str, Hint] = {}
        self.lose_claims = False
        self._n = 0

    def _key(self) -> str:
        self._n += 1
        return f"k{self._n}"

    async def add(self, ids: Sequence[str], due: Due, attempts: int = 0) -> None:
        key = self._key()
        self.hints[key] = Hint("b", key, due.at, tuple(ids), attempts, "e0", due.kind)

    async def due(self, now: datetime) -> AsyncIterator[Hint]:
        for hint in sorted(self.hints.values(), key=lambda h: h.at):
            if hint.at <= now and hint.etag == "e0":
                yield hint

    async def claim(self, hint: Hint, run_id: str, until: datetime) -> Hint | None:
        if self.lose_claims:
            return None
        claimed = replace(hint, etag=f"claimed-by-{run_id}")
        self.hints[hint.key] = claimed
        return claimed

    async def remove(self, hint: Hint) -> None:
        if self.hints.get(hint.key) == hint:
            del self.hints[hint.key]

    def naming(self, cid: str) -> list[Hint]:
        return [h for h in self.hints.values() if cid in h.connection_ids]


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
    """Connection rows with their caches (no access tokens: the keep-alive rule alone)."""

    def __init__(self, *connections: Connection) -> None:
        self.rows = {c.id: c for c in connections}
        self.rescheduled: list[tuple[str, datetime]] = []

    async def open_cache(self, cid: str) -> SealedCache | None:
        row = self.rows.get(cid)
        return SealedCache(row, b"{}", "etag") if row else None

    async def point_at(self, sealed: SealedCache, due_at: datetime) -> None:
        self.rescheduled.append((sealed.connection.id, due_at))
        self.rows[sealed.connection.id] = replace(sealed.connection, due_at=due_at)


class FakeTokens:
    """Refreshes by writing the row as the real store would: refreshed now, armed."""

    def __init__(
        self, store: FakeStore, failures: dict[str, Exception] | None = None, lose: bool = False
    ) -> None:
        self.store = store
        self.failures = failures or {}
        self.lose = lose
        self.refreshed: list[str] = []

    async def refresh(self, sealed: SealedCache, corr: str, armed: Due | None) -> bool:
        cid = sealed.connection.id
        if cid in self.failures:
            raise self.failures[cid]
        self.refreshed.append(cid)
        if self.lose:
            return False
        assert armed is not None
        self.store.rows[cid] = replace(sealed.connection, last_refreshed_at=NOW, due_at=armed.at)
        return True


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
        scheduler=DueScheduler(due, IDLE, store),  # type: ignore[arg-type]
        ledger=FakeLedger(),  # type: ignore[arg-type]
        connections=store,  # type: ignore[arg-type]
        tokens=tokens or FakeTokens(store),  # type: ignore[arg-type]
        key_ring=ring or FakeRing(),  # type: ignore[arg-type]
        queue=queue,
        audit=audit,
        steps=[MaintenanceStep("flows_purged", FakeFlows().purge_expired)],
        clock=lambda: NOW,
    )
    return built, audit, queue


def runs(audit: MemoryAuditSink) -> list[AuditEvent]:
    return [e for e in audit.events if e.action == "lifecycle.run"]


async def work_all(svc: LifecycleService, queue: FakeQueue) -> None:
    for text in queue.sent:
        await svc.work(base64.b64decode(text))


def one_item_batch(cid: str = C0, at: datetime = HINT_AT, attempts: int = 0) -> bytes:
    return base64.b64decode(WorkBatch(RUN, 0, (WorkItem(cid, at, attempts),)).encode())


async def test_a_run_with_nothing_due_emits_one_summary_and_queues_nothing() -> None:
    svc, audit, queue = service(FakeDue(), FakeStore())

    started = await svc.run()

    assert started.batches == 0 and queue.sent == []
    [summary] = runs(audit)
    assert summary.outcome == "success" and summary.counts["due"] == 0
    assert summary.counts["flows_purged"] == 2


async def test_due_hints_fan_out_in_batches_and_the_last_batch_emits_the_totals() -> None:
    due = FakeDue()
    ids = [f"conn{n:020d}" for n in range(5)]
    await due.add(ids[:3], Due(HINT_AT, DueKind.KEEPALIVE))
    await due.add(ids[3:], Due(HINT_AT, DueKind.KEEPALIVE))
    store = FakeStore(*(connection(c) for c in ids))
    tokens = FakeTokens(store)
    svc, audit, queue = service(due, store, tokens)

    started = await svc.run()
    # The hints are removed once their work is on the queue: the queue holds it now.
    assert (started.due, started.batches, runs(audit), due.hints) == (5, 3, [], {})
    await work_all(svc, queue)

    [summary] = runs(audit)
    assert summary.correlation_id == started.run_id
    assert {k: summary.counts[k] for k in ("due", "refreshed", "failed", "skipped")} == {
        "due": 5,
        "refreshed": 5,
        "failed": 0,
        "skipped": 0,
    }
    assert sorted(tokens.refreshed) == ids
    # Each batch armed its connections with one hint, one idle period on.
    assert sorted(len(h.connection_ids) for h in due.hints.values()) == [1, 2, 2]
    assert {h.at for h in due.hints.values()} == {NOW + IDLE}
    assert all(store.rows[c].due_at == NOW + IDLE for c in ids)


async def test_a_redelivered_batch_refreshes_nothing_twice() -> None:
    due = FakeDue()
    await due.add([C0], Due(HINT_AT, DueKind.KEEPALIVE))
    store = FakeStore(connection(C0))
    tokens = FakeTokens(store)
    svc, audit, queue = service(due, store, tokens)
    await svc.run()

    await work_all(svc, queue)
    await work_all(svc, queue)

    assert tokens.refreshed == [C0]
    assert len(runs(audit)) == 1


async def test_a_connection_named_by_several_hints_is_worked_once() -> None:
    due = FakeDue()
    await due.add([C0], Due(HINT_AT - timedelta(days=1), DueKind.KEEPALIVE))
    await due.add([C0], Due(HINT_AT, DueKind.KEEPALIVE))
    store = FakeStore(connection(C0))
    tokens = FakeTokens(store)
    svc, _, queue = service(due, store, tokens)

    started = await svc.run()
    await work_all(svc, queue)

    [batch] = [WorkBatch.decode(base64.b64decode(text)) for text in queue.sent]
    assert started.due == 1 and batch.items == (WorkItem(C0, HINT_AT),)
    assert tokens.refreshed == [C0]


async def test_a_hint_claimed_by_another_run_is_skipped() -> None:
    due = FakeDue()
    await due.add([C0], Due(HINT_AT, DueKind.KEEPALIVE))
    due.lose_claims = True
    svc, audit, queue = service(due, FakeStore(connection(C0)))

    await svc.run()

    assert queue.sent == []
    assert runs(audit)[0].counts["skipped"] == 1 and runs(audit)[0].counts["due"] == 1


@pytest.mark.parametrize(
    "stored",
    [
        None,
        connection(C0, status=ConnectionStatus.REAUTH_REQUIRED),
        connection(C0, last_refreshed_at=NOW - timedelta(minutes=1), due_at=NOW + IDLE),
    ],
    ids=["deleted", "waiting-for-reconnect", "refreshed-by-someone-else"],
)
async def test_work_someone_else_did_or_that_cannot_be_done_is_skipped(
    stored: Connection | None,
) -> None:
    store = FakeStore(*([stored] if stored else []))
    tokens = FakeTokens(store)
    svc, _, _ = service(FakeDue(), store, tokens)

    counts = await svc.work(one_item_batch())

    assert counts["skipped"] == 1 and tokens.refreshed == [] and store.rescheduled == []


async def test_a_hint_that_fired_before_the_connection_was_due_arms_it_for_the_real_time() -> None:
    # Refreshed on the request path two days ago: its row still points at the old hint,
    # which fires early by design (that refresh wrote no index entry).
    refreshed = NOW - timedelta(days=2)
    due = FakeDue()
    store = FakeStore(connection(C0, last_refreshed_at=refreshed))
    tokens = FakeTokens(store)
    svc, _, _ = service(due, store, tokens)

    counts = await svc.work(one_item_batch())

    assert counts["skipped"] == 1 and tokens.refreshed == []
    assert store.rescheduled == [(C0, refreshed + IDLE)]
    assert (refreshed + IDLE, DueKind.KEEPALIVE) in {(h.at, h.kind) for h in due.naming(C0)}


async def test_a_refresh_whose_write_was_lost_to_another_writer_counts_as_skipped() -> None:
    store = FakeStore(connection(C0))
    svc, _, _ = service(FakeDue(), store, FakeTokens(store, lose=True))

    counts = await svc.work(one_item_batch())

    assert counts["skipped"] == 1 and counts["refreshed"] == 0


async def test_a_lost_grant_is_counted_and_not_hinted_again() -> None:
    due = FakeDue()
    store = FakeStore(connection(C0))
    tokens = FakeTokens(store, {C0: ReauthRequired("https://login")})
    svc, _, _ = service(due, store, tokens)

    counts = await svc.work(one_item_batch())

    # Only the batch's own arming hint names it (dropped when it fires: not active).
    assert counts["reauth_required"] == 1
    assert [h.kind for h in due.naming(C0)] == [DueKind.KEEPALIVE]


async def test_a_transient_failure_is_hinted_again_with_one_more_attempt() -> None:
    due = FakeDue()
    store = FakeStore(connection(C0))
    tokens = FakeTokens(store, {C0: IdentityUnavailable("down")})
    svc, _, _ = service(due, store, tokens)

    counts = await svc.work(one_item_batch(attempts=1))

    [retry] = [h for h in due.naming(C0) if h.kind is DueKind.RETRY]
    assert counts["failed"] == 1
    assert (retry.attempts, retry.at) == (2, NOW + timedelta(minutes=10))
    # The row still points at the hint that fired, so the retry is not taken for stale.
    assert store.rows[C0].due_at == HINT_AT <= retry.at


async def test_key_material_unavailable_stops_the_run_and_says_why() -> None:
    svc, audit, queue = service(
        FakeDue(), FakeStore(), ring=FakeRing(KeyProviderUnavailable("vault down"))
    )

    started = await svc.run()

    [summary] = runs(audit)
    assert started.reason == summary.reason == "key_provider_unavailable"
    assert summary.outcome == "failure" and queue.sent == []


async def test_an_unreachable_queue_stops_the_run_and_keeps_the_unsent_hints() -> None:
    due = FakeDue()
    await due.add([C0], Due(HINT_AT, DueKind.KEEPALIVE))
    svc, audit, _ = service(due, FakeStore(connection(C0)), queue=FakeQueue(fail=True))

    await svc.run()

    [summary] = runs(audit)
    assert summary.reason == "queue_unavailable" and summary.counts["failed"] == 1
    # Still there, claimed: a run after CLAIM_TTL takes it again.
    [kept] = due.naming(C0)
    assert kept.etag.startswith("claimed-by-")


async def test_a_poisoned_batch_is_audited_hinted_again_and_completes_its_run_as_failed() -> None:
    due = FakeDue()
    await due.add([C0], Due(HINT_AT, DueKind.KEEPALIVE))
    svc, audit, queue = service(due, FakeStore(connection(C0)))
    await svc.run()

    await svc.poisoned(base64.b64decode(queue.sent[0]))

    [poison] = [e for e in audit.events if e.action == "lifecycle.poison"]
    [summary] = runs(audit)
    assert poison.counts == {"items": 1} and poison.reason == "batch_failed"
    assert summary.reason == "batch_poisoned" and summary.counts["failed"] == 1
    [retry] = due.naming(C0)
    assert (retry.kind, retry.attempts, retry.at) == (DueKind.RETRY, 1, NOW + timedelta(minutes=5))


async def test_a_malformed_poisoned_message_is_still_audited() -> None:
    svc, audit, _ = service(FakeDue(), FakeStore())

    await svc.poisoned(b"garbage")

    [poison] = [e for e in audit.events if e.action == "lifecycle.poison"]
    assert poison.reason == "malformed:not_json" and poison.counts == {"items": 0}
