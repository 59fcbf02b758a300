"""Recording a caller's use of a connection (TokenService._touch), with an in-memory store
and due index: once per window per worker, armed for the access token's refresh time, and
never at the cost of the caller's request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.audit import MemoryAuditSink
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import Due, DueKind
from shared.connections.scheduler import DueScheduler
from shared.connections.tokens import TOUCH_EVERY, TokenService, _Cached
from shared.errors import StorageUnavailable

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(minutes=50)
CID = "conn00000000000000000000"


class FakeStore:
    def __init__(self, fail: int = 0) -> None:
        self.touches: list[tuple[str, datetime, datetime | None]] = []
        self.fail = fail

    async def touch(self, connection: Connection, used: datetime, due_at: datetime | None) -> None:
        if self.fail:
            self.fail -= 1
            raise StorageUnavailable("down")
        self.touches.append((connection.id, used, due_at))


class FakeIndex:
    def __init__(self) -> None:
        self.hints: list[tuple[list[str], Due]] = []

    async def add(self, connection_ids: list[str], due: Due, attempts: int = 0) -> None:
        self.hints.append((list(connection_ids), due))


class Clocks:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = NOW


def service(store: FakeStore, clocks: Clocks, index: FakeIndex | None = None) -> TokenService:
    tokens = TokenService(
        settings=None,  # type: ignore[arg-type]
        msal_client=None,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        audit=MemoryAuditSink(),
        scheduler=DueScheduler(index or FakeIndex(), timedelta(days=7)),  # type: ignore[arg-type]
        clock=lambda: clocks.mono,
        wall_clock=lambda: clocks.wall,
    )
    # A token this worker already holds: access_token answers from memory, no MSAL.
    tokens._cached[CID] = _Cached("token", fresh_until=clocks.mono + 3600, expires_at=EXPIRES)
    return tokens


def connection(**changes: Any) -> Connection:
    values: dict[str, Any] = {
        "id": CID,
        "owner_oid": "oid",
        "owner_tid": "tid",
        "mailbox": "alice@contoso.test",
        "scopes": [],
        "status": ConnectionStatus.ACTIVE,
        "created_at": NOW - timedelta(days=3),
        **changes,
    }
    return Connection(**values)


async def test_use_is_recorded_once_per_window_with_the_access_tokens_refresh_time() -> None:
    store, clocks, index = FakeStore(), Clocks(), FakeIndex()
    tokens = service(store, clocks, index)

    for _ in range(3):
        assert await tokens.access_token(connection(), "corr") == "token"
    clocks.mono += TOUCH_EVERY.total_seconds()
    clocks.wall += TOUCH_EVERY
    await tokens.access_token(connection(), "corr")

    access = Due(EXPIRES - timedelta(minutes=10), DueKind.ACCESS)
    assert store.touches == [(CID, NOW, access.at), (CID, NOW + TOUCH_EVERY, access.at)]
    assert index.hints == [([CID], access), ([CID], access)]  # written before the row


async def test_a_connection_whose_row_already_shows_recent_use_is_not_touched() -> None:
    store = FakeStore()
    tokens = service(store, Clocks())

    await tokens.access_token(connection(last_used_at=NOW - timedelta(minutes=5)), "corr")

    assert store.touches == []


async def test_storage_down_never_fails_the_request_and_the_next_request_tries_again() -> None:
    store = FakeStore(fail=1)
    tokens = service(store, Clocks())

    assert await tokens.access_token(connection(), "corr") == "token"
    assert store.touches == []
    assert await tokens.access_token(connection(), "corr") == "token"
    assert [t[0] for t in store.touches] == [CID]


async def test_touches_older_than_the_window_are_forgotten_when_many_are_remembered() -> None:
    store, clocks = FakeStore(), Clocks()
    tokens = service(store, clocks)
    tokens._touched = {
        f"old{n}": clocks.mono - 2 * TOUCH_EVERY.total_seconds() for n in range(10_000)
    }
    tokens._touched["recent"] = clocks.mono - 1

    await tokens.access_token(connection(), "corr")

    assert set(tokens._touched) == {"recent", CID}
