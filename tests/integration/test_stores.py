"""Connections (and pending flows left by earlier releases) in a real Azurite, sealed with the
real envelope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.connections.models import Connection, ConnectionStatus
from shared.crypto.envelope import CiphertextRejected
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import LocalKeyProvider
from shared.store.connections import CONNECTIONS, ConnectionStore
from shared.store.pending_flows import FLOW_TTL, TABLE, PendingFlowStore
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
async def tables(azurite: AzuriteServer) -> AsyncIterator[TableSet]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield TableSet(service, f"t{uuid.uuid4().hex[:12]}")
    await service.close()


@pytest.fixture
def keys(tmp_path: Path) -> KeyRingCache:
    return KeyRingCache(LocalKeyProvider(None, None, tmp_path / "keys.json"))


async def test_rows_left_by_earlier_releases_are_purged_once_expired(
    tables: TableSet, keys: KeyRingCache
) -> None:
    """Sign-ins no longer store flows; rows written before an upgrade still go away."""
    store = PendingFlowStore(tables, keys)
    table = await tables.table(TABLE)
    for row_key, expires in (("old", NOW - timedelta(minutes=1)), ("live", NOW + FLOW_TTL)):
        await table.create_entity({"PartitionKey": "st", "RowKey": row_key, "ExpiresAt": expires})

    purged = await store.purge_expired(NOW)

    assert purged == 1
    assert [e["RowKey"] async for e in table.list_entities()] == ["live"]


def alice_connection(connection_id: str) -> Connection:
    return Connection(
        id=connection_id,
        owner_oid="oid-alice",
        owner_tid="tid",
        mailbox="alice@contoso.test",
        scopes=["Mail.ReadWrite"],
        status=ConnectionStatus.ACTIVE,
        created_at=NOW,
    )


async def test_reconnect_claims_the_same_id(tables: TableSet, keys: KeyRingCache) -> None:
    store = ConnectionStore(tables, keys)

    first = await store.claim_id("tid", "oid-alice", "alice@contoso.test", "A" * 32)
    second = await store.claim_id("tid", "oid-alice", "alice@contoso.test", "B" * 32)
    other = await store.claim_id("tid", "oid-alice", "support@contoso.test", "C" * 32)

    assert first == second == "A" * 32
    assert other == "C" * 32


async def test_a_cache_copied_to_another_connection_does_not_decrypt(
    tables: TableSet, keys: KeyRingCache
) -> None:
    store = ConnectionStore(tables, keys)
    await store.save(alice_connection("a" * 32), b'{"RefreshToken": {"secret": "alice"}}')
    table = await tables.table(CONNECTIONS)
    stolen = await table.get_entity("a" * 32, "a" * 32)
    await table.upsert_entity(
        {**stolen, "PartitionKey": "m" * 32, "RowKey": "m" * 32, "Mailbox": "mallory@x"}
    )

    opened = await store.open_cache("a" * 32)
    assert opened is not None and b"alice" in opened.cache
    with pytest.raises(CiphertextRejected):
        await store.open_cache("m" * 32)


async def test_ids_that_cannot_be_ours_never_reach_storage(
    tables: TableSet, keys: KeyRingCache
) -> None:
    store = ConnectionStore(tables, keys)

    assert await store.get("../connections") is None
    assert await store.get("x") is None
    assert await store.get("a" * 200) is None
