"""The lifecycle run ledger: one row per timer run, settled by the batches it fanned out.

A run's work happens in queue-triggered batches, possibly on other instances, so no single
process sees the whole run. Each batch adds its counts to the run's row under an ETag
condition (retrying on conflict); the write that settles the last batch marks the row
complete and hands back the totals, so exactly one process emits the run's summary.
A batch index already settled is ignored: a redelivered message does not count twice.

Also holds the key-rotation marker (which key versions the rows were last rotated to).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.store.errors import storage_errors
from shared.store.table_set import TableSet

TABLE = "lifecycleruns"
_RUN_PARTITION = "run"
_COUNT = "N_"  # counts are stored as columns N_<name>
_MAX_CONFLICTS = 200


@dataclass(frozen=True)
class RunTotals:
    run_id: str
    counts: dict[str, int]
    started: datetime
    reason: str | None


@dataclass(frozen=True)
class RotationMarker:
    aes: str
    fernet: str
    first_at: datetime
    confirmed: bool


def _settled(entity: dict[str, Any]) -> set[int]:
    return {int(n) for n in str(entity.get("Settled", "")).split(",") if n}


class RunLedger:
    def __init__(self, tables: TableSet) -> None:
        self._tables = tables

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
        """Add `counts` to the run (once per `batch`); the timer passes `batches` and
        `started`. Returns the totals to the one caller whose write completed the run."""
        table = await self._tables.table(TABLE)
        for _ in range(_MAX_CONFLICTS):
            with storage_errors("read run ledger"):
                try:
                    found = await table.get_entity(_RUN_PARTITION, run_id)
                    entity: dict[str, Any] | None = dict(found)
                    etag: str | None = str(found.metadata["etag"])
                except ResourceNotFoundError:
                    entity, etag = None, None
            row = entity or {"PartitionKey": _RUN_PARTITION, "RowKey": run_id}
            settled = _settled(row)
            if row.get("Completed") or (batch is not None and batch in settled):
                return None
            for name, value in counts.items():
                row[_COUNT + name] = int(row.get(_COUNT + name, 0)) + value
            if batch is not None:
                settled.add(batch)
                row["Settled"] = ",".join(str(n) for n in sorted(settled))
            if batches is not None:
                row["Batches"] = batches
            if started is not None:
                row["StartedAt"] = started
            if reason is not None and not row.get("Reason"):
                row["Reason"] = reason
            complete = "Batches" in row and "StartedAt" in row and len(settled) >= row["Batches"]
            row["Completed"] = complete
            try:
                with storage_errors("write run ledger"):
                    if etag is None:
                        await table.create_entity(row)
                    else:
                        await table.update_entity(
                            row,
                            mode=UpdateMode.REPLACE,
                            etag=etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
            except (ResourceExistsError, ResourceModifiedError):
                # Another batch settled meanwhile: read again and re-apply ours on top.
                await asyncio.sleep(random.uniform(0, 0.02))
                continue
            if not complete:
                return None
            return RunTotals(
                run_id,
                {k.removeprefix(_COUNT): int(v) for k, v in row.items() if k.startswith(_COUNT)},
                row["StartedAt"],
                str(row["Reason"]) if row.get("Reason") else None,
            )
        raise RuntimeError("run ledger: too many concurrent updates")

    async def rotation_marker(self) -> RotationMarker | None:
        table = await self._tables.table(TABLE)
        with storage_errors("read rotation marker"):
            try:
                entity = await table.get_entity("keys", "rotation")
            except ResourceNotFoundError:
                return None
        return RotationMarker(
            str(entity["Aes"]),
            str(entity["Fernet"]),
            entity["FirstAt"],
            bool(entity.get("Confirmed", False)),
        )

    async def set_rotation_marker(self, marker: RotationMarker) -> None:
        table = await self._tables.table(TABLE)
        with storage_errors("write rotation marker"):
            await table.upsert_entity(
                {
                    "PartitionKey": "keys",
                    "RowKey": "rotation",
                    "Aes": marker.aes,
                    "Fernet": marker.fernet,
                    "FirstAt": marker.first_at.astimezone(UTC),
                    "Confirmed": marker.confirmed,
                },
                mode=UpdateMode.REPLACE,
            )
