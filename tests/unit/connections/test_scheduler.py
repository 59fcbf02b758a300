"""DueScheduler with an in-memory index and store: which hint arms a connection, and that
the hint is written before the row points at it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import Due, DueKind
from shared.connections.scheduler import DueScheduler
from shared.store.connections import SealedCache

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IDLE = timedelta(days=7)
CID = "conn00000000000000000000"


class Journal:
    """What the index and the store were asked to write, in order."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []

    async def add(self, connection_ids: Sequence[str], due: Due, attempts: int = 0) -> None:
        self.writes.append(("hint", (tuple(connection_ids), due)))

    async def point_at(self, sealed: SealedCache, due_at: datetime) -> None:
        self.writes.append(("row", (sealed.connection.id, due_at)))


def scheduler(journal: Journal | None) -> DueScheduler:
    return DueScheduler(journal, IDLE, journal)  # type: ignore[arg-type]


def connection(**changes: Any) -> Connection:
    base = Connection(
        id=CID,
        owner_oid="oid",
        owner_tid="tid",
        mailbox="alice@contoso.test",
        scopes=[],
        status=ConnectionStatus.ACTIVE,
        created_at=NOW - timedelta(days=30),
        last_refreshed_at=NOW,
    )
    return replace(base, **changes)


async def test_a_new_grant_gets_a_keep_alive_hint_before_the_row_names_it() -> None:
    journal = Journal()

    armed = await scheduler(journal).arm(connection(), b"{}", NOW)

    keepalive = Due(NOW + IDLE, DueKind.KEEPALIVE)
    assert journal.writes == [("hint", ((CID,), keepalive))]
    assert armed.due_at == keepalive.at


async def test_a_hint_the_caller_already_wrote_is_used_when_it_is_not_late() -> None:
    journal = Journal()
    batch_hint = Due(NOW + timedelta(days=6), DueKind.KEEPALIVE)

    armed = await scheduler(journal).arm(connection(), b"{}", NOW, batch_hint)

    assert journal.writes == []
    assert armed.due_at == batch_hint.at


async def test_a_current_hint_still_ahead_and_not_late_is_kept() -> None:
    journal = Journal()
    current = NOW + timedelta(days=2)

    armed = await scheduler(journal).arm(connection(due_at=current), b"{}", NOW)

    assert journal.writes == [] and armed.due_at == current


async def test_a_current_hint_later_than_the_due_time_is_replaced() -> None:
    journal = Journal()

    armed = await scheduler(journal).arm(connection(due_at=NOW + timedelta(days=9)), b"{}", NOW)

    assert journal.writes == [("hint", ((CID,), Due(NOW + IDLE, DueKind.KEEPALIVE)))]
    assert armed.due_at == NOW + IDLE


async def test_a_connection_that_is_not_active_is_never_armed() -> None:
    journal = Journal()
    waiting = connection(status=ConnectionStatus.REAUTH_REQUIRED)

    armed = await scheduler(journal).arm(waiting, b"{}", NOW)

    assert journal.writes == [] and armed == waiting


async def test_without_an_index_nothing_is_armed() -> None:
    plain = scheduler(None)

    assert await plain.arm(connection(), b"{}", NOW) == connection()
    assert await plain.sooner(connection(), Due(NOW, DueKind.ACCESS)) is None


async def test_use_moves_the_pointer_only_to_an_earlier_access_time() -> None:
    journal = Journal()
    hinted = connection(due_at=NOW + timedelta(hours=2))
    earlier, later = (
        Due(NOW + timedelta(hours=1), DueKind.ACCESS),
        Due(NOW + timedelta(hours=3), DueKind.ACCESS),
    )

    assert await scheduler(journal).sooner(hinted, later) is None
    assert await scheduler(journal).sooner(hinted, earlier) == earlier.at
    assert journal.writes == [("hint", ((CID,), earlier))]


async def test_a_reschedule_writes_the_hint_then_the_row() -> None:
    journal = Journal()
    due = Due(NOW + timedelta(days=5), DueKind.KEEPALIVE)

    await scheduler(journal).reschedule(SealedCache(connection(), b"{}", "etag"), due)

    assert journal.writes == [("hint", ((CID,), due)), ("row", (CID, due.at))]
