"""The lifecycle timer finds subscriptions to renew through an expiry index in a real
Azurite: the queries it makes are recorded, and none of them reads the `subscriptions`
table as a whole (only point reads of the rows the index names)."""

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
from shared.store.subscriptions import Subscription, SubscriptionStore
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Recorded:
    """A table client that records every query (table, filter) and passes it on."""

    def __init__(self, name: str, client: Any, log: list[tuple[str, str]]) -> None:
        self._name, self._client, self._log = name, client, log

    def query_entities(self, query_filter: str, **kwargs: Any) -> Any:
        self._log.append((self._name, query_filter))
        return self._client.query_entities(query_filter, **kwargs)

    def list_entities(self, **kwargs: Any) -> Any:
        self._log.append((self._name, "<all>"))
        return self._client.list_entities(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class RecordingTables(TableSet):
    def __init__(self, service: TableServiceClient, prefix: str) -> None:
        super().__init__(service, prefix)
        self.queries: list[tuple[str, str]] = []

    async def table(self, short: str) -> Any:
        return Recorded(short, await super().table(short), self.queries)


@pytest.fixture
async def tables(azurite: AzuriteServer) -> AsyncIterator[RecordingTables]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield RecordingTables(service, f"t{uuid.uuid4().hex[:12]}")
    await service.close()


@pytest.fixture
def keys(tmp_path: Path) -> KeyRingCache:
    return KeyRingCache(LocalKeyProvider(None, None, tmp_path / "keys.json"))


def _subscription(sid: str, expires: datetime) -> Subscription:
    return Subscription(
        id=sid,
        connection_id="conn-1",
        graph_id=f"g-{sid}",
        notification_url="https://hook.example/flow",
        folder="inbox",
        filters={},
        include_message=False,
        expires=expires,
        created_at=NOW,
        client_state="state",
        signing_secret="whsec_c2VjcmV0",
    )


async def test_renewal_reads_the_expiry_index_not_the_subscriptions_table(
    tables: RecordingTables, keys: KeyRingCache
) -> None:
    writer = SubscriptionStore(tables, keys)
    soon = _subscription("soon", NOW + timedelta(hours=1))
    later = _subscription("later", NOW + timedelta(days=2))
    await writer.save(soon)
    await writer.save(later)
    await writer.save(_subscription("far", NOW + timedelta(days=6)))
    await writer.expiring_before(NOW)  # the one-time backfill of older rows runs here

    tables.queries.clear()
    timer = SubscriptionStore(tables, keys)  # another worker, another run
    due = await timer.expiring_before(NOW + timedelta(days=3))

    assert sorted(s.id for s in due) == ["later", "soon"]
    assert tables.queries == [("subscriptionexpiry", "PartitionKey eq @pk and RowKey lt @before")]

    # Renewed: the row names a later hint, the old one is dropped when it comes due.
    soon.expires = NOW + timedelta(days=7)
    await timer.save(soon)
    tables.queries.clear()
    again = await timer.expiring_before(NOW + timedelta(days=3))

    assert [s.id for s in again] == ["later"]
    assert all(name == "subscriptionexpiry" for name, _ in tables.queries)
    assert [s.id for s in await timer.expiring_before(NOW + timedelta(days=3))] == ["later"]

    await timer.delete(later)
    assert sorted(s.id for s in await timer.expiring_before(NOW + timedelta(days=8))) == [
        "far",
        "soon",
    ]


async def test_subscriptions_saved_before_the_index_are_backfilled_once(
    tables: RecordingTables, keys: KeyRingCache
) -> None:
    store = SubscriptionStore(tables, keys)
    await store.save(_subscription("old", NOW + timedelta(hours=1)))
    index = await tables.table("subscriptionexpiry")
    async for row in index.list_entities():  # as if written by the previous release
        await index.delete_entity(row["PartitionKey"], row["RowKey"])

    first = await SubscriptionStore(tables, keys).expiring_before(NOW + timedelta(days=1))
    tables.queries.clear()
    second = await SubscriptionStore(tables, keys).expiring_before(NOW + timedelta(days=1))

    assert [s.id for s in first] == [s.id for s in second] == ["old"]
    assert all(name == "subscriptionexpiry" for name, _ in tables.queries)
