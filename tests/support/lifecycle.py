"""Stored state for lifecycle tests and benchmarks: connections made to look as if no
refresh had happened for some days, and the due-index hints that name a connection.

The one place outside shared/store that knows the connection row's keys and the hint layout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from azure.data.tables import UpdateMode

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.connections.schedule import Due, DueKind
from shared.container import Container
from shared.store.connections import ConnectionStore
from shared.store.due import Hint

T = TypeVar("T")


def _store(container: Container) -> ConnectionStore:
    store: ConnectionStore = container.connections._store  # type: ignore[attr-defined]
    return store


async def age(container: Container, connection_ids: Sequence[str], days: float) -> Due:
    """What `days` without any refresh leave behind: each grant last redeemed that long ago,
    and the connection armed with a keep-alive hint that is due in the past."""
    store = _store(container)
    basis = datetime.now(UTC) - timedelta(days=days)
    due = Due(basis + container.scheduler.idle, DueKind.KEEPALIVE)
    await container.scheduler.hint(list(connection_ids), due)
    table = await store._tables.table("connections")
    gate = asyncio.Semaphore(32)

    async def one(connection_id: str) -> None:
        async with gate:
            await table.update_entity(
                {
                    "PartitionKey": connection_id,
                    "RowKey": connection_id,
                    "LastRefreshedAt": basis,
                    "DueAt": due.at,
                },
                mode=UpdateMode.MERGE,
            )

    await asyncio.gather(*(one(cid) for cid in connection_ids))
    return due


async def hints_for(container: Container, connection_id: str) -> list[Hint]:
    index = container.scheduler.index
    assert index is not None
    return await index.hints_for(connection_id)


def in_worker(settings: dict[str, str], work: Callable[[Container], Awaitable[T]]) -> T:
    """Run `work(container)` in a container of its own built from `settings` (what another
    worker process of the app would have), for tests that drive the app over HTTP."""

    async def run() -> T:
        worker = Container.build(load_settings(settings), audit=MemoryAuditSink())
        try:
            return await work(worker)
        finally:
            await worker.aclose()

    return asyncio.run(run())
