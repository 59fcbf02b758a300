"""Builds the notification parts from the container's shared pieces: subscriptions (caller
routes, the lifecycle timer), intake (Graph's POSTs) and the queue worker (delivery)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.audit import AuditSink
from shared.config import Settings
from shared.connections.mailbox import Mailboxes
from shared.connections.service import ConnectionService
from shared.crypto.keyring import KeyRingCache
from shared.notifications.delivery import NotificationDelivery
from shared.notifications.intake import NotificationIntake
from shared.notifications.jobs import JobQueue
from shared.notifications.polling import FolderPoller
from shared.notifications.subscriptions import SubscriptionService
from shared.notifications.worker import NotificationWorker
from shared.store.connections import ConnectionStore
from shared.store.deliveries import DeliveryStore
from shared.store.polls import PollStore
from shared.store.queue import WorkQueue
from shared.store.subscriptions import SubscriptionStore
from shared.store.table_set import TableSet


@dataclass(frozen=True)
class Notifications:
    subscriptions: SubscriptionService
    intake: NotificationIntake
    worker: NotificationWorker
    poller: FolderPoller
    aclose: Callable[[], Awaitable[None]]


def build_notifications(
    settings: Settings,
    *,
    connections: ConnectionService,
    connection_store: ConnectionStore,
    mailboxes: Mailboxes,
    tables: TableSet,
    key_ring: KeyRingCache,
    queue: WorkQueue,
    audit: AuditSink,
) -> Notifications:
    store = SubscriptionStore(tables, key_ring)
    jobs = JobQueue(queue)
    deliveries = DeliveryStore(tables)
    poller = FolderPoller(
        settings,
        mailboxes=mailboxes,
        store=PollStore(tables),
        flags=deliveries,
        jobs=jobs,
        audit=audit,
    )
    subscriptions = SubscriptionService(
        settings,
        connections=connections,
        connection_store=connection_store,
        mailboxes=mailboxes,
        store=store,
        deliveries=deliveries,
        jobs=jobs,
        poller=poller,
        audit=audit,
    )
    delivery = NotificationDelivery(
        settings, mailboxes=mailboxes, store=deliveries, jobs=jobs, audit=audit
    )
    worker = NotificationWorker(
        store=store,
        connection_store=connection_store,
        subscriptions=subscriptions,
        delivery=delivery,
        poller=poller,
    )

    async def aclose() -> None:
        await delivery.aclose()
        await queue.aclose()

    intake = NotificationIntake(store, jobs, audit)
    return Notifications(subscriptions, intake, worker, poller, aclose)
