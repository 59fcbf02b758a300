"""Poll-mode state in a real Azurite: the due index is read as a range (no scan), a due read
is claimed once, a crash leaves the subscription indexed, and deleting the subscription
leaves nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.store.polls import DUE_PARTITION, POLLS, PollStore, due_key
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
async def tables(azurite: AzuriteServer) -> AsyncIterator[TableSet]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield TableSet(service, f"t{uuid.uuid4().hex[:12]}")
    await service.close()


async def _rows(tables: TableSet) -> list[tuple[str, str]]:
    table = await tables.table(POLLS)
    return sorted([(r["PartitionKey"], r["RowKey"]) async for r in table.list_entities()])


async def test_a_due_read_is_claimed_once_and_the_next_one_scheduled(tables: TableSet) -> None:
    store = PollStore(tables)
    await store.start("sub-a", "https://graph.test/delta?$deltatoken=1", NOW)
    await store.start("sub-b", None, NOW + 5 * MINUTE)

    due = await store.due(NOW + MINUTE)
    [(hint, sid)] = due
    first = await store.claim(hint, sid, NOW + 2 * MINUTE)
    second = await PollStore(tables).claim(hint, sid, NOW + 2 * MINUTE)  # another run, late

    assert (sid, first, second) == ("sub-a", True, False)
    assert await store.due(NOW + MINUTE) == []
    assert [s for _, s in await store.due(NOW + 3 * MINUTE)] == ["sub-a"]
    assert await store.all_ids() == ["sub-a", "sub-b"]


async def test_a_hint_left_by_a_crash_is_dropped_when_it_comes_due(tables: TableSet) -> None:
    store = PollStore(tables)
    await store.start("sub-a", None, NOW)
    table = await tables.table(POLLS)
    stale = due_key("sub-a", NOW - MINUTE)  # written, then the run died before the state moved
    await table.upsert_entity({"PartitionKey": DUE_PARTITION, "RowKey": stale, "Id": "sub-a"})

    claimed = [await store.claim(h, s, NOW + MINUTE) for h, s in await store.due(NOW + MINUTE)]

    assert claimed == [False, True]  # the stale hint first, dropped; the live one claimed
    assert await store.due(NOW + MINUTE) == []


async def test_membership_is_written_in_batches_and_pruned_to_what_is_present(
    tables: TableSet,
) -> None:
    store = PollStore(tables)
    ids = [f"AAMk{i:04d}" for i in range(250)]  # more than one transaction's 100
    await store.add_members("sub-a", ids)

    await store.prune("sub-a", ids[:200])
    await store.remove_members("sub-a", [ids[0], "never-a-member"])

    assert await store.known("sub-a", [ids[0], ids[1], ids[220]]) == {ids[1]}


async def test_deleting_removes_state_membership_and_hint(tables: TableSet) -> None:
    store = PollStore(tables)
    await store.start("sub-a", "https://graph.test/delta?$deltatoken=1", NOW)
    await store.start("sub-b", None, NOW)
    await store.add_members("sub-a", ["m1", "m2"])

    await store.delete("sub-a")

    rows = await _rows(tables)
    assert all("sub-a" not in pk for pk, _ in rows)
    assert [r for r in rows if r[0] == DUE_PARTITION] == [(DUE_PARTITION, due_key("sub-b", NOW))]
    assert await store.state("sub-a") is None
