"""The due index: which connections need the lifecycle timer's attention, and when.

Table `due`: PartitionKey = time bucket (`yyyyMMddHHmm`, see shared.connections.schedule),
RowKey = `<DueAt as yyyyMMddHHmmssffffff>-<random>`. One row, a *hint*, names up to
`MAX_IDS_PER_HINT` connections that should be looked at from `DueAt` on. Columns: `DueAt`,
`Ids` (space-separated connection ids), `Attempts` (consecutive transient failures of those
connections), `ClaimedUntil` and `RunId` (which timer run holds it).

Why many connections per row: a run then claims, enqueues and removes a few rows instead of
one entry per connection, and a worker batch schedules all of its connections' next
keep-alive with one write. That takes the index off the per-connection cost of a refresh
(the connection row's own read and write are all that remain).

A hint is never the truth, the connection row is. The row records in `DueAt` the hint it
is armed with, and every hint is written before a row points at it. The worker, handed a
hint at time H, drops it when the row points at a later hint (`DueAt` > H: a newer one
covers the connection), and otherwise decides from the row itself: refresh if due, else
schedule a hint at the real due time. So a stale or duplicate hint costs one row read and
never a wrong write, and no connection is left without a hint that will reach it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.connections.schedule import Due, DueKind, bucket_of
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

TABLE = "due"
# A string property holds at most 32 K characters; connection ids are at most 64 characters
# (shared.store.connections), so 400 of them with separators always fit.
MAX_IDS_PER_HINT = 400
# Hints are written unclaimed with this ClaimedUntil (a filter on a missing column would
# exclude the row, so the column is always present).
_UNCLAIMED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Hint:
    bucket: str
    key: str
    at: datetime
    connection_ids: tuple[str, ...]
    attempts: int
    etag: str
    kind: DueKind = DueKind.KEEPALIVE


def _hint(entity: Any, etag: str | None = None) -> Hint:
    return Hint(
        bucket=str(entity["PartitionKey"]),
        key=str(entity["RowKey"]),
        at=entity["DueAt"],
        connection_ids=tuple(str(entity.get("Ids", "")).split()),
        attempts=int(entity.get("Attempts", 0)),
        etag=etag or str(entity.metadata["etag"]),
        kind=DueKind(str(entity.get("Kind", DueKind.KEEPALIVE))),
    )


class DueIndex:
    def __init__(self, tables: TableSet) -> None:
        self._tables = tables

    async def add(self, connection_ids: Sequence[str], due: Due, attempts: int = 0) -> None:
        """Write hints naming `connection_ids` at `due` (one row per MAX_IDS_PER_HINT)."""
        if not connection_ids:
            return
        table = await self._tables.table(TABLE)
        stamp = due.at.astimezone(UTC).strftime("%Y%m%d%H%M%S%f")
        for start in range(0, len(connection_ids), MAX_IDS_PER_HINT):
            with storage_errors("schedule connections"):
                await table.create_entity(
                    {
                        "PartitionKey": due.bucket,
                        # Unique (a random suffix) and ordered by time within the bucket.
                        "RowKey": f"{stamp}-{secrets.token_hex(6)}",
                        "DueAt": due.at,
                        "Kind": str(due.kind),
                        "Ids": " ".join(connection_ids[start : start + MAX_IDS_PER_HINT]),
                        "Attempts": attempts,
                        "ClaimedUntil": _UNCLAIMED,
                        "RunId": "",
                    }
                )

    async def due(self, now: datetime, page_size: int = 1000) -> AsyncIterator[Hint]:
        """Unclaimed hints due by `now`, oldest bucket first. Reads only past and current
        buckets of the index, never the connections table."""
        table = await self._tables.table(TABLE)
        with storage_errors("list due connections"):
            async for entity in table.query_entities(
                "PartitionKey le @bucket and DueAt le @now and ClaimedUntil lt @now",
                parameters={"bucket": bucket_of(now), "now": now},
                results_per_page=page_size,
            ):
                yield _hint(entity)

    async def claim(self, hint: Hint, run_id: str, until: datetime) -> Hint | None:
        """Mark the hint as this run's until `until` (ETag condition): the claimed hint, or
        None if another run got there first, so two overlapping timers never both enqueue it."""
        table = await self._tables.table(TABLE)
        with storage_errors("claim due connections"):
            try:
                written = await table.update_entity(
                    {
                        "PartitionKey": hint.bucket,
                        "RowKey": hint.key,
                        "ClaimedUntil": until,
                        "RunId": run_id,
                    },
                    mode=UpdateMode.MERGE,
                    etag=hint.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return replace(hint, etag=str(written["etag"]))

    async def remove(self, hint: Hint) -> None:
        """Delete a hint whose work is on the queue (unless someone changed it since)."""
        table = await self._tables.table(TABLE)
        with (
            storage_errors("remove due hint"),
            contextlib.suppress(ResourceNotFoundError, ResourceModifiedError),
        ):
            await table.delete_entity(
                hint.bucket,
                hint.key,
                etag=hint.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def hints_for(self, connection_id: str) -> list[Hint]:
        """Every hint naming `connection_id` (a scan of the index: for tools and tests)."""
        table = await self._tables.table(TABLE)
        with storage_errors("list due hints"):
            return [
                _hint(entity)
                async for entity in table.list_entities()
                if connection_id in str(entity.get("Ids", "")).split()
            ]
