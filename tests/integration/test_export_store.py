"""Export jobs, checkpoints, manifest rows and items in a real Azurite (tables and blobs)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from shared.store.blobs import BlobItems, exports_container_name
from shared.store.exports import (
    Checkpoint,
    CheckpointMoved,
    ExportJob,
    ExportStore,
    ManifestEntry,
)
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer


@pytest.fixture
async def store(azurite: AzuriteServer) -> AsyncIterator[ExportStore]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield ExportStore(TableSet(service, f"t{uuid.uuid4().hex[:12]}"))
    await service.close()


@pytest.fixture
async def items(azurite: AzuriteServer) -> AsyncIterator[BlobItems]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs = BlobItems(service, exports_container_name(f"T{uuid.uuid4().hex[:12]}"))
    yield blobs
    await blobs.aclose()


async def test_a_checkpoint_written_by_another_worker_refuses_a_stale_write(
    store: ExportStore,
) -> None:
    first = await store.save_checkpoint(Checkpoint("e1", "f/1", link=""), if_unchanged=False)
    mine = await store.get_checkpoint("e1", "f/1")
    assert mine is not None and mine.etag == first.etag
    await store.save_checkpoint(replace(first, page=1, link="next"), if_unchanged=True)

    with pytest.raises(CheckpointMoved):
        await store.save_checkpoint(replace(mine, page=1, link="other"), if_unchanged=True)
    now = await store.get_checkpoint("e1", "f/1")
    assert now is not None and (now.page, now.link) == (1, "next")


async def test_a_job_row_round_trips_and_refuses_a_stale_write(store: ExportStore) -> None:
    job = ExportJob("c1", "e1", "queued", ["inbox/id"], "mime", "t0", mailbox="x@y.test")
    saved = await store.save_job(job)
    read = await store.get_job("c1", "e1")
    assert read is not None
    assert (read.status, read.folders, read.mailbox, read.since) == (
        "queued",
        ["inbox/id"],
        "x@y.test",
        None,
    )
    await store.save_job(replace(saved, status="running"), if_unchanged=True)

    with pytest.raises(CheckpointMoved):
        await store.save_job(replace(saved, status="cancelled"), if_unchanged=True)
    assert await store.get_job("c2", "e1") is None  # only found under its own connection


async def test_manifest_rows_are_one_per_message_and_page_in_order(store: ExportStore) -> None:
    ids = [f"AAMk/{i}+x=" for i in range(7)]  # Graph ids may hold characters RowKeys refuse
    for message_id in ids:
        await store.put_entry("e1", ManifestEntry(message_id, "f", size=1, sha256="ab"))
    await store.put_entry("e1", ManifestEntry(ids[0], "g", size=2, sha256="cd"))  # again
    await store.put_removed("e1", ManifestEntry(ids[1], "f", removed=True))  # added wins
    await store.put_removed("e1", ManifestEntry("gone", "f", removed=True))

    first, after = await store.entries_page("e1", after=None, limit=5)
    rest, end = await store.entries_page("e1", after=after, limit=5)
    every = await store.entries("e1")

    assert end is None
    assert [e.message_id for e in first + rest] == [e.message_id for e in every]
    assert sorted(e.message_id for e in every) == sorted([*ids, "gone"])
    by_id = {e.message_id: e for e in every}
    assert (by_id[ids[0]].folder_id, by_id[ids[0]].size) == ("g", 2)
    assert by_id[ids[1]].removed is False
    assert by_id["gone"].removed is True
    assert await store.get_entry("e1", ids[2]) == by_id[ids[2]]

    await store.delete_export_rows("e1")
    assert await store.entries("e1") == []


async def test_a_page_of_entries_written_again_leaves_one_row_per_message(
    store: ExportStore,
) -> None:
    # 230 entries: three transactions (Table Storage takes at most 100 operations in one).
    ids = [f"AAMk/{i}+x=" for i in range(230)]
    page = [ManifestEntry(m, "f", size=1, sha256="ab", blob=f"b/{i}") for i, m in enumerate(ids)]
    await store.put_entries("e1", page)

    # The same page redelivered after a worker died before its checkpoint, one item changed.
    again = [*page[:-1], replace(page[-1], size=2, sha256="cd")]
    await store.put_entries("e1", again)

    every = await store.entries("e1")
    assert sorted(e.message_id for e in every) == sorted(ids)
    assert {e.message_id: e for e in every}[ids[-1]] == again[-1]


async def test_streamed_entries_are_the_entries_in_sealing_order(store: ExportStore) -> None:
    page = [ManifestEntry(f"m{i}", "f", size=i, sha256="ab") for i in range(1200)]
    await store.put_entries("e1", page)

    streamed = [e async for e in store.stream_entries("e1")]

    assert streamed == await store.entries("e1")
    assert len(streamed) == 1200


async def test_a_removal_after_a_batched_addition_leaves_the_addition(store: ExportStore) -> None:
    added = ManifestEntry("m1", "archive", size=3, sha256="ab", blob="b/m1")
    await store.put_entries("e1", [added])
    await store.put_removed("e1", ManifestEntry("m1", "inbox", removed=True))

    assert await store.entries("e1") == [added]


async def test_items_are_written_read_and_deleted_under_a_prefix(items: BlobItems) -> None:
    await items.put("c1/e1/a.eml", b"one", "message/rfc822")
    await items.put("c1/e1/b.eml", b"two", "message/rfc822")
    await items.put("c1/e2/a.eml", b"other export", "message/rfc822")

    assert await items.get("c1/e1/a.eml") == b"one"
    assert await items.delete_under("c1/e1/") == 2
    assert await items.get("c1/e1/a.eml") is None
    assert await items.get("c1/e2/a.eml") == b"other export"
