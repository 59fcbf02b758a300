"""Poll-mode state in a real Azurite: the due index is read as a range (no scan), a due read
is claimed once, a crash leaves the subscription indexed, deleting the subscription leaves
nothing behind, and a poll subscription is never in the renewal index."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import LocalKeyProvider
from shared.store.polls import DUE_PARTITION, POLLS, PollStore, due_key
from shared.store.subscriptions import Subscription, SubscriptionStore
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
    # Many ids at once (a whole folder) are answered from one range read, the same way.
    many = await store.known("sub-a", [*ids, "never-a-member"])
    assert many == set(ids[1:200])


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


def _subscription(sid: str, **extra: Any) -> Subscription:
    return Subscription(
        id=sid,
        connection_id="conn-1",
        graph_id=extra.pop("graph_id", f"g-{sid}"),
        notification_url="https://hook.example/flow",
        folder="inbox",
        filters={},
        include_message=False,
        expires=NOW + MINUTE,
        created_at=NOW,
        client_state="state",
        signing_secret="whsec_c2VjcmV0",
        **extra,
    )


async def test_a_poll_subscription_is_never_due_for_renewal_and_keeps_its_mode(
    tables: TableSet, tmp_path: Path
) -> None:
    store = SubscriptionStore(tables, KeyRingCache(LocalKeyProvider(None, None, tmp_path / "k")))
    await store.save(_subscription("pushed"))
    await store.save(_subscription("polled", graph_id="", mode="poll", mailbox="support@x.test"))

    due = await store.expiring_before(NOW + timedelta(days=1))
    polled, pushed = await store.get("polled"), await store.get("pushed")

    assert [s.id for s in due] == ["pushed"]
    assert polled is not None and (polled.mode, polled.mailbox) == ("poll", "support@x.test")
    # Rows without the columns (all rows written before modes existed) read as push.
    assert pushed is not None and (pushed.mode, pushed.mailbox) == ("push", None)
    assert await store.by_graph_id("") is None
