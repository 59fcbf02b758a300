"""The notification endpoint's work on the request path: clientState per item in constant
time, one queue job per accepted item, everything else dropped and audited; and no request
can make it do more than a bounded amount of work."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.audit import MemoryAuditSink
from shared.errors import TooManyNotifications, ValidationFailed
from shared.notifications.intake import MAX_ITEMS_PER_REQUEST, NotificationIntake
from shared.notifications.jobs import JobQueue
from shared.store.subscriptions import Subscription

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _subscription(graph_id: str = "g-1") -> Subscription:
    return Subscription(
        id="sub-1",
        connection_id="conn-1",
        graph_id=graph_id,
        notification_url="https://example.com/hook",
        folder="inbox",
        filters={},
        include_message=False,
        expires=NOW,
        created_at=NOW,
        client_state="the-state",
        signing_secret="the-secret",
    )


class FakeStore:
    def __init__(self, *subs: Subscription) -> None:
        self.subs = {s.graph_id: s for s in subs}
        self.lookups = 0

    async def by_graph_id(self, graph_id: str) -> Subscription | None:
        self.lookups += 1
        return self.subs.get(graph_id)


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(base64.b64decode(text)))

    async def aclose(self) -> None:
        pass


def _service(
    queue: FakeQueue, audit: MemoryAuditSink, store: FakeStore | None = None
) -> NotificationIntake:
    store = store or FakeStore(_subscription())
    return NotificationIntake(store, JobQueue(queue), audit)


def _item(state: str | None, message_id: str = "m1", sid: str = "g-1") -> dict[str, Any]:
    return {
        "subscriptionId": sid,
        "clientState": state,
        "changeType": "created",
        "resourceData": {"id": message_id},
    }


async def test_only_items_with_the_right_client_state_are_queued() -> None:
    queue, audit = FakeQueue(), MemoryAuditSink()
    body = {
        "value": [
            _item("the-state", "m1"),
            _item("wrong", "m2"),
            _item(None, "m3"),
            _item("the-state", "m4", sid="unknown"),
        ]
    }

    queued = await _service(queue, audit).receive(json.dumps(body).encode(), "cid")

    assert queued == 1
    assert queue.sent == [{"kind": "change", "sub": "sub-1", "msg": "m1", "cid": "cid"}]
    [rejected] = [e for e in audit.events if e.action == "notification.rejected"]
    assert rejected.reason == "client_state_mismatch"
    assert rejected.counts == {
        "rejected": 3,
        "client_state_mismatch": 2,
        "unknown_subscription": 1,
    }
    assert rejected.connection_id == "conn-1" and rejected.correlation_id == "cid"
    # Nothing secret in the audit trail.
    assert "the-state" not in repr(audit.events) and "wrong" not in repr(audit.events)


async def test_lifecycle_events_are_queued() -> None:
    queue, audit = FakeQueue(), MemoryAuditSink()
    item = {"subscriptionId": "g-1", "clientState": "the-state", "lifecycleEvent": "missed"}

    body = json.dumps({"value": [item]}).encode()

    assert await _service(queue, audit).receive_lifecycle(body, "c") == 1
    assert queue.sent[0]["event"] == "missed"


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"value": 3}', b"x" * (1024 * 1024 + 1)])
async def test_malformed_or_oversized_notifications_are_refused(body: bytes) -> None:
    with pytest.raises(ValidationFailed):
        await _service(FakeQueue(), MemoryAuditSink()).receive(body, "cid")


async def test_each_distinct_subscription_is_looked_up_once_and_rejections_are_one_event() -> None:
    queue, audit, store = FakeQueue(), MemoryAuditSink(), FakeStore(_subscription())
    items = [_item("guess", f"m{i}", sid="unknown") for i in range(MAX_ITEMS_PER_REQUEST - 1)]
    body = json.dumps({"value": [*items, _item("the-state", "ok")]}).encode()

    queued = await _service(queue, audit, store).receive(body, "cid")

    assert queued == 1
    assert store.lookups == 2  # "unknown" and "g-1", each once
    [rejected] = audit.events
    assert rejected.action == "notification.rejected"
    assert rejected.reason == "unknown_subscription"
    assert rejected.counts == {
        "rejected": MAX_ITEMS_PER_REQUEST - 1,
        "unknown_subscription": MAX_ITEMS_PER_REQUEST - 1,
    }


async def test_more_items_than_graph_batches_are_refused_before_any_lookup() -> None:
    queue, audit, store = FakeQueue(), MemoryAuditSink(), FakeStore(_subscription())
    items = [_item("x", f"m{i}", sid=f"g-{i}") for i in range(MAX_ITEMS_PER_REQUEST + 1)]

    with pytest.raises(TooManyNotifications):
        await _service(queue, audit, store).receive(json.dumps({"value": items}).encode(), "c")

    assert store.lookups == 0 and audit.events == [] and queue.sent == []


async def test_updates_are_queued_only_for_subscriptions_that_want_flags() -> None:
    flags = _subscription("g-2")
    flags.id, flags.events = "sub-2", ("created", "flagged")
    store = FakeStore(_subscription(), flags)
    updated = [
        {**_item("the-state", "m1", sid="g-1"), "changeType": "updated"},
        {**_item("the-state", "m2", sid="g-2"), "changeType": "updated"},
        {**_item("the-state", "m3", sid="g-2"), "changeType": "deleted"},
    ]
    queue, audit = FakeQueue(), MemoryAuditSink()

    body = json.dumps({"value": updated}).encode()
    queued = await _service(queue, audit, store).receive(body, "cid")

    assert queued == 1
    assert queue.sent == [
        {"kind": "change", "sub": "sub-2", "msg": "m2", "cid": "cid", "type": "updated"}
    ]


class SlowQueue(FakeQueue):
    """A queue whose sends take a while: counts how many are in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def send(self, text: str) -> None:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        await super().send(text)
        self.in_flight -= 1


async def test_a_batch_of_items_is_queued_at_once_not_one_after_another() -> None:
    queue, audit = SlowQueue(), MemoryAuditSink()
    items = [_item("the-state", f"m{i}") for i in range(20)]

    queued = await _service(queue, audit).receive(json.dumps({"value": items}).encode(), "cid")

    assert queued == 20
    assert queue.peak == 20  # Graph's 3-second answer does not wait for 20 round trips
    assert sorted(job["msg"] for job in queue.sent) == sorted(f"m{i}" for i in range(20))
