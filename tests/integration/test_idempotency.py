"""Idempotency-Key records in a real Azurite: claim, replay, mismatch, races, expiry."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import LocalKeyProvider
from shared.store.idempotency import TABLE, ClaimState, IdempotencyStore, StoredResponse
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TTL = timedelta(hours=24)


@pytest.fixture
async def tables(azurite: AzuriteServer) -> AsyncIterator[TableSet]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield TableSet(service, f"t{uuid.uuid4().hex[:12]}")
    await service.close()


@pytest.fixture
def store(tables: TableSet, tmp_path: Path) -> IdempotencyStore:
    keys = KeyRingCache(LocalKeyProvider(None, None, tmp_path / "keys.json"))
    return IdempotencyStore(tables, keys, TTL)


FIRST = StoredResponse(202, {"Location": "/api/x"}, b'{"id": "AAk", "subject": "secret"}')


async def test_a_completed_key_replays_its_first_response(store: IdempotencyStore) -> None:
    claim = await store.claim("caller", "conn", "key-1", "fp", NOW)
    await store.complete(claim, FIRST)

    replay = await store.claim("caller", "conn", "key-1", "fp", NOW + timedelta(hours=1))

    assert claim.state is ClaimState.CLAIMED
    assert replay.state is ClaimState.REPLAY
    assert replay.response == FIRST


async def test_the_same_key_with_another_request_is_a_mismatch(store: IdempotencyStore) -> None:
    claim = await store.claim("caller", "conn", "key-2", "fp-a", NOW)
    await store.complete(claim, FIRST)

    other = await store.claim("caller", "conn", "key-2", "fp-b", NOW)

    assert other.state is ClaimState.MISMATCH


async def test_keys_are_scoped_to_caller_and_connection(store: IdempotencyStore) -> None:
    await store.claim("caller", "conn", "key-3", "fp", NOW)

    other_caller = await store.claim("someone-else", "conn", "key-3", "fp", NOW)
    other_connection = await store.claim("caller", "conn-2", "key-3", "fp", NOW)

    assert other_caller.state is ClaimState.CLAIMED
    assert other_connection.state is ClaimState.CLAIMED


async def test_concurrent_first_uses_let_exactly_one_proceed(store: IdempotencyStore) -> None:
    claims = await asyncio.gather(
        *(store.claim("caller", "conn", "key-4", "fp", NOW) for _ in range(8))
    )

    states = sorted(c.state for c in claims)
    assert states.count(ClaimState.CLAIMED) == 1
    assert states.count(ClaimState.IN_PROGRESS) == 7


async def test_a_released_key_can_be_claimed_again(store: IdempotencyStore) -> None:
    claim = await store.claim("caller", "conn", "key-5", "fp", NOW)
    await store.release(claim)

    again = await store.claim("caller", "conn", "key-5", "fp", NOW)

    assert again.state is ClaimState.CLAIMED


async def test_an_expired_key_is_claimed_afresh_and_purged(
    store: IdempotencyStore, tables: TableSet
) -> None:
    first = await store.claim("caller", "conn", "key-6", "fp", NOW)
    await store.complete(first, FIRST)
    await store.claim("caller", "conn", "key-7", "fp", NOW)

    later = NOW + TTL + timedelta(seconds=1)
    reused = await store.claim("caller", "conn", "key-6", "fp-new", later)
    purged = await store.purge_expired(later)

    assert reused.state is ClaimState.CLAIMED
    assert purged == 1  # key-7; key-6 was replaced by a fresh record
    table = await tables.table(TABLE)
    remaining = [e async for e in table.list_entities()]
    assert len(remaining) == 1


async def test_the_stored_response_is_sealed_and_the_key_not_stored(
    store: IdempotencyStore, tables: TableSet
) -> None:
    claim = await store.claim("caller", "conn", "my-readable-key", "fp", NOW)
    await store.complete(claim, FIRST)

    table = await tables.table(TABLE)
    (entity,) = [e async for e in table.list_entities()]

    assert b"secret" not in repr(dict(entity)).encode()
    assert "my-readable-key" not in repr(dict(entity))


async def test_a_response_too_large_for_one_entity_replays_without_its_body(
    store: IdempotencyStore,
) -> None:
    huge = StoredResponse(200, {}, json.dumps({"body": os.urandom(1024 * 1024).hex()}).encode())
    claim = await store.claim("caller", "conn", "key-8", "fp", NOW)
    await store.complete(claim, huge)

    replay = await store.claim("caller", "conn", "key-8", "fp", NOW)

    assert replay.response is not None
    assert (replay.response.status, replay.response.body) == (200, b"{}")


async def test_a_claim_whose_worker_died_is_reported_abandoned_not_in_progress(
    store: IdempotencyStore,
) -> None:
    await store.claim("caller", "conn", "key-crash", "fp", NOW)  # never completed

    soon = await store.claim("caller", "conn", "key-crash", "fp", NOW + timedelta(minutes=1))
    later = await store.claim("caller", "conn", "key-crash", "fp", NOW + timedelta(minutes=11))

    assert soon.state is ClaimState.IN_PROGRESS
    assert later.state is ClaimState.ABANDONED
