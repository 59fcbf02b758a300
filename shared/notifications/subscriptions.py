"""A caller's webhook subscriptions and their Graph side: create, list, delete, and keep
alive (renew before expiry, recreate what Graph lost, resync after `missed`).

Graph mail subscriptions live at most 7 days; the lifecycle timer calls `renew_due`, and the
queue worker calls `on_lifecycle` for Graph's lifecycle events.

The service chooses each subscription's mode: `push` (a Graph subscription) on the
connection's own mailbox or for an application connection; `poll` for a delegated
connection watching another user's mailbox, where Graph accepts no subscription. A poll
subscription has no Graph side: the FolderPoller (polling.py) reads its folder on a timer.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.audit import AuditSink, Outcome
from shared.auth.caller import Caller
from shared.config import Settings
from shared.connections.mailbox import ConnectedMailbox, Mailboxes
from shared.connections.models import Connection
from shared.connections.service import ConnectionService
from shared.errors import Conflict, FieldError, InvalidCursor, NotFound, ValidationFailed
from shared.graph import GraphRequest
from shared.graph.paths import graph_id
from shared.notifications.auditing import connection_event
from shared.notifications.filters import Filters
from shared.notifications.jobs import JobQueue
from shared.notifications.polling import FolderPoller
from shared.notifications.webhooks import WebhookRejected, check_webhook, new_signing_secret
from shared.store.connections import ConnectionStore
from shared.store.deliveries import (
    DELIVERY_ID,
    PENDING,
    DeliveryRecord,
    DeliveryStore,
    FlagState,
    delivery_id,
)
from shared.store.subscriptions import Subscription, SubscriptionStore

logger = logging.getLogger(__name__)

# Graph allows mail subscriptions 10,080 minutes; ten minutes less absorbs clock skew.
SUBSCRIPTION_MINUTES = 10070
_DELTA_PAGES = 1000  # a resync or baseline reads at most this many pages
_PAGE = ("odata.maxpagesize=1000",)


@dataclass(frozen=True)
class Created:
    subscription: Subscription
    signing_secret: str  # returned once, in the 201 body


class SubscriptionService:
    def __init__(
        self,
        settings: Settings,
        *,
        connections: ConnectionService,
        connection_store: ConnectionStore,
        mailboxes: Mailboxes,
        store: SubscriptionStore,
        deliveries: DeliveryStore,
        jobs: JobQueue,
        poller: FolderPoller,
        audit: AuditSink,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._connections = connections
        self._connection_store = connection_store
        self._mailboxes = mailboxes
        self._store = store
        self._deliveries = deliveries
        self._jobs = jobs
        self._poller = poller
        self._audit = audit
        self._clock = clock

    @property
    def _base(self) -> str:
        return str(self._settings.PUBLIC_BASE_URL).rstrip("/")

    # -- caller use cases ---------------------------------------------------------------

    async def create(
        self,
        caller: Caller,
        connection_id: str,
        *,
        notification_url: str,
        folder: str,
        filters: Filters,
        include_message: bool,
        cid: str,
        events: tuple[str, ...] = ("created",),
        mailbox: str | None = None,
    ) -> Created:
        # The mailbox is validated and authorized as a mail read's is: its shape here, the
        # right to read it by Graph on the first read (the baseline below).
        mb = await self._mailboxes.open(
            caller, connection_id, mailbox, write=True, correlation_id=cid
        )
        connection = mb.connection
        try:
            checked = await check_webhook(
                notification_url, allow_http_loopback=self._settings.loopback_webhooks
            )
        except WebhookRejected as rejected:
            raise ValidationFailed(
                f"notificationUrl {rejected}.",
                errors=[FieldError(("body", "notificationUrl"), str(rejected))],
            ) from None
        client_state = secrets.token_urlsafe(32)  # 256 bits
        signing_secret = new_signing_secret()  # whsec_<base64 of 32 bytes>
        subscription_id = secrets.token_urlsafe(16)
        if mb.is_shared:
            return await self._create_polled(
                caller,
                mb,
                subscription_id,
                notification_url=checked.url,
                folder=folder,
                filters=filters,
                include_message=include_message,
                events=events,
                client_state=client_state,
                signing_secret=signing_secret,
            )
        # A `flagged` subscription starts from the folder's flag states: a message flagged
        # before it must not fire when it is next changed (marked read, say).
        flagged: list[str] | None = [] if "flagged" in events else None
        delta_link = await self.baseline(mb, folder, flagged=flagged)
        try:
            for message_id in flagged or ():
                await self._deliveries.set_flag_state(
                    subscription_id, message_id, True, 0, FlagState(None, 0, None)
                )
            graph_id_, expires = await self._create_graph(mb, folder, client_state, events)
        except Exception:
            await self._deliveries.delete_for(subscription_id)  # the seeded flag states
            raise
        subscription = Subscription(
            id=subscription_id,
            connection_id=connection.id,
            graph_id=graph_id_,
            notification_url=checked.url,
            folder=folder,
            filters=filters.model_dump(by_alias=True, exclude_none=True),
            include_message=include_message,
            expires=expires,
            created_at=self._clock(),
            client_state=client_state,
            signing_secret=signing_secret,
            delta_link=delta_link,
            creator_tid=caller.tenant_id,
            creator_oid=caller.oid,
            events=events,
        )
        try:
            await self._store.save(subscription)
        except Exception:
            await self._delete_graph(mb, subscription)
            await self._deliveries.delete_for(subscription_id)
            raise
        self._emit("subscription.created", Outcome.SUCCESS, cid, connection, caller=caller)
        return Created(subscription, signing_secret)

    async def _create_polled(
        self,
        caller: Caller,
        mb: ConnectedMailbox,
        subscription_id: str,
        *,
        notification_url: str,
        folder: str,
        filters: Filters,
        include_message: bool,
        events: tuple[str, ...],
        client_state: str,
        signing_secret: str,
    ) -> Created:
        """Another user's mailbox through a delegated connection: Graph refuses a push
        subscription there (docs/triggers.md "Shared mailboxes"), so the folder is polled."""
        now = self._clock()
        try:
            delta_link = await self._poller.baseline(mb, subscription_id, folder)
            subscription = Subscription(
                id=subscription_id,
                connection_id=mb.connection.id,
                graph_id="",
                notification_url=notification_url,
                folder=folder,
                filters=filters.model_dump(by_alias=True, exclude_none=True),
                include_message=include_message,
                expires=now,  # nothing expires: no Graph side (shown as null)
                created_at=now,
                client_state=client_state,
                signing_secret=signing_secret,
                creator_tid=caller.tenant_id,
                creator_oid=caller.oid,
                events=events,
                mode="poll",
                mailbox=mb.key,
            )
            await self._store.save(subscription)
            await self._poller.start(subscription_id, delta_link)
        except Exception:
            # A refused or failed start leaves nothing behind (the seeded membership too).
            await self._poller.forget(subscription_id)
            await self._deliveries.delete_for(subscription_id)  # the seeded flag states
            stored = await self._store.get(subscription_id)
            if stored is not None:
                await self._store.delete(stored)
            raise
        self._emit(
            "subscription.created", Outcome.SUCCESS, mb.correlation_id, mb.connection, caller=caller
        )
        return Created(subscription, signing_secret)

    async def list_for(self, caller: Caller, connection_id: str) -> list[Subscription]:
        connection = await self._connections.get(caller, connection_id)
        return await self._store.for_connection(connection.id)

    async def _own(self, connection: Connection, subscription_id: str) -> Subscription:
        subscription = await self._store.get(subscription_id)
        if subscription is None or subscription.connection_id != connection.id:
            raise NotFound("No such subscription on this connection.")
        return subscription

    async def deliveries(
        self,
        caller: Caller,
        connection_id: str,
        subscription_id: str,
        *,
        status: str | None,
        cursor: str | None,
        limit: int = 100,
    ) -> tuple[list[DeliveryRecord], str | None]:
        """A page of the subscription's events from the ledger (anyone who may read the
        connection: an event names no URL). `cursor` is the id to continue after."""
        connection = await self._connections.get(caller, connection_id)
        subscription = await self._own(connection, subscription_id)
        if cursor is not None and not DELIVERY_ID.fullmatch(cursor):
            raise InvalidCursor("The cursor is not one this list handed out.")
        return await self._deliveries.page(subscription.id, status, cursor, limit)

    async def redeliver(
        self, caller: Caller, connection_id: str, subscription_id: str, delivery: str, cid: str
    ) -> None:
        """Send the event again, with its `webhook-id` (those who may change the
        connection): made pending with a new retry window, and queued."""
        mb = await self._mailboxes.open(caller, connection_id, write=True, correlation_id=cid)
        subscription = await self._own(mb.connection, subscription_id)
        record = (
            await self._deliveries.get(subscription.id, delivery)
            if DELIVERY_ID.fullmatch(delivery)
            else None
        )
        if record is None:
            raise NotFound("No such delivery on this subscription.")
        if subscription.disabled:
            raise Conflict("The subscription is disabled (its webhook answered 410 Gone).")
        await self._deliveries.reopen(record, self._clock())
        await self._jobs.change(subscription.id, record.message_id, cid, event_type=record.type)
        self._emit("notification.redeliver", Outcome.SUCCESS, cid, mb.connection, caller=caller)

    async def delete(
        self, caller: Caller, connection_id: str, subscription_id: str, cid: str
    ) -> None:
        mb = await self._mailboxes.open(caller, connection_id, write=True, correlation_id=cid)
        connection = mb.connection
        subscription = await self._own(connection, subscription_id)
        await self._delete_graph(mb, subscription)
        await self._remove(subscription)
        self._emit("subscription.deleted", Outcome.SUCCESS, cid, connection, caller=caller)

    async def _remove(self, subscription: Subscription) -> None:
        await self._store.delete(subscription)
        await self._deliveries.delete_for(subscription.id)
        if subscription.polled:
            await self._poller.forget(subscription.id)

    async def disable(self, s: Subscription, connection: Connection, cid: str) -> None:
        """The receiver answered 410 Gone: no more events. Graph's side is removed (so no
        more notifications arrive); ours stays, marked disabled, until the caller deletes it."""
        s.disabled = True
        await self._store.save(s)
        if s.polled:
            await self._poller.forget(s.id)  # no more reads either
        try:
            await self._delete_graph(self._mailboxes.system(connection, correlation_id=cid), s)
        except Exception:  # Graph expires it anyway; the worker drops its jobs meanwhile
            logger.warning("graph subscription of a disabled subscription left to expire")
        self._emit("subscription.disabled", Outcome.SUCCESS, cid, connection, reason="webhook_gone")

    async def delete_for_connection(self, connection: Connection, cid: str) -> None:
        """Connection deletion's hook: both sides of each of its subscriptions go first."""
        mb = self._mailboxes.system(connection, correlation_id=cid)
        for subscription in await self._store.for_connection(connection.id):
            try:
                await self._delete_graph(mb, subscription)
            except Exception:  # the grant may already be unusable: Graph expires it anyway
                logger.warning("graph subscription of a deleted connection left to expire")
            await self._remove(subscription)
            self._emit("subscription.deleted", Outcome.SUCCESS, cid, connection)

    # -- keeping it alive ----------------------------------------------------------------

    async def renew_due(self, now: datetime) -> int:
        """Renew (or recreate) subscriptions expiring soon. A lifecycle run step; returns how
        many were renewed (each is audited as `subscription.renewed`)."""
        within = timedelta(hours=self._settings.SUBSCRIPTION_RENEW_WITHIN_HOURS)
        renewed = 0
        for s in await self._store.expiring_before(now + within):
            if s.disabled or s.polled:  # a poll subscription has no Graph side to renew
                continue
            connection = await self._connection_store.get(s.connection_id)
            if connection is None:
                continue
            cid = uuid.uuid4().hex
            try:
                await self._renew(s, self._mailboxes.system(connection, correlation_id=cid))
            except Exception as exc:  # one failing subscription does not stop the run
                logger.warning("renewing a subscription failed: %s", type(exc).__name__)
                self._emit(
                    "subscription.renewed", Outcome.FAILURE, cid, connection, reason="renew_failed"
                )
            else:
                renewed += 1
        return renewed

    async def reconcile(self) -> int:
        """The reconciliation timer: a resync job (a delta sweep of the folder since the
        stored delta link) for every subscription, so that notifications Graph never
        delivered, with no `missed` to say so, still become events, and a change job for
        each event left pending with an ended lease. The ledger keeps each event once.
        Returns how many subscriptions were swept."""
        cid = uuid.uuid4().hex
        now = self._clock()
        queued = 0
        # A poll subscription's resync job is one more poll (the worker routes it).
        everyone = sorted({*await self._store.all_ids(), *await self._poller.ids()})
        for subscription_id in everyone:
            await self._jobs.resync(subscription_id, cid)
            queued += 1
            # Events a worker claimed and then died with, its job gone: claimable again.
            for record in await self._deliveries.abandoned(subscription_id, now):
                await self._jobs.change(
                    subscription_id, record.message_id, cid, event_type=record.type
                )
        return queued

    async def on_lifecycle(
        self, s: Subscription, connection: Connection, event: str, cid: str
    ) -> None:
        mb = self._mailboxes.system(connection, correlation_id=cid)
        if event == "missed":
            await self._resync(s, mb)
        elif event == "reauthorizationRequired":
            await self._renew(s, mb)
        elif event == "subscriptionRemoved":
            await self._recreate(s, mb)
            await self._resync(s, mb)

    async def resync(self, s: Subscription, connection: Connection, cid: str) -> None:
        """After `missed` (or a re-creation): read the folder's changes since the stored delta
        link and queue each new message; the claim ledger keeps it exactly once."""
        await self._resync(s, self._mailboxes.system(connection, correlation_id=cid))

    async def _resync(self, s: Subscription, mb: ConnectedMailbox) -> None:
        if s.delta_link is None:
            s.delta_link = await self.baseline(mb, s.folder)
            await self._store.save(s)
            return
        first = GraphRequest("GET", s.delta_link, prefer=_PAGE)
        since = (s.created_at - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ids: list[str] = []
        link: str | None = None
        async for body in mb.pages(first, max_pages=_DELTA_PAGES):
            for item in body.get("value") or []:
                if "@removed" in item or not isinstance(item.get("id"), str):
                    continue
                received = str(item.get("receivedDateTime") or "")
                if received and received < since:
                    continue  # an older message that changed, not a new one
                ids.append(item["id"])
            if body.get("@odata.deltaLink"):
                link = str(body["@odata.deltaLink"])
        queued = 0
        for message_id in ids:
            # An event the ledger holds as settled (delivered, failed, filtered, gone) needs
            # no job: it would only read the row and stop, and every sweep would queue one
            # per message since the last. A pending one is queued: its lease may belong to
            # a worker that died.
            record = await self._deliveries.get(s.id, delivery_id(s.id, message_id, "created"))
            if record is not None and record.status != PENDING:
                continue
            await self._jobs.change(s.id, message_id, mb.correlation_id)
            queued += 1
        if link:
            s.delta_link = link
            await self._store.save(s)
        self._emit(
            "subscription.resynced",
            Outcome.SUCCESS,
            mb.correlation_id,
            mb.connection,
            counts={"items": queued},
        )

    async def baseline(
        self, mb: ConnectedMailbox, folder: str, *, flagged: list[str] | None = None
    ) -> str | None:
        """The folder's current delta link: a later `missed` resync reads changes since.
        Given `flagged`, the ids of the messages flagged now are added to it."""
        first = GraphRequest(
            "GET",
            f"{mb.path.folder_messages(folder)}/delta",
            params={"$select": "id,receivedDateTime" + (",flag" if flagged is not None else "")},
            prefer=_PAGE,
        )
        async for body in mb.pages(first, max_pages=_DELTA_PAGES):
            if flagged is not None:
                flagged.extend(
                    item["id"]
                    for item in body.get("value") or []
                    if isinstance(item, dict)
                    and isinstance(item.get("id"), str)
                    and "@removed" not in item
                    and (item.get("flag") or {}).get("flagStatus") == "flagged"
                )
            if body.get("@odata.deltaLink"):
                return str(body["@odata.deltaLink"])
        return None

    async def _renew(self, s: Subscription, mb: ConnectedMailbox) -> None:
        expires = self._expiry()
        try:
            await mb.send(
                GraphRequest(
                    "PATCH",
                    f"/subscriptions/{graph_id(s.graph_id)}",
                    json={"expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
                )
            )
        except NotFound:
            await self._recreate(s, mb)
            return
        s.expires = expires
        await self._store.save(s)
        self._emit("subscription.renewed", Outcome.SUCCESS, mb.correlation_id, mb.connection)

    async def _recreate(self, s: Subscription, mb: ConnectedMailbox) -> None:
        previous = s.graph_id
        s.graph_id, s.expires = await self._create_graph(mb, s.folder, s.client_state, s.events)
        await self._store.save(s, previous_graph_id=previous)
        self._emit("subscription.recreated", Outcome.SUCCESS, mb.correlation_id, mb.connection)

    # -- Graph's side -------------------------------------------------------------------

    def _expiry(self) -> datetime:
        return self._clock() + timedelta(minutes=SUBSCRIPTION_MINUTES)

    async def _create_graph(
        self, mb: ConnectedMailbox, folder: str, client_state: str, events: tuple[str, ...]
    ) -> tuple[str, datetime]:
        expires = self._expiry()
        # `flagged` needs Graph's `updated` notifications; `created` is always asked for too,
        # so that a message's first flag state is known before any update (no event fires
        # for mail that arrives flagged).
        change_type = "created,updated" if "flagged" in events else "created"
        response = await mb.send(
            GraphRequest(
                "POST",
                "/subscriptions",
                json={
                    "changeType": change_type,
                    "notificationUrl": f"{self._base}/api/notifications/graph",
                    "lifecycleNotificationUrl": f"{self._base}/api/notifications/lifecycle",
                    "resource": mb.path.folder_messages_resource(folder),
                    "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "clientState": client_state,
                },
            )
        )
        body = response.json() or {}
        return str(body["id"]), expires

    async def _delete_graph(self, mb: ConnectedMailbox, s: Subscription) -> None:
        if s.polled:
            return  # no Graph side
        # Already gone on Graph's side (expired, removed) is fine.
        with contextlib.suppress(NotFound):
            await mb.send(GraphRequest("DELETE", f"/subscriptions/{graph_id(s.graph_id)}"))

    def _emit(
        self,
        action: str,
        outcome: Outcome,
        cid: str,
        connection: Connection,
        *,
        caller: Caller | None = None,
        reason: str | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        self._audit.emit(
            connection_event(
                action, outcome, cid, connection, caller=caller, reason=reason, counts=counts
            )
        )
