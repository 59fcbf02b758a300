"""Export jobs: start one (authorized like a mail read), follow it, read its manifest and
items, verify it, cancel or delete it; and work its page jobs from the exports queue.

How a job runs: one checkpoint per folder holds the Graph link to read next. Each queue
message names one page of one folder. The worker reads that page of the folder's message
delta round, stores every item (MIME or JSON) as a blob and a manifest row keyed by the
message id, then advances the checkpoint under its ETag and queues the next page. A worker
that dies anywhere in between leaves the checkpoint where it was, so the redelivered
message reads the same page again and overwrites the same rows and blobs: no duplicates.
A message for a page already done (a duplicate) only makes sure the next page is queued.
When every folder has its delta link, the job completes: counts come from the manifest and
the manifest is sealed (shared/export/seal.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.audit import AuditEvent, Outcome
from shared.errors import (
    ExportItemNotFound,
    ExportNotCompleted,
    ExportNotFound,
    GraphFailure,
    InvalidCursor,
    StorageUnavailable,
    ValidationFailed,
)
from shared.export.seal import Chain, UnknownSealKey, chain, seal_key
from shared.graph.client import GraphRequest
from shared.graph.errors import GraphNotFound
from shared.store.exports import (
    Checkpoint,
    CheckpointMoved,
    ExportJob,
    ExportStore,
    ManifestEntry,
    row_key_of,
)
from shared.store.queue import QueueUnavailable

if TYPE_CHECKING:
    from shared.audit import AuditSink
    from shared.auth.caller import Caller
    from shared.connections.mailbox import ConnectedMailbox, Mailboxes
    from shared.crypto.keyring import KeyRingCache
    from shared.store.blobs import BlobItems
    from shared.store.connections import ConnectionStore
    from shared.store.queue import WorkQueue

logger = logging.getLogger(__name__)

FINISHED = ("completed", "failed", "cancelled")
# Graph's answers for a delta token it no longer knows: start the round again.
_RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid"})
# Fields the manifest needs from each delta item; the item itself is fetched separately.
_DELTA_SELECT = "internetMessageId,receivedDateTime,parentFolderId"
# Items read side by side within one page. The Graph client's per-mailbox limiter (4 in
# flight) is the real bound; this only keeps a page from queueing more than it can use.
_ITEM_CONCURRENCY = 4
# Items held in memory at once by a page job (fetched and not yet written): a bound that does
# not grow with EXPORT_PAGE_SIZE or with the size of messages while storage lags behind Graph.
_ITEMS_HELD = 8
_MANIFEST_PAGE = 500
# Blob reads side by side while verifying (storage, not Graph: no mailbox limit applies).
_VERIFY_CONCURRENCY = 8


@dataclass(frozen=True)
class ExportRequest:
    folders: list[str] | None  # None: every folder
    format: str
    since: str | None
    received_after: datetime | None


@dataclass(frozen=True)
class ExportItem:
    data: bytes
    sha256: str
    content_type: str


@dataclass(frozen=True)
class Verification:
    export_id: str
    seal_valid: bool
    checked: int
    mismatched: list[str]
    missing: list[str]

    @property
    def valid(self) -> bool:
        return self.seal_valid and not self.mismatched and not self.missing

    def public(self) -> dict[str, Any]:
        return {
            "id": self.export_id,
            "valid": self.valid,
            "sealValid": self.seal_valid,
            "checked": self.checked,
            "mismatched": self.mismatched,
            "missing": self.missing,
        }


_EXPORT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_export_id(value: str) -> bool:
    """The shape of the ids `start` makes (token_urlsafe): anything else names no export,
    and never reaches a table key (which refuses `/ \\ # ?`)."""
    return bool(_EXPORT_ID.fullmatch(value))


def job_json(job: ExportJob, running: dict[str, int] | None = None) -> dict[str, Any]:
    counts = {"messages": 0, "removed": 0, "bytes": 0, "failed": 0}
    counts.update(running if running is not None and job.status not in FINISHED else job.counts)
    out: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "folders": job.folders,
        "format": job.format,
        "since": job.since,
        "counts": counts,
        "createdAt": job.created_at,
        "startedAt": job.started_at,
        "completedAt": job.completed_at,
    }
    if job.error:
        out["error"] = job.error
    return out


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ExportService:
    def __init__(
        self,
        *,
        mailboxes: Mailboxes,
        connection_store: ConnectionStore,
        store: ExportStore,
        items: BlobItems,
        queue: WorkQueue,
        key_ring: KeyRingCache,
        page_size: int,
        audit: AuditSink | None = None,
        clock: Callable[[], str] = _now,
    ) -> None:
        self._audit = audit
        self._mailboxes = mailboxes
        self._connections = connection_store
        self._store = store
        self._items = items
        self._queue = queue
        self._keys = key_ring
        self._page_size = page_size
        self._clock = clock

    # --- caller side ------------------------------------------------------------------------
    async def start(
        self,
        caller: Caller,
        connection_id: str,
        request: ExportRequest,
        mailbox: str | None,
        correlation_id: str,
    ) -> ExportJob:
        mb = await self._mailboxes.open(
            caller, connection_id, mailbox, correlation_id=correlation_id
        )
        base: ExportJob | None = None
        if request.since:
            base = (
                await self._store.get_job(connection_id, request.since)
                if is_export_id(request.since)
                else None
            )
            if base is None:
                raise ExportNotFound("`since` names no export of this connection.")
            if base.status != "completed":
                raise ExportNotCompleted("`since` must name a completed export.")
            if (base.mailbox or None) != (mailbox.lower() if mailbox else None):
                raise ValidationFailed("`since` names an export of another mailbox.")
            if base.format != request.format:
                raise ValidationFailed("`since` names an export in another format.")
        folder_ids = await self._resolve_folders(mb, request.folders)
        job = ExportJob(
            connection_id=connection_id,
            id=secrets.token_urlsafe(16),
            status="queued",
            folders=folder_ids,
            format=request.format,
            created_at=self._clock(),
            mailbox=mailbox.lower() if mailbox else None,
            since=request.since,
            # In UTC with a Z: an offset's `+` would need escaping in the delta $filter.
            received_after=request.received_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if request.received_after
            else None,
        )
        await self._store.save_job(job)
        previous = (
            {cp.folder_id: cp.delta_link for cp in await self._store.checkpoints(base.id)}
            if base
            else {}
        )
        for folder_id in folder_ids:
            cp = Checkpoint(job.id, folder_id, link=previous.get(folder_id) or "")
            await self._store.save_checkpoint(cp, if_unchanged=False)
        try:
            for folder_id in folder_ids:
                await self._enqueue(job, folder_id, 0)
        except QueueUnavailable:
            job.status, job.error = "failed", "The exports queue could not be reached."
            await self._store.save_job(job)
            raise StorageUnavailable("The exports queue is unavailable.") from None
        self._emit("export.started", job, caller=caller, counts={"folders": len(folder_ids)})
        return job

    async def get(
        self, caller: Caller, connection_id: str, export_id: str, mailbox: str | None, cid: str
    ) -> dict[str, Any]:
        job = await self._job(caller, connection_id, export_id, mailbox, cid)
        running = None
        if job.status not in FINISHED:
            running = {"messages": 0, "removed": 0, "bytes": 0, "failed": 0}
            for cp in await self._store.checkpoints(job.id):
                for key, value in cp.counts.items():
                    running[key] = running.get(key, 0) + int(value)
        return job_json(job, running)

    async def list_exports(
        self, caller: Caller, connection_id: str, mailbox: str | None, cid: str
    ) -> list[dict[str, Any]]:
        await self._mailboxes.open(caller, connection_id, mailbox, correlation_id=cid)
        jobs = await self._store.list_jobs(connection_id)
        jobs.sort(key=lambda j: j.created_at, reverse=True)
        return [job_json(j) for j in jobs]

    async def cancel_or_delete(
        self, caller: Caller, connection_id: str, export_id: str, mailbox: str | None, cid: str
    ) -> str:
        """A running export is cancelled (its page jobs stop at their next page); a finished
        one is deleted with its items, manifest and checkpoints. Answers what happened."""
        job = await self._job(caller, connection_id, export_id, mailbox, cid)
        if job.status not in FINISHED:
            job.status, job.completed_at = "cancelled", self._clock()
            try:
                await self._store.save_job(job, if_unchanged=True)
            except CheckpointMoved:  # a page job moved it on meanwhile: cancel what is there
                fresh = await self._store.get_job(connection_id, export_id)
                if fresh is not None and fresh.status not in FINISHED:
                    fresh.status, fresh.completed_at = "cancelled", self._clock()
                    await self._store.save_job(fresh)
            self._emit("export.cancelled", job, caller=caller)
            return "cancelled"
        await self._items.delete_under(f"{connection_id}/{export_id}/")
        await self._store.delete_export_rows(export_id)
        await self._store.delete_job(connection_id, export_id)
        self._emit("export.deleted", job, caller=caller)
        return "deleted"

    async def manifest(
        self,
        caller: Caller,
        connection_id: str,
        export_id: str,
        cursor: str | None,
        mailbox: str | None,
        cid: str,
    ) -> tuple[list[dict[str, Any]], str | None]:
        job = await self._job(caller, connection_id, export_id, mailbox, cid)
        after = _decode_cursor(cursor, job.id) if cursor else None
        entries, last = await self._store.entries_page(job.id, after=after, limit=_MANIFEST_PAGE)
        return [e.public() for e in entries], _encode_cursor(last, job.id) if last else None

    async def item(
        self,
        caller: Caller,
        connection_id: str,
        export_id: str,
        message_id: str,
        mailbox: str | None,
        cid: str,
    ) -> ExportItem:
        job = await self._job(caller, connection_id, export_id, mailbox, cid)
        entry = await self._store.get_entry(job.id, message_id) if message_id else None
        if entry is None or entry.removed or not entry.blob or not entry.sha256:
            raise ExportItemNotFound("No exported item with that message id in this export.")
        data = await self._items.get(entry.blob)
        if data is None:
            raise ExportItemNotFound("The item's content is gone from storage.")
        content_type = "message/rfc822" if job.format == "mime" else "application/json"
        return ExportItem(data, entry.sha256, content_type)

    async def verify(
        self, caller: Caller, connection_id: str, export_id: str, mailbox: str | None, cid: str
    ) -> Verification:
        """Does the manifest still carry its seal, and does every stored item still hash to
        its manifest entry?"""
        job = await self._job(caller, connection_id, export_id, mailbox, cid)
        if job.status != "completed" or not job.seal:
            raise ExportNotCompleted("Only a completed export has a sealed manifest.")
        entries = await self._store.entries(job.id)
        try:
            _, key = seal_key(await self._keys.get(), job.seal_key)
            seal_valid = _same(chain(key, job.id, entries), job.seal)
        except UnknownSealKey:
            seal_valid = False
        stored = [e for e in entries if not e.removed and e.blob]
        gate = asyncio.Semaphore(_VERIFY_CONCURRENCY)

        async def state(entry: ManifestEntry) -> str:
            async with gate:
                data = await self._items.get(entry.blob or "")
            if data is None:
                return "missing"
            return "ok" if hashlib.sha256(data).hexdigest() == entry.sha256 else "mismatched"

        states = await asyncio.gather(*(state(e) for e in stored))
        mismatched = [
            e.message_id for e, st in zip(stored, states, strict=True) if st == "mismatched"
        ]
        missing = [e.message_id for e, st in zip(stored, states, strict=True) if st == "missing"]
        checked = len(stored)
        return Verification(job.id, seal_valid, checked, mismatched, missing)

    async def _job(
        self, caller: Caller, connection_id: str, export_id: str, mailbox: str | None, cid: str
    ) -> ExportJob:
        # Authorized like a mail read first: someone else's connection is 404 before any
        # export is looked up, and exports are only found under their own connection.
        await self._mailboxes.open(caller, connection_id, mailbox, correlation_id=cid)
        job = (
            await self._store.get_job(connection_id, export_id) if is_export_id(export_id) else None
        )
        if job is None:
            raise ExportNotFound("No export with that id on this connection.")
        return job

    async def _resolve_folders(self, mb: ConnectedMailbox, folders: list[str] | None) -> list[str]:
        ids: list[str] = []
        if folders is None:
            pending = [mb.path.folders()]
            while pending:
                first = GraphRequest("GET", pending.pop(0), params={"$top": "100"})
                async for page in mb.pages(first, max_pages=100):
                    for folder in page.get("value") or []:
                        ids.append(str(folder["id"]))
                        if folder.get("childFolderCount"):
                            pending.append(mb.path.child_folders(str(folder["id"])))
        else:
            for name in folders:
                found = (await mb.send(GraphRequest("GET", mb.path.folder(name)))).json() or {}
                ids.append(str(found["id"]))
        return list(dict.fromkeys(ids))

    # --- worker side ------------------------------------------------------------------------
    async def work(self, text: str) -> None:
        """One page job from the exports queue. Raising hands it back to the host (retried,
        then poisoned); everything before the checkpoint write may safely run again."""
        try:
            msg = json.loads(text)
            connection_id, export_id = str(msg["c"]), str(msg["e"])
            folder_id, page = str(msg["f"]), int(msg["p"])
        except (ValueError, KeyError, TypeError):
            logger.warning("dropping a malformed export page job")
            return
        # Three independent reads side by side: they are most of a page's fixed cost.
        job, cp, connection = await asyncio.gather(
            self._store.get_job(connection_id, export_id),
            self._store.get_checkpoint(export_id, folder_id),
            self._connections.get(connection_id),
        )
        if job is None or job.status in FINISHED:
            return
        if cp is None:
            return
        if cp.done:
            await self._finish_if_done(job)
            return
        if page < cp.page:
            # A duplicate or a redelivery after the checkpoint moved on: the page is done;
            # make sure the page after it was queued (a worker may have died in between).
            if not cp.queued:
                await self._enqueue(job, folder_id, cp.page)
                cp.queued = True
                with contextlib.suppress(CheckpointMoved):
                    await self._store.save_checkpoint(cp, if_unchanged=True)
            return
        if page > cp.page:
            return  # cannot be queued before its checkpoint; ignore rather than guess
        if job.status == "queued":
            job.status, job.started_at = "running", self._clock()
            with contextlib.suppress(CheckpointMoved):
                job = await self._store.save_job(job, if_unchanged=True)
        if connection is None:
            await self._fail(job, "The connection was deleted.")
            return
        mb = self._mailboxes.system(
            connection, correlation_id=f"export-{export_id}", mailbox=job.mailbox
        )
        try:
            body = (await mb.send(self._page_request(mb, job, cp))).json() or {}
        except GraphFailure as failure:
            if (failure.graph_code or "").lower() not in _RESYNC_CODES:
                raise
            await self._resync(job, cp)
            return
        counts = await self._store_page(mb, job, folder_id, body.get("value") or [])
        next_link = body.get("@odata.nextLink")
        delta_link = body.get("@odata.deltaLink")
        cp.page += 1
        cp.counts = {k: cp.counts.get(k, 0) + counts.get(k, 0) for k in {*cp.counts, *counts}}
        if isinstance(next_link, str) and next_link:
            cp.link, cp.queued = next_link, False
        else:
            cp.done, cp.queued = True, True
            cp.delta_link = delta_link if isinstance(delta_link, str) else None
        try:
            cp = await self._advance(cp, page)
        except CheckpointMoved:
            return  # another delivery of this page got there first; it queues the next
        if cp.done:
            await self._finish_if_done(job)
            return
        await self._enqueue(job, folder_id, cp.page)
        cp.queued = True
        with contextlib.suppress(CheckpointMoved):
            await self._store.save_checkpoint(cp, if_unchanged=True)

    async def _advance(self, cp: Checkpoint, page: int) -> Checkpoint:
        """Write the checkpoint past `page`, over the version this job read, or over a newer
        one that still stands at `page`: the job before this one marks "next page queued"
        just after queueing it, and that write may land after this job read the checkpoint.
        Raises CheckpointMoved when another delivery of this page advanced it."""
        try:
            return await self._store.save_checkpoint(cp, if_unchanged=True)
        except CheckpointMoved:
            fresh = await self._store.get_checkpoint(cp.export_id, cp.folder_id)
            if fresh is None or fresh.page != page or fresh.done or fresh.resyncs != cp.resyncs:
                raise
            cp.etag = fresh.etag
            return await self._store.save_checkpoint(cp, if_unchanged=True)

    def _page_request(self, mb: ConnectedMailbox, job: ExportJob, cp: Checkpoint) -> GraphRequest:
        prefer = (f"odata.maxpagesize={self._page_size}",)
        if cp.link:
            return GraphRequest("GET", cp.link, prefer=prefer)
        params = {"$select": _DELTA_SELECT}
        if job.received_after:
            params["$filter"] = f"receivedDateTime ge {job.received_after}"
        return GraphRequest(
            "GET", f"{mb.path.folder(cp.folder_id)}/messages/delta", params=params, prefer=prefer
        )

    async def _resync(self, job: ExportJob, cp: Checkpoint) -> None:
        """Graph forgot the sync state: read the folder again from the start. Rows already
        written stay (they are keyed by message id, so the new round overwrites them)."""
        logger.info("export %s: delta state expired, resyncing a folder", job.id)
        cp.link, cp.page, cp.resyncs = "", cp.page + 1, cp.resyncs + 1
        cp.counts, cp.queued = {}, False
        try:
            cp = await self._store.save_checkpoint(cp, if_unchanged=True)
        except CheckpointMoved:
            return
        await self._enqueue(job, cp.folder_id, cp.page)
        cp.queued = True
        with contextlib.suppress(CheckpointMoved):
            await self._store.save_checkpoint(cp, if_unchanged=True)

    async def _store_page(
        self, mb: ConnectedMailbox, job: ExportJob, folder_id: str, items: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Every item of one delta page: each message's bytes to its blob as soon as it is
        fetched (at most _ITEMS_HELD held at once, whatever the page size), then the page's
        manifest rows in entity-group transactions, then (in `work`) the checkpoint. Rows are
        written only after their blobs, so a row always names a blob that holds its bytes."""
        gate = asyncio.Semaphore(_ITEM_CONCURRENCY)
        held = asyncio.Semaphore(_ITEMS_HELD)
        counts = {"messages": 0, "removed": 0, "bytes": 0, "failed": 0}
        added: list[ManifestEntry] = []
        removed: list[ManifestEntry] = []

        async def one(item: dict[str, Any]) -> None:
            message_id = str(item.get("id") or "")
            if not message_id:
                return
            if "@removed" in item:
                removed.append(ManifestEntry(message_id, folder_id, removed=True))
                return
            async with held:
                async with gate:
                    try:
                        data, content_type = await self._fetch(mb, job, message_id)
                    except GraphNotFound:
                        counts["failed"] += 1  # gone between the delta page and the fetch
                        return
                digest = hashlib.sha256(data).hexdigest()
                extension = "eml" if job.format == "mime" else "json"
                blob = f"{job.connection_id}/{job.id}/{row_key_of(message_id)}.{extension}"
                await self._items.put(blob, data, content_type)
            added.append(
                ManifestEntry(
                    message_id,
                    folder_id,
                    internet_message_id=item.get("internetMessageId"),
                    received=item.get("receivedDateTime"),
                    size=len(data),
                    sha256=digest,
                    blob=blob,
                )
            )

        # A TaskGroup, not gather: when one item fails the page fails as a whole, and the
        # other items are cancelled rather than left writing after the job was handed back.
        try:
            async with asyncio.TaskGroup() as group:
                for item in items:
                    group.create_task(one(item))
        except ExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the host logs one typed error, not a group
        await self._store.put_entries(job.id, added)
        for entry in removed:
            await self._store.put_removed(job.id, entry)
        counts["messages"] = len(added)
        counts["bytes"] = sum(e.size for e in added)
        counts["removed"] = len(removed)
        return counts

    async def _fetch(
        self, mb: ConnectedMailbox, job: ExportJob, message_id: str
    ) -> tuple[bytes, str]:
        if job.format == "mime":
            response = await mb.send(GraphRequest("GET", mb.path.message_mime(message_id)))
            return response.content, "message/rfc822"
        response = await mb.send(
            GraphRequest("GET", mb.path.message(message_id), params={"$expand": "attachments"})
        )
        body = response.json() or {}
        body = {k: v for k, v in body.items() if not k.startswith("@odata.")}
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return data, "application/json"

    async def _finish_if_done(self, job: ExportJob) -> None:
        checkpoints = await self._store.checkpoints(job.id)
        if len(checkpoints) < len(job.folders) or not all(cp.done for cp in checkpoints):
            return
        fresh = await self._store.get_job(job.connection_id, job.id)
        if fresh is None or fresh.status in FINISHED:
            return
        version, key = seal_key(await self._keys.get())
        # Streamed: the seal and the counts of a mailbox of any size in constant memory.
        sealed = Chain(key, job.id)
        counts = {"messages": 0, "removed": 0, "bytes": 0}
        async for entry in self._store.stream_entries(job.id):
            sealed.add(entry)
            if entry.removed:
                counts["removed"] += 1
            else:
                counts["messages"] += 1
                counts["bytes"] += entry.size
        counts["failed"] = sum(int(cp.counts.get("failed", 0)) for cp in checkpoints)
        fresh.counts = counts
        fresh.seal, fresh.seal_key = sealed.hexdigest(), version
        fresh.status, fresh.completed_at = "completed", self._clock()
        fresh.started_at = fresh.started_at or fresh.completed_at
        # CheckpointMoved: the last two folders finished together; the other one sealed it.
        try:
            await self._store.save_job(fresh, if_unchanged=True)
        except CheckpointMoved:
            return
        self._emit("export.completed", fresh, counts=fresh.counts)

    async def _fail(self, job: ExportJob, reason: str) -> None:
        job.status, job.error, job.completed_at = "failed", reason, self._clock()
        await self._store.save_job(job)
        self._emit("export.failed", job, outcome=Outcome.FAILURE)

    def _emit(
        self,
        action: str,
        job: ExportJob,
        *,
        caller: Caller | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        counts: dict[str, int] | None = None,
    ) -> None:
        """What was exported (connection, mailbox, counts), never what it said."""
        if self._audit is None:
            return
        self._audit.emit(
            AuditEvent(
                action,
                outcome,
                f"export-{job.id}",
                caller_oid=caller.oid if caller else None,
                caller_app_id=caller.app_id if caller else None,
                tenant_id=caller.tenant_id if caller else None,
                connection_id=job.connection_id,
                mailbox=job.mailbox,
                counts=dict(counts or {}),
            )
        )

    async def _enqueue(self, job: ExportJob, folder_id: str, page: int) -> None:
        raw = json.dumps({"c": job.connection_id, "e": job.id, "f": folder_id, "p": page})
        # base64, as the host's queue trigger expects (messageEncoding base64).
        await self._queue.send(base64.b64encode(raw.encode()).decode("ascii"))

    async def poisoned(self, text: str) -> None:
        """A page job that kept failing: the export fails, saying so."""
        try:
            msg = json.loads(text)
            job = await self._store.get_job(str(msg["c"]), str(msg["e"]))
        except (ValueError, KeyError, TypeError):
            return
        if job is not None and job.status not in FINISHED:
            await self._fail(job, "A page kept failing (Graph or storage unavailable).")


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _encode_cursor(row_key: str, export_id: str) -> str:
    raw = json.dumps({"e": export_id, "a": row_key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, export_id: str) -> str:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = state["a"]
        if state["e"] != export_id or not isinstance(after, str) or len(after) != 64:
            raise ValueError
        int(after, 16)
        return after
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidCursor("The cursor does not belong to this manifest.") from None
