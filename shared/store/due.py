"""The due index: which connections need the lifecycle timer's attention, and when.

Table `due`: PartitionKey = time bucket (`yyyyMMddHHmm`, see shared.lifecycle.planning),
RowKey = connection id. Columns: `DueAt` (exact time), `Kind` (keepalive / access / retry),
`Basis` (the connection's last grant redemption when the entry was written), `Attempts`
(consecutive transient failures), `ClaimedUntil` and `RunId` (which timer run holds it).

An entry is a hint, the connection row is the truth: the worker re-reads the row and skips
an entry whose `Basis` is older than the row's (someone refreshed since), so a stale or
duplicate entry costs one skipped item, never a wrong write. The connection row names its
current entry (`DueBucket`), so a write that moves the deadline removes the old entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.lifecycle.planning import Due, DueKind, bucket_of
from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

TABLE = "due"
# Entries are written unclaimed with this ClaimedUntil (a filter on a missing column would
# exclude the row, so the column is always present).
_UNCLAIMED = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DueEntry:
    connection_id: str
    bucket: str
    at: datetime
    kind: DueKind
    basis: datetime
    attempts: int
    run_id: str
    etag: str


def _entry(entity: Any) -> DueEntry:
    return DueEntry(
        connection_id=str(entity["RowKey"]),
        bucket=str(entity["PartitionKey"]),
        at=entity["DueAt"],
        kind=DueKind(str(entity.get("Kind", DueKind.KEEPALIVE))),
        basis=entity["Basis"],
        attempts=int(entity.get("Attempts", 0)),
        run_id=str(entity.get("RunId", "")),
        etag=str(entity.metadata["etag"]),
    )


class DueIndex:
    def __init__(self, tables: TableSet, idle: timedelta) -> None:
        self._tables = tables
        # How long a grant may sit unredeemed before the keep-alive refresh (KEEPALIVE_IDLE_DAYS).
        self.idle = idle

    async def schedule(
        self, connection_id: str, due: Due, basis: datetime, attempts: int = 0
    ) -> None:
        """Create or overwrite the entry for `connection_id` in `due`'s bucket, unclaimed."""
        table = await self._tables.table(TABLE)
        with storage_errors("schedule connection"):
            await table.upsert_entity(
                {
                    "PartitionKey": due.bucket,
                    "RowKey": connection_id,
                    "DueAt": due.at,
                    "Kind": str(due.kind),
                    "Basis": basis,
                    "Attempts": attempts,
                    "ClaimedUntil": _UNCLAIMED,
                    "RunId": "",
                },
                mode=UpdateMode.REPLACE,
            )

    async def unschedule(self, bucket: str, connection_id: str) -> None:
        """Remove an entry, whatever its state (already gone is fine)."""
        table = await self._tables.table(TABLE)
        with storage_errors("unschedule connection"), contextlib.suppress(ResourceNotFoundError):
            await table.delete_entity(bucket, connection_id)

    async def done(self, entry: DueEntry) -> None:
        """Remove the entry the worker processed, unless it was rewritten since it was read
        (a refresh that lands in the same bucket rewrites it: that newer entry stays)."""
        table = await self._tables.table(TABLE)
        with (
            storage_errors("finish due entry"),
            contextlib.suppress(ResourceNotFoundError, ResourceModifiedError),
        ):
            await table.delete_entity(
                entry.bucket,
                entry.connection_id,
                etag=entry.etag,
                match_condition=MatchConditions.IfNotModified,
            )

    async def get(self, bucket: str, connection_id: str) -> DueEntry | None:
        table = await self._tables.table(TABLE)
        with storage_errors("read due entry"):
            try:
                return _entry(await table.get_entity(bucket, connection_id))
            except ResourceNotFoundError:
                return None

    async def due(self, now: datetime, page_size: int = 1000) -> AsyncIterator[DueEntry]:
        """Unclaimed entries due by `now`, oldest bucket first. Reads only past and current
        buckets of the index, never the connections table."""
        table = await self._tables.table(TABLE)
        with storage_errors("list due connections"):
            async for entity in table.query_entities(
                "PartitionKey le @bucket and DueAt le @now and ClaimedUntil lt @now",
                parameters={"bucket": bucket_of(now), "now": now},
                results_per_page=page_size,
            ):
                yield _entry(entity)

    async def claim(self, entry: DueEntry, run_id: str, until: datetime) -> bool:
        """Mark the entry as this run's until `until`; False if another run got there first
        (ETag condition), so two overlapping timers never enqueue the same entry twice."""
        table = await self._tables.table(TABLE)
        with storage_errors("claim due entry"):
            try:
                await table.update_entity(
                    {
                        "PartitionKey": entry.bucket,
                        "RowKey": entry.connection_id,
                        "ClaimedUntil": until,
                        "RunId": run_id,
                    },
                    mode=UpdateMode.MERGE,
                    etag=entry.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
        return True
