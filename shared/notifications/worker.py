"""The notification queue's worker: reads one job and hands it to the module that does it
(a `change` to delivery; `resync` and lifecycle events to the subscriptions; `poll`, and a
poll-mode subscription's `resync`, to the poller)."""

from __future__ import annotations

import json
import uuid

from shared.notifications.delivery import NotificationDelivery
from shared.notifications.polling import FolderPoller
from shared.notifications.subscriptions import SubscriptionService
from shared.store.connections import ConnectionStore
from shared.store.subscriptions import SubscriptionStore


class NotificationWorker:
    def __init__(
        self,
        *,
        store: SubscriptionStore,
        connection_store: ConnectionStore,
        subscriptions: SubscriptionService,
        delivery: NotificationDelivery,
        poller: FolderPoller,
    ) -> None:
        self._store = store
        self._connection_store = connection_store
        self._subscriptions = subscriptions
        self._delivery = delivery
        self._poller = poller

    async def work(self, text: str) -> None:
        job = json.loads(text)
        cid = str(job.get("cid") or uuid.uuid4())
        subscription = await self._store.get(str(job.get("sub") or ""))
        if subscription is None:
            return  # deleted meanwhile
        connection = await self._connection_store.get(subscription.connection_id)
        if connection is None:
            return
        if subscription.disabled:
            return  # its receiver answered 410 Gone: nothing more happens for it
        kind = job.get("kind")
        if kind == "change":
            ended = await self._delivery.deliver(
                subscription,
                connection,
                str(job["msg"]),
                cid,
                event_type=str(job.get("type") or "created"),
                lease=str(job["lease"]) if job.get("lease") else None,
            )
            if ended == "disabled":
                await self._subscriptions.disable(subscription, connection, cid)
        elif kind == "poll" or (kind == "resync" and subscription.polled):
            # A poll-mode subscription's reconciliation sweep is a poll: the same delta read.
            await self._poller.poll(subscription, connection, cid)
        elif kind == "resync":
            await self._subscriptions.resync(subscription, connection, cid)
        elif kind == "lifecycle" and not subscription.polled:
            await self._subscriptions.on_lifecycle(subscription, connection, str(job["event"]), cid)
