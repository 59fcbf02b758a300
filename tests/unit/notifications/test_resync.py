"""The push path's sweep (`missed`, re-creation, the reconciliation timer): a message the
folder's delta shows is queued unless the ledger holds its event as settled. Queueing those
cost a job per message since the last sweep, each reading the row and stopping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.graph import GraphRequest
from shared.notifications.subscriptions import SubscriptionService
from shared.store.deliveries import delivery_id
from shared.store.subscriptions import Subscription
from tests.support.app import sample_settings
from tests.unit.notifications.test_polling import RecordedJobs

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)
LINK = "https://graph.test/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken="


class Ledger:
    def __init__(self, known: dict[str, str]) -> None:
        self.known = known
        self.reads: list[str] = []

    async def get(self, subscription_id: str, delivery: str) -> object | None:
        self.reads.append(delivery)
        return SimpleNamespace(status=self.known[delivery]) if delivery in self.known else None


class Saved:
    def __init__(self) -> None:
        self.saved: list[Subscription] = []

    async def save(self, s: Subscription, **_: Any) -> None:
        self.saved.append(s)


class Mailbox:
    correlation_id = "cid"
    connection = SimpleNamespace(id="conn-1", owner_tid="t", mailbox="alice@x")

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self._items = items

    async def pages(self, first: GraphRequest, *, max_pages: int) -> AsyncIterator[dict[str, Any]]:
        assert first.path == f"{LINK}1"
        yield {"value": self._items, "@odata.deltaLink": f"{LINK}2"}


def _subscription() -> Subscription:
    return Subscription(
        id="sub-1",
        connection_id="conn-1",
        graph_id="graph-1",
        notification_url="https://hook.example/flow",
        folder="inbox",
        filters={},
        include_message=False,
        expires=NOW,
        created_at=NOW,
        client_state="state",
        signing_secret="whsec_c2VjcmV0",
        delta_link=f"{LINK}1",
    )


async def test_a_sweep_queues_only_messages_the_ledger_does_not_hold() -> None:
    s = _subscription()
    ledger = Ledger(
        {
            delivery_id("sub-1", "delivered-by-push", "created"): "delivered",
            delivery_id("sub-1", "claimed-by-a-dead-worker", "created"): "pending",
        }
    )
    jobs = RecordedJobs()
    store = Saved()
    audit = MemoryAuditSink()
    service = SubscriptionService(
        load_settings({**sample_settings(), "CA_BUNDLE": ""}),
        connections=None,  # type: ignore[arg-type]
        connection_store=None,  # type: ignore[arg-type]
        mailboxes=None,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        deliveries=ledger,  # type: ignore[arg-type]
        jobs=jobs,  # type: ignore[arg-type]
        poller=None,  # type: ignore[arg-type]
        audit=audit,
        clock=lambda: NOW,
    )
    received = "2026-12-03T01:05:00Z"
    mb = Mailbox(
        [
            {"id": "delivered-by-push", "receivedDateTime": received},
            {"id": "never-notified", "receivedDateTime": received},
            {"id": "claimed-by-a-dead-worker", "receivedDateTime": received},
            {"id": "gone", "@removed": {"reason": "deleted"}},
        ]
    )

    await service._resync(s, mb)  # type: ignore[arg-type]

    assert jobs.changes == [("never-notified", "created"), ("claimed-by-a-dead-worker", "created")]
    assert s.delta_link == f"{LINK}2" and store.saved == [s]
    [event] = audit.events
    assert (event.action, event.counts) == ("subscription.resynced", {"items": 2})
