"""Export jobs, their per-folder checkpoints and their manifest rows, in Table Storage.

Three tables: `exports` (one row per job, partitioned by connection, so that a job is only
ever found through the connection it belongs to), `exportpages` (one checkpoint row per
folder of a job: the Graph link to read next, the page number, the delta link once the
folder is done) and `exportitems` (one manifest row per message, partitioned by job and
keyed by a digest of the message id: writing a message twice leaves one row).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from shared.store.errors import storage_errors

if TYPE_CHECKING:
    from shared.store.table_set import TableSet

JOBS = "exports"
PAGES = "exportpages"
ITEMS = "exportitems"
# Table Storage's limit on operations in one entity-group transaction.
_TRANSACTION_LIMIT = 100


def row_key_of(value: str) -> str:
    """A RowKey for an outside id: Table keys refuse `/ \\ # ?`, Graph ids may hold them."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class ExportJob:
    connection_id: str
    id: str
    status: str
    folders: list[str]
    format: str
    created_at: str
    mailbox: str | None = None
    since: str | None = None
    received_after: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seal: str | None = None
    seal_key: str | None = None
    etag: str | None = None


@dataclass
class Checkpoint:
    export_id: str
    folder_id: str
    link: str
    page: int = 0
    done: bool = False
    queued: bool = True
    delta_link: str | None = None
    resyncs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    etag: str | None = None


@dataclass(frozen=True)
class ManifestEntry:
    message_id: str
    folder_id: str
    internet_message_id: str | None = None
    received: str | None = None
    size: int = 0
    sha256: str | None = None
    removed: bool = False
    blob: str | None = None

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messageId": self.message_id,
            "internetMessageId": self.internet_message_id,
            "folderId": self.folder_id,
            "receivedDateTime": self.received,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.removed:
            out["removed"] = True
        return out


class ManifestOutOfOrder(Exception):
    """Table Storage answered a manifest's rows out of RowKey order."""


class CheckpointMoved(Exception):
    """Another worker wrote this checkpoint since it was read (its ETag changed)."""


