"""The delivery ledger in a real Azurite: a claim is a lease (exclusive while it lasts,
claimable again when it ends), a scheduled retry holds it with its token, and a settled
event is never claimed again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables.aio import TableServiceClient

from shared.store.deliveries import DeliveryStore, delivery_id
from shared.store.table_set import TableSet
from tests.support.azurite import AzuriteServer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
async def store(azurite: AzuriteServer) -> AsyncIterator[DeliveryStore]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    yield DeliveryStore(TableSet(service, f"t{uuid.uuid4().hex[:12]}"))
    await service.close()


async def test_a_claim_nobody_settles_becomes_claimable_when_its_lease_ends(
    store: DeliveryStore,
) -> None:
    first = await store.claim("sub", "m1", "created", now=NOW, lease=LEASE)
    # The worker holding it dies here: no settle.
    meanwhile = await store.claim("sub", "m1", "created", now=NOW + LEASE / 2, lease=LEASE)
    after = await store.claim("sub", "m1", "created", now=NOW + LEASE * 2, lease=LEASE)

    assert first.token is not None and first.record is not None
    assert first.record.id == delivery_id("sub", "m1", "created")
    assert meanwhile.token is None and meanwhile.busy_until == NOW + LEASE
    assert after.token is not None and after.token != first.token
    assert after.record is not None and after.record.id == first.record.id


async def test_only_one_of_many_concurrent_claims_wins(store: DeliveryStore) -> None:
    claims = await asyncio.gather(
        *(store.claim("sub", "m2", "created", now=NOW, lease=LEASE) for _ in range(8))
    )

    assert sum(c.token is not None for c in claims) == 1


async def test_a_scheduled_retry_holds_the_lease_with_its_token(store: DeliveryStore) -> None:
    claim = await store.claim("sub", "m3", "created", now=NOW, lease=LEASE)
    assert claim.record is not None
    retry_at = NOW + timedelta(seconds=30)
    token = await store.reschedule(
        claim.record, attempted_at=NOW, http_status=503, retry_at=retry_at, lease=LEASE
    )

    duplicate = await store.claim("sub", "m3", "created", now=retry_at, lease=LEASE)
    retry = await store.claim("sub", "m3", "created", now=retry_at, lease=LEASE, token=token)

    assert duplicate.token is None and duplicate.busy_until == retry_at + LEASE
    assert retry.token is not None and retry.record is not None
    assert (retry.record.attempts, retry.record.last_status) == (1, 503)


async def test_a_settled_event_is_not_claimed_again_and_types_are_separate_events(
    store: DeliveryStore,
) -> None:
    claim = await store.claim("sub", "m4", "created", now=NOW, lease=LEASE)
    assert claim.record is not None
    await store.settle(claim.record, "delivered", attempted_at=NOW, http_status=202)

    again = await store.claim("sub", "m4", "created", now=NOW + LEASE * 10, lease=LEASE)
    flagged = await store.claim("sub", "m4", "flagged", now=NOW, lease=LEASE)

    assert again.token is None and again.busy_until is None
    assert again.record is not None and again.record.status == "delivered"
    assert (again.record.attempts, again.record.last_status) == (1, 202)
    assert flagged.token is not None
    assert delivery_id("sub", "m4", "flagged") != delivery_id("sub", "m4", "created")


async def test_only_pending_events_whose_lease_ended_are_abandoned(store: DeliveryStore) -> None:
    for message_id in ("dead", "running", "done", "retrying"):
        await store.claim("sub-a", message_id, "created", now=NOW, lease=LEASE)
    done = await store.get("sub-a", delivery_id("sub-a", "done", "created"))
    retrying = await store.get("sub-a", delivery_id("sub-a", "retrying", "created"))
    assert done is not None and retrying is not None
    await store.settle(done, "delivered", attempted_at=NOW, http_status=200)
    await store.reschedule(
        retrying, attempted_at=NOW, http_status=503, retry_at=NOW + LEASE * 10, lease=LEASE
    )
    await store.claim(  # taken again later: its new lease runs
        "sub-a", "running", "created", now=NOW + LEASE * 2, lease=LEASE * 5
    )

    abandoned = await store.abandoned("sub-a", NOW + LEASE * 3)

    assert [r.message_id for r in abandoned] == ["dead"]
