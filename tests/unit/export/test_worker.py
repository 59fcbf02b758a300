"""The export page worker with in-memory fakes: where a worker may die, and what the next
delivery does about it. (Over real HTTP and storage: tests/e2e/test_export.py.)"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from shared.crypto.keys import KeyRing
from shared.export.seal import chain, seal_key
from shared.export.service import ExportService
from shared.graph.client import GraphRequest, GraphResponse
from shared.graph.paths import MailboxPath
from shared.store.exports import Checkpoint, CheckpointMoved, ExportJob, ManifestEntry

BASE = "https://graph.test/v1.0"
MESSAGES = [f"m{i}" for i in range(5)]
PAGE = 2


class FakeStore:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], ExportJob] = {}
        self.pages: dict[tuple[str, str], Checkpoint] = {}
        self.items: dict[str, dict[str, ManifestEntry]] = {}
        self.writes = 0
        self.batches: list[list[str]] = []  # message ids of each put_entries call
        self._version = 0

    def _etag(self) -> str:
        self._version += 1
        return str(self._version)

    async def save_job(self, job: ExportJob, *, if_unchanged: bool = False) -> ExportJob:
        key = (job.connection_id, job.id)
        if if_unchanged and job.etag and self.jobs[key].etag != job.etag:
            raise CheckpointMoved
        job = replace(job, etag=self._etag())
        self.jobs[key] = job
        return replace(job)

    async def get_job(self, connection_id: str, export_id: str) -> ExportJob | None:
        job = self.jobs.get((connection_id, export_id))
        return replace(job) if job else None

    async def save_checkpoint(self, cp: Checkpoint, *, if_unchanged: bool) -> Checkpoint:
        key = (cp.export_id, cp.folder_id)
        if if_unchanged and cp.etag and self.pages[key].etag != cp.etag:
            raise CheckpointMoved
        cp = replace(cp, counts=dict(cp.counts), etag=self._etag())
        self.pages[key] = cp
        return replace(cp, counts=dict(cp.counts))

    async def get_checkpoint(self, export_id: str, folder_id: str) -> Checkpoint | None:
        cp = self.pages.get((export_id, folder_id))
        return replace(cp, counts=dict(cp.counts)) if cp else None

    async def checkpoints(self, export_id: str) -> list[Checkpoint]:
        return [replace(cp) for (e, _), cp in self.pages.items() if e == export_id]

    async def put_entry(self, export_id: str, entry: ManifestEntry) -> None:
        self.writes += 1
        self.items.setdefault(export_id, {})[entry.message_id] = entry

    async def put_entries(self, export_id: str, entries: list[ManifestEntry]) -> None:
        self.batches.append([e.message_id for e in entries])
        for entry in entries:
            await self.put_entry(export_id, entry)

    async def put_removed(self, export_id: str, entry: ManifestEntry) -> None:
        self.items.setdefault(export_id, {}).setdefault(entry.message_id, entry)

    async def entries(self, export_id: str) -> list[ManifestEntry]:
        return list(self.items.get(export_id, {}).values())

    async def stream_entries(self, export_id: str) -> AsyncIterator[ManifestEntry]:
        for entry in await self.entries(export_id):
            yield entry


class FakeItems:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, name: str, data: bytes, content_type: str) -> None:
        self.blobs[name] = data


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail_next = False

    async def send(self, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("worker killed")
        self.sent.append(text)


class FakeMailbox:
    """A folder of MESSAGES, read by delta in pages of PAGE."""

    path = MailboxPath.of(None)

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.requests.append(request.path)
        if request.path.endswith("/$value"):
            message_id = request.path.split("/")[-2]
            return _response(f"MIME of {message_id}".encode())
        offset = int(request.path.rsplit("=", 1)[1]) if "skip=" in request.path else 0
        body: dict[str, Any] = {
            "value": [{"id": m} for m in MESSAGES[offset : offset + PAGE]],
        }
        if offset + PAGE < len(MESSAGES):
            body["@odata.nextLink"] = (
                f"{BASE}/me/mailFolders/inbox/messages/delta?skip={offset + PAGE}"
            )
        else:
            body["@odata.deltaLink"] = f"{BASE}/me/mailFolders/inbox/messages/delta?token=1"
        return _response(json.dumps(body).encode())


def _response(content: bytes) -> GraphResponse:
    return GraphResponse(200, httpx.Headers(), content, None)


class FakeMailboxes:
    def __init__(self, mailbox: FakeMailbox) -> None:
        self.mailbox = mailbox

    def system(self, connection: object, **_: object) -> FakeMailbox:
        return self.mailbox


class FakeConnections:
    async def get(self, connection_id: str) -> object:
        return object()


class FakeKeys:
    ring = KeyRing(
        aes_keys={"v1": b"k" * 32},
        aes_current="v1",
        fernet_keys={"f1": [Fernet.generate_key()]},
        fernet_current="f1",
    )

    async def get(self) -> KeyRing:
        return self.ring


def _service(store: FakeStore, queue: FakeQueue, mailbox: FakeMailbox) -> ExportService:
    return ExportService(
        mailboxes=FakeMailboxes(mailbox),  # type: ignore[arg-type]
        connection_store=FakeConnections(),  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        items=FakeItems(),  # type: ignore[arg-type]
        queue=queue,
        key_ring=FakeKeys(),  # type: ignore[arg-type]
        page_size=PAGE,
        clock=lambda: "2026-12-02T00:00:00Z",
    )


def _job_message(page: int) -> str:
    return json.dumps({"c": "conn", "e": "exp", "f": "inbox", "p": page})


async def _arrange() -> tuple[FakeStore, FakeQueue, FakeMailbox, ExportService]:
    store, queue, mailbox = FakeStore(), FakeQueue(), FakeMailbox()
    await store.save_job(ExportJob("conn", "exp", "queued", ["inbox"], "mime", "t0"))
    await store.save_checkpoint(Checkpoint("exp", "inbox", link=""), if_unchanged=False)
    return store, queue, mailbox, _service(store, queue, mailbox)


async def _drain(service: ExportService, queue: FakeQueue) -> None:
    while queue.sent:
        await service.work(base64.b64decode(queue.sent.pop(0)).decode())


def test_a_whole_folder_runs_page_by_page_and_seals_the_manifest() -> None:
    async def run() -> None:
        store, queue, _, service = await _arrange()
        await service.work(_job_message(0))
        await _drain(service, queue)

        job = store.jobs[("conn", "exp")]
        assert job.status == "completed"
        assert job.counts == {"messages": 5, "removed": 0, "bytes": 50, "failed": 0}
        assert job.seal and job.seal_key == "v1"
        entries = sorted(store.items["exp"].values(), key=lambda e: e.message_id)
        assert [e.message_id for e in entries] == MESSAGES
        cp = store.pages[("exp", "inbox")]
        assert cp.done and cp.delta_link and cp.delta_link.endswith("token=1")

    asyncio.run(run())


def test_a_worker_killed_after_its_checkpoint_but_before_queueing_the_next_page_resumes() -> None:
    async def run() -> None:
        store, queue, mailbox, service = await _arrange()
        queue.fail_next = True
        with pytest.raises(RuntimeError):
            await service.work(_job_message(0))  # checkpoint moved to page 1, nothing queued
        assert store.pages[("exp", "inbox")].page == 1
        assert queue.sent == []

        await service.work(_job_message(0))  # the host redelivers page 0
        await _drain(service, queue)

        assert store.jobs[("conn", "exp")].status == "completed"
        assert sorted(store.items["exp"]) == MESSAGES
        # Page 0 was not read again: its checkpoint had moved on.
        assert sum(1 for p in mailbox.requests if p.endswith("/$value")) == len(MESSAGES)

    asyncio.run(run())


def test_a_duplicate_delivery_of_a_done_page_queues_nothing_more() -> None:
    async def run() -> None:
        _, queue, mailbox, service = await _arrange()
        await service.work(_job_message(0))
        assert len(queue.sent) == 1
        read = len(mailbox.requests)

        await service.work(_job_message(0))

        assert len(queue.sent) == 1
        assert len(mailbox.requests) == read

    asyncio.run(run())


def test_a_page_read_twice_leaves_one_manifest_row_per_message() -> None:
    async def run() -> None:
        store, queue, _, service = await _arrange()
        cp = store.pages[("exp", "inbox")]
        await service.work(_job_message(0))
        store.pages[("exp", "inbox")] = cp  # as if the first run died before its checkpoint
        queue.sent.clear()
        await service.work(_job_message(0))
        await _drain(service, queue)

        assert sorted(store.items["exp"]) == MESSAGES
        assert store.writes == len(MESSAGES) + PAGE
        assert store.jobs[("conn", "exp")].counts["messages"] == len(MESSAGES)

    asyncio.run(run())


def test_a_page_writes_its_manifest_rows_together_after_their_items() -> None:
    async def run() -> None:
        store, _queue, _, service = await _arrange()
        items: FakeItems = service._items  # type: ignore[assignment]
        await service.work(_job_message(0))

        assert len(store.batches) == 1
        assert sorted(store.batches[0]) == MESSAGES[:PAGE]
        blobs = {e.blob for e in store.items["exp"].values()}
        assert blobs <= set(items.blobs)  # no row names a blob that was not written

    asyncio.run(run())


def test_a_page_advances_when_only_the_previous_pages_queued_mark_moved_its_checkpoint() -> None:
    async def run() -> None:
        store, queue, mailbox, service = await _arrange()
        await service.work(_job_message(0))
        [next_page] = queue.sent
        # The job of page 0 marks "page 1 queued" after queueing it; here that write lands
        # while page 1's job is reading Graph, after it read the checkpoint.
        key = ("exp", "inbox")
        ahead = store.pages[key]
        store.pages[key] = replace(ahead, queued=False)
        sent = mailbox.send

        async def send_then_mark(request: GraphRequest) -> GraphResponse:
            if "/delta" in request.path and store.pages[key].page == 1:
                await store.save_checkpoint(
                    replace(store.pages[key], queued=True), if_unchanged=True
                )
            return await sent(request)

        mailbox.send = send_then_mark  # type: ignore[method-assign]
        queue.sent.clear()

        await service.work(base64.b64decode(next_page).decode())

        assert store.pages[key].page == 2
        assert len(queue.sent) == 1  # page 2 was queued: the export did not stall

    asyncio.run(run())


def test_a_large_page_holds_a_bounded_number_of_items_while_storage_lags() -> None:
    async def run() -> None:
        many = [f"n{i}" for i in range(60)]
        store, queue, mailbox = FakeStore(), FakeQueue(), FakeMailbox()
        await store.save_job(ExportJob("conn", "exp", "queued", ["inbox"], "mime", "t0"))
        await store.save_checkpoint(Checkpoint("exp", "inbox", link=""), if_unchanged=False)
        service = _service(store, queue, mailbox)
        fetched, written, most = 0, 0, 0
        storage = asyncio.Event()
        send, put = mailbox.send, service._items.put

        async def counting_send(request: GraphRequest) -> GraphResponse:
            nonlocal fetched, most
            if "/delta" in request.path:  # one page holding every message
                page = {"value": [{"id": m} for m in many], "@odata.deltaLink": f"{BASE}/d?t=1"}
                return _response(json.dumps(page).encode())
            response = await send(request)
            fetched += 1
            most = max(most, fetched - written)
            return response

        async def slow_put(name: str, data: bytes, content_type: str) -> None:
            nonlocal written
            await storage.wait()  # storage lags until Graph has had every chance to run ahead
            await put(name, data, content_type)
            written += 1

        mailbox.send = counting_send  # type: ignore[method-assign]
        service._items.put = slow_put  # type: ignore[method-assign]
        work = asyncio.create_task(service.work(_job_message(0)))
        for _ in range(50):
            await asyncio.sleep(0)
        storage.set()
        await work

        assert written == len(many)
        assert most <= 8

    asyncio.run(run())


def test_a_cancelled_export_reads_no_more_pages() -> None:
    async def run() -> None:
        store, queue, mailbox, service = await _arrange()
        await service.work(_job_message(0))
        job = store.jobs[("conn", "exp")]
        store.jobs[("conn", "exp")] = replace(job, status="cancelled")
        before = len(mailbox.requests)

        await _drain(service, queue)

        assert len(mailbox.requests) == before

    asyncio.run(run())


def test_a_removal_never_replaces_an_added_message_with_the_same_id() -> None:
    async def run() -> None:
        store = FakeStore()
        added = ManifestEntry("m1", "archive", size=3, sha256="ab")
        await store.put_entry("exp", added)
        await store.put_removed("exp", ManifestEntry("m1", "inbox", removed=True))
        assert store.items["exp"]["m1"] == added

    asyncio.run(run())


def test_the_seal_changes_when_any_entry_changes() -> None:
    _, key = seal_key(FakeKeys.ring)
    entries = [ManifestEntry(m, "inbox", size=1, sha256="00" * 32) for m in MESSAGES]
    sealed = chain(key, "exp", entries)

    altered = [*entries[:2], replace(entries[2], sha256="11" * 32), *entries[3:]]

    assert chain(key, "exp", entries) == sealed
    assert chain(key, "exp", altered) != sealed
    assert chain(key, "other", entries) != sealed
    assert chain(key, "exp", entries[:-1]) != sealed