class ExportStore:
    def __init__(self, tables: TableSet) -> None:
        self._tables = tables

    # --- jobs -------------------------------------------------------------------------------
    async def save_job(self, job: ExportJob, *, if_unchanged: bool = False) -> ExportJob:
        """Write the whole job row; with `if_unchanged`, only over the version read (else
        CheckpointMoved)."""
        table = await self._tables.table(JOBS)
        entity = {
            "PartitionKey": job.connection_id,
            "RowKey": job.id,
            "Status": job.status,
            "Folders": json.dumps(job.folders),
            "Format": job.format,
            "CreatedAt": job.created_at,
            "Mailbox": job.mailbox or "",
            "Since": job.since or "",
            "ReceivedAfter": job.received_after or "",
            "StartedAt": job.started_at or "",
            "CompletedAt": job.completed_at or "",
            "Error": job.error or "",
            "Counts": json.dumps(job.counts),
            "Seal": job.seal or "",
            "SealKey": job.seal_key or "",
        }
        with storage_errors("save export"):
            try:
                if if_unchanged and job.etag:
                    meta = await table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=job.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                else:
                    meta = await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except (ResourceModifiedError, ResourceNotFoundError):
                raise CheckpointMoved from None
        job.etag = meta.get("etag")
        return job

    async def get_job(self, connection_id: str, export_id: str) -> ExportJob | None:
        table = await self._tables.table(JOBS)
        with storage_errors("read export"):
            try:
                entity = await table.get_entity(connection_id, export_id)
            except ResourceNotFoundError:
                return None
        return _job(entity)

    async def list_jobs(self, connection_id: str) -> list[ExportJob]:
        table = await self._tables.table(JOBS)
        with storage_errors("list exports"):
            return [
                _job(e)
                async for e in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": connection_id}
                )
            ]

    async def delete_job(self, connection_id: str, export_id: str) -> None:
        table = await self._tables.table(JOBS)
        with storage_errors("delete export"):
            await table.delete_entity(connection_id, export_id)

    # --- checkpoints ------------------------------------------------------------------------
    async def save_checkpoint(self, cp: Checkpoint, *, if_unchanged: bool) -> Checkpoint:
        table = await self._tables.table(PAGES)
        entity = {
            "PartitionKey": cp.export_id,
            "RowKey": row_key_of(cp.folder_id),
            "FolderId": cp.folder_id,
            "Link": cp.link,
            "Page": cp.page,
            "Done": cp.done,
            "Queued": cp.queued,
            "DeltaLink": cp.delta_link or "",
            "Resyncs": cp.resyncs,
            "Counts": json.dumps(cp.counts),
        }
        with storage_errors("save checkpoint"):
            try:
                if if_unchanged and cp.etag:
                    meta = await table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=cp.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                else:
                    meta = await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            except (ResourceModifiedError, ResourceNotFoundError):
                raise CheckpointMoved from None
        cp.etag = meta.get("etag")
        return cp

    async def get_checkpoint(self, export_id: str, folder_id: str) -> Checkpoint | None:
        table = await self._tables.table(PAGES)
        with storage_errors("read checkpoint"):
            try:
                entity = await table.get_entity(export_id, row_key_of(folder_id))
            except ResourceNotFoundError:
                return None
        return _checkpoint(entity)

    async def checkpoints(self, export_id: str) -> list[Checkpoint]:
        table = await self._tables.table(PAGES)
        with storage_errors("list checkpoints"):
            return [
                _checkpoint(e)
                async for e in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": export_id}
                )
            ]

    # --- manifest ---------------------------------------------------------------------------
    async def put_entry(self, export_id: str, entry: ManifestEntry) -> None:
        table = await self._tables.table(ITEMS)
        with storage_errors("write manifest entry"):
            await table.upsert_entity(_entry_entity(export_id, entry), mode=UpdateMode.REPLACE)

    async def put_entries(self, export_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Many entries of one export in as few requests as Table Storage allows: entity-group
        transactions of up to 100 upserts (one partition: the export). Why upserts: a page
        read again after a worker died writes the same rows again, and must leave one each.
        Each transaction is atomic; between them a death leaves some rows written, which the
        redelivered page overwrites."""
        if not entries:
            return
        table = await self._tables.table(ITEMS)
        rows = {row_key_of(e.message_id): _entry_entity(export_id, e) for e in entries}
        # A transaction may name a row once; the last entry for a message wins, as it would
        # with one upsert each.
        batch = [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in rows.values()]
        with storage_errors("write manifest entries"):
            for start in range(0, len(batch), _TRANSACTION_LIMIT):
                await table.submit_transaction(batch[start : start + _TRANSACTION_LIMIT])

    async def put_removed(self, export_id: str, entry: ManifestEntry) -> None:
        """A removal, unless the message is already in the manifest: a message moved between
        two exported folders is removed from one and added to the other, with one id, and
        the addition must win whichever page is read first (put_entry replaces a removal)."""
        table = await self._tables.table(ITEMS)
        with storage_errors("write manifest entry"), contextlib.suppress(ResourceExistsError):
            await table.create_entity(
                {
                    "PartitionKey": export_id,
                    "RowKey": row_key_of(entry.message_id),
                    "MessageId": entry.message_id,
                    "FolderId": entry.folder_id,
                    "Removed": True,
                    "Size": 0,
                }
            )

    async def get_entry(self, export_id: str, message_id: str) -> ManifestEntry | None:
        table = await self._tables.table(ITEMS)
        with storage_errors("read manifest entry"):
            try:
                entity = await table.get_entity(export_id, row_key_of(message_id))
            except ResourceNotFoundError:
                return None
        return _entry(entity)

    async def entries_page(
        self, export_id: str, *, after: str | None, limit: int
    ) -> tuple[list[ManifestEntry], str | None]:
        """Up to `limit` entries in RowKey order after the RowKey `after`; the last RowKey
        when more may follow."""
        table = await self._tables.table(ITEMS)
        query, params = "PartitionKey eq @pk", {"pk": export_id}
        if after:
            query += " and RowKey gt @after"
            params["after"] = after
        out: list[tuple[str, ManifestEntry]] = []
        with storage_errors("read manifest"):
            async for e in table.query_entities(query, parameters=params, results_per_page=limit):
                out.append((str(e["RowKey"]), _entry(e)))
                if len(out) >= limit:
                    break
        last = out[-1][0] if len(out) >= limit else None
        return [entry for _, entry in out], last

    async def stream_entries(self, export_id: str) -> AsyncIterator[ManifestEntry]:
        """Every entry in RowKey order (the sealing order), a page of rows at a time: Table
        Storage answers a partition's rows in RowKey order. Raises ManifestOutOfOrder if an
        answer ever was not, rather than seal in another order than `entries` reads."""
        table = await self._tables.table(ITEMS)
        last = ""
        with storage_errors("read manifest"):
            async for e in table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": export_id}, results_per_page=1000
            ):
                row_key = str(e["RowKey"])
                if row_key <= last:
                    raise ManifestOutOfOrder(export_id)
                last = row_key
                yield _entry(e)

    async def entries(self, export_id: str) -> list[ManifestEntry]:
        """Every entry, in RowKey order (the sealing order)."""
        table = await self._tables.table(ITEMS)
        with storage_errors("read manifest"):
            rows = [
                e
                async for e in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": export_id}
                )
            ]
        rows.sort(key=lambda e: str(e["RowKey"]))
        return [_entry(e) for e in rows]

    async def delete_export_rows(self, export_id: str) -> None:
        """The job's manifest and checkpoints (the job row goes with delete_job)."""
        for short in (ITEMS, PAGES):
            table = await self._tables.table(short)
            with storage_errors("delete export rows"):
                async for e in table.query_entities(
                    "PartitionKey eq @pk", parameters={"pk": export_id}, select=["RowKey"]
                ):
                    with contextlib.suppress(ResourceNotFoundError):
                        await table.delete_entity(export_id, str(e["RowKey"]))


def _entry_entity(export_id: str, entry: ManifestEntry) -> dict[str, Any]:
    return {
        "PartitionKey": export_id,
        "RowKey": row_key_of(entry.message_id),
        "MessageId": entry.message_id,
        "FolderId": entry.folder_id,
        "InternetMessageId": entry.internet_message_id or "",
        "Received": entry.received or "",
        "Size": entry.size,
        "Sha256": entry.sha256 or "",
        "Removed": entry.removed,
        "Blob": entry.blob or "",
    }


def _s(entity: Any, name: str) -> str | None:
    value = entity.get(name)
    return str(value) if value else None


def _job(e: Any) -> ExportJob:
    return ExportJob(
        connection_id=str(e["PartitionKey"]),
        id=str(e["RowKey"]),
        status=str(e["Status"]),
        folders=list(json.loads(e.get("Folders") or "[]")),
        format=str(e.get("Format") or "mime"),
        created_at=str(e.get("CreatedAt") or ""),
        mailbox=_s(e, "Mailbox"),
        since=_s(e, "Since"),
        received_after=_s(e, "ReceivedAfter"),
        started_at=_s(e, "StartedAt"),
        completed_at=_s(e, "CompletedAt"),
        error=_s(e, "Error"),
        counts=dict(json.loads(e.get("Counts") or "{}")),
        seal=_s(e, "Seal"),
        seal_key=_s(e, "SealKey"),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


def _checkpoint(e: Any) -> Checkpoint:
    return Checkpoint(
        export_id=str(e["PartitionKey"]),
        folder_id=str(e["FolderId"]),
        link=str(e.get("Link") or ""),
        page=int(e.get("Page") or 0),
        done=bool(e.get("Done")),
        queued=bool(e.get("Queued")),
        delta_link=_s(e, "DeltaLink"),
        resyncs=int(e.get("Resyncs") or 0),
        counts=dict(json.loads(e.get("Counts") or "{}")),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


def _entry(e: Any) -> ManifestEntry:
    return ManifestEntry(
        message_id=str(e["MessageId"]),
        folder_id=str(e.get("FolderId") or ""),
        internet_message_id=_s(e, "InternetMessageId"),
        received=_s(e, "Received"),
        size=int(e.get("Size") or 0),
        sha256=_s(e, "Sha256"),
        removed=bool(e.get("Removed")),
        blob=_s(e, "Blob"),
    )
