"""Triggers for flows: a caller's webhook subscription on a connection's folder, kept alive
on Graph's side, and each new message delivered to the caller once, signed.

Request path (fast, no Graph call): Graph's notification → clientState checked per item in
constant time → one queue message per item → 202. Queue worker (`work`): claim the message
for the subscription (exactly once), read it from Graph, apply the caller's filters, POST
the signed event with bounded retries, audit the outcome. Lifecycle events and `missed`
resyncs go through the same queue. The lifecycle timer calls `renew_due`.

Never logged or audited: tokens, clientState, signing secrets, message content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.caller import Caller
from shared.config import Settings
from shared.connections.models import Connection
from shared.connections.service import ConnectionService
from shared.connections.tokens import TokenService
from shared.errors import FieldError, NotFound, ValidationFailed
from shared.graph import GraphClient, GraphRequest, GraphResponse, GraphUnauthorized
from shared.graph.paths import folder_segment, graph_id
from shared.notifications.filters import MESSAGE_SELECT, Filters, matches
from shared.notifications.webhooks import WebhookRejected, check_webhook, post_event, sign
from shared.store.connections import ConnectionStore
from shared.store.queue import WorkQueue
from shared.store.subscriptions import Subscription, SubscriptionStore

logger = logging.getLogger(__name__)

# Graph allows mail subscriptions 10,080 minutes; ten minutes less absorbs clock skew.
SUBSCRIPTION_MINUTES = 10070
MAX_NOTIFICATION_BODY = 1024 * 1024
MAX_ITEMS = 1000
MAX_VALIDATION_TOKEN = 1024
_DELTA_PAGES = 1000  # a resync or baseline reads at most this many pages


@dataclass(frozen=True)
class Created:
    subscription: Subscription
    signing_secret: str  # returned once, in the 201 body


class NotificationService:
    def __init__(
        self,
        settings: Settings,
        *,
        connections: ConnectionService,
        connection_store: ConnectionStore,
        tokens: TokenService,
        graph: GraphClient,
        store: SubscriptionStore,
        queue: WorkQueue,
        audit: AuditSink,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._connections = connections
        self._connection_store = connection_store
        self._tokens = tokens
        self._graph = graph
        self._store = store
        self._queue = queue
        self._audit = audit
        self._clock = clock
        self._http: httpx.AsyncClient | None = None

    @property
    def _base(self) -> str:
        return str(self._settings.PUBLIC_BASE_URL).rstrip("/")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # No redirects: a webhook that redirects could lead anywhere, past the checks.
            self._http = httpx.AsyncClient(
                timeout=self._settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False
            )
        return self._http

    # -- Graph --------------------------------------------------------------------------

    async def _call(self, connection: Connection, request: GraphRequest, cid: str) -> GraphResponse:
        token = await self._tokens.access_token(connection, cid)
        key = connection.mailbox.lower()
        try:
            return await self._graph.send(request, token=token, mailbox_key=key, correlation_id=cid)
        except GraphUnauthorized:
            self._tokens.forget(connection.id)
            token = await self._tokens.access_token(connection, cid, force_refresh=True)
            return await self._graph.send(request, token=token, mailbox_key=key, correlation_id=cid)

    def _expiry(self) -> datetime:
        return self._clock() + timedelta(minutes=SUBSCRIPTION_MINUTES)

    async def _create_graph(
        self, connection: Connection, folder: str, client_state: str, cid: str
    ) -> tuple[str, datetime]:
        expires = self._expiry()
        response = await self._call(
            connection,
            GraphRequest(
                "POST",
                "/subscriptions",
                json={
                    "changeType": "created",
                    "notificationUrl": f"{self._base}/api/notifications/graph",
                    "lifecycleNotificationUrl": f"{self._base}/api/notifications/lifecycle",
                    "resource": f"me/mailFolders/{folder_segment(folder)}/messages",
                    "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "clientState": client_state,
                },
            ),
            cid,
        )
        body = response.json() or {}
        return str(body["id"]), expires

    async def _delete_graph(self, connection: Connection | None, s: Subscription, cid: str) -> None:
        if connection is None:
            return
        # Already gone on Graph's side (expired, removed) is fine.
        with contextlib.suppress(NotFound):
            await self._call(
                connection, GraphRequest("DELETE", f"/subscriptions/{graph_id(s.graph_id)}"), cid
            )

    async def _baseline(self, connection: Connection, folder: str, cid: str) -> str | None:
        """The folder's current delta link: a later `missed` resync reads changes since."""
        link: str | None = None
        request = GraphRequest(
            "GET",
            f"/me/mailFolders/{folder_segment(folder)}/messages/delta",
            params={"$select": "id,receivedDateTime"},
            prefer=("odata.maxpagesize=1000",),
        )
        for _ in range(_DELTA_PAGES):
            body = (await self._call(connection, request, cid)).json() or {}
            if body.get("@odata.deltaLink"):
                link = str(body["@odata.deltaLink"])
                break
            next_link = body.get("@odata.nextLink")
            if not next_link:
                break
            request = GraphRequest("GET", str(next_link), prefer=("odata.maxpagesize=1000",))
        return link

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
    ) -> Created:
        connection = await self._connections.get(caller, connection_id, write=True)
        try:
            url = await check_webhook(
                notification_url, allow_http_loopback=self._settings.loopback_webhooks
            )
        except WebhookRejected as rejected:
            raise ValidationFailed(
                f"notificationUrl {rejected}.",
                errors=[FieldError(("body", "notificationUrl"), str(rejected))],
            ) from None
        client_state = secrets.token_urlsafe(32)  # 256 bits
        signing_secret = secrets.token_urlsafe(32)
        delta_link = await self._baseline(connection, folder, cid)
        graph_id_, expires = await self._create_graph(connection, folder, client_state, cid)
        now = self._clock()
        subscription = Subscription(
            id=secrets.token_urlsafe(16),
            connection_id=connection.id,
            graph_id=graph_id_,
            notification_url=url,
            folder=folder,
            filters=filters.model_dump(by_alias=True, exclude_none=True),
            include_message=include_message,
            expires=expires,
            created_at=now,
            client_state=client_state,
            signing_secret=signing_secret,
            delta_link=delta_link,
        )
        try:
            await self._store.save(subscription)
        except Exception:
            await self._delete_graph(connection, subscription, cid)
            raise
        self._emit("subscription.created", Outcome.SUCCESS, cid, connection, caller=caller)
        return Created(subscription, signing_secret)

    async def list_for(self, caller: Caller, connection_id: str) -> list[Subscription]:
        connection = await self._connections.get(caller, connection_id)
        return await self._store.for_connection(connection.id)

    async def delete(
        self, caller: Caller, connection_id: str, subscription_id: str, cid: str
    ) -> None:
        connection = await self._connections.get(caller, connection_id, write=True)
        subscription = await self._store.get(subscription_id)
        if subscription is None or subscription.connection_id != connection.id:
            raise NotFound("No such subscription on this connection.")
        await self._delete_graph(connection, subscription, cid)
        await self._store.delete(subscription)
        self._emit("subscription.deleted", Outcome.SUCCESS, cid, connection, caller=caller)

    async def delete_for_connection(self, connection: Connection, cid: str) -> None:
        """Connection deletion's hook: both sides of each of its subscriptions go first."""
        for subscription in await self._store.for_connection(connection.id):
            try:
                await self._delete_graph(connection, subscription, cid)
            except Exception:  # the grant may already be unusable: Graph expires it anyway
                logger.warning("graph subscription of a deleted connection left to expire")
            await self._store.delete(subscription)
            self._emit("subscription.deleted", Outcome.SUCCESS, cid, connection)

    # -- Graph → us (request path) --------------------------------------------------------

    @staticmethod
    def validation_answer(token: str) -> str:
        """The decoded token to echo (length-capped: nothing else is ever echoed)."""
        if not token or len(token) > MAX_VALIDATION_TOKEN:
            raise ValidationFailed("validationToken is missing or too long.")
        return token

    async def _items(self, body: bytes) -> list[tuple[Subscription, dict[str, Any]]]:
        """The items whose subscription is ours and whose clientState matches (constant time);
        the others are dropped and audited."""
        if len(body) > MAX_NOTIFICATION_BODY:
            raise ValidationFailed("The notification is too large.")
        try:
            items = json.loads(body).get("value")
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise ValidationFailed("The notification is not valid JSON.") from None
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise ValidationFailed("The notification has no usable value list.")
        out: list[tuple[Subscription, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict):
                continue
            subscription = await self._store.by_graph_id(str(item.get("subscriptionId") or ""))
            state = item.get("clientState")
            if (
                subscription is None
                or not isinstance(state, str)
                or not hmac.compare_digest(state.encode(), subscription.client_state.encode())
            ):
                self._audit.emit(
                    AuditEvent(
                        "notification.rejected",
                        Outcome.DENIED,
                        reason="client_state_mismatch" if subscription else "unknown_subscription",
                        connection_id=subscription.connection_id if subscription else None,
                    )
                )
                continue
            out.append((subscription, item))
        return out

    async def receive(self, body: bytes, cid: str) -> int:
        """Graph's change notifications: queue one delivery per accepted item."""
        queued = 0
        for subscription, item in await self._items(body):
            data = item.get("resourceData") or {}
            message_id = data.get("id") if isinstance(data, dict) else None
            if item.get("changeType") != "created" or not isinstance(message_id, str):
                continue
            await self._enqueue(
                {"kind": "change", "sub": subscription.id, "msg": message_id, "cid": cid}
            )
            queued += 1
        return queued

    async def receive_lifecycle(self, body: bytes, cid: str) -> int:
        queued = 0
        for subscription, item in await self._items(body):
            event = item.get("lifecycleEvent")
            if event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
                continue
            await self._enqueue(
                {"kind": "lifecycle", "sub": subscription.id, "event": event, "cid": cid}
            )
            queued += 1
        return queued

    # -- the queue worker -----------------------------------------------------------------

    async def _enqueue(self, job: dict[str, str]) -> None:
        """One job; base64 as the host's queue trigger expects (messageEncoding base64)."""
        raw = json.dumps(job, separators=(",", ":")).encode()
        await self._queue.send(base64.b64encode(raw).decode("ascii"))

    async def work(self, text: str) -> None:
        job = json.loads(text)
        cid = str(job.get("cid") or uuid.uuid4())
        subscription = await self._store.get(str(job.get("sub") or ""))
        if subscription is None:
            return  # deleted meanwhile
        connection = await self._connection_store.get(subscription.connection_id)
        if connection is None:
            return
        kind = job.get("kind")
        if kind == "change":
            await self._deliver(subscription, connection, str(job["msg"]), cid)
        elif kind == "resync":
            await self._resync(subscription, connection, cid)
        elif kind == "lifecycle":
            await self._lifecycle(subscription, connection, str(job["event"]), cid)

    async def _deliver(
        self, s: Subscription, connection: Connection, message_id: str, cid: str
    ) -> None:
        if not await self._store.claim(s.id, message_id):
            return  # already delivered (or being delivered): exactly once
        try:
            response = await self._call(
                connection,
                GraphRequest(
                    "GET",
                    f"/me/messages/{graph_id(message_id)}",
                    params={"$select": MESSAGE_SELECT},
                ),
                cid,
            )
        except NotFound:
            await self._store.settle(s.id, message_id, "gone")
            return
        except Exception:
            await self._store.release(s.id, message_id)  # let the host's retry try again
            raise
        message = response.json() or {}
        if not matches(Filters.model_validate(s.filters), message):
            await self._store.settle(s.id, message_id, "filtered")
            return
        event: dict[str, Any] = {
            "subscriptionId": s.id,
            "connectionId": s.connection_id,
            "changeType": "created",
            "messageId": message_id,
        }
        if s.include_message:
            event["message"] = message
        body = json.dumps(event, separators=(",", ":")).encode()
        delivered, reason = await self._post_with_retries(s, body, message_id)
        await self._store.settle(s.id, message_id, "delivered" if delivered else "failed")
        self._emit(
            "notification.delivery",
            Outcome.SUCCESS if delivered else Outcome.FAILURE,
            cid,
            connection,
            reason=reason,
        )

    async def _post_with_retries(
        self, s: Subscription, body: bytes, message_id: str
    ) -> tuple[bool, str | None]:
        try:
            url = await check_webhook(
                s.notification_url, allow_http_loopback=self._settings.loopback_webhooks
            )
        except WebhookRejected:
            return False, "webhook_rejected"
        signature = sign(s.signing_secret, body)
        event_id = f"{s.id}:{message_id}"[:200]
        started = time.monotonic()
        delay = self._settings.WEBHOOK_RETRY_INITIAL_SECONDS
        budget = self._settings.WEBHOOK_RETRY_MAX_SECONDS
        while True:
            attempt = await post_event(self._client(), url, body, signature, event_id)
            if attempt.delivered:
                return True, None
            if not attempt.retryable:
                return False, f"webhook_status_{attempt.status}"
            wait = delay * random.uniform(0.8, 1.2)
            if time.monotonic() - started + wait > budget:
                return False, "gave_up"
            await asyncio.sleep(wait)
            delay = min(delay * 2, 300.0)

    async def _resync(self, s: Subscription, connection: Connection, cid: str) -> None:
        """After `missed` (or a re-creation): read the folder's changes since the stored delta
        link and queue each new message; the claim ledger keeps it exactly once."""
        if s.delta_link is None:
            s.delta_link = await self._baseline(connection, s.folder, cid)
            await self._store.save(s)
            return
        request = GraphRequest("GET", s.delta_link, prefer=("odata.maxpagesize=1000",))
        since = s.created_at - timedelta(minutes=1)
        ids: list[str] = []
        link: str | None = None
        for _ in range(_DELTA_PAGES):
            body = (await self._call(connection, request, cid)).json() or {}
            for item in body.get("value") or []:
                if "@removed" in item or not isinstance(item.get("id"), str):
                    continue
                received = str(item.get("receivedDateTime") or "")
                if received and received < since.strftime("%Y-%m-%dT%H:%M:%SZ"):
                    continue  # an older message that changed, not a new one
                ids.append(item["id"])
            if body.get("@odata.deltaLink"):
                link = str(body["@odata.deltaLink"])
                break
            next_link = body.get("@odata.nextLink")
            if not next_link:
                break
            request = GraphRequest("GET", str(next_link), prefer=("odata.maxpagesize=1000",))
        for message_id in ids:
            await self._enqueue({"kind": "change", "sub": s.id, "msg": message_id, "cid": cid})
        if link:
            s.delta_link = link
            await self._store.save(s)
        self._emit(
            "subscription.resynced", Outcome.SUCCESS, cid, connection, counts={"items": len(ids)}
        )

    async def _lifecycle(
        self, s: Subscription, connection: Connection, event: str, cid: str
    ) -> None:
        if event == "missed":
            await self._resync(s, connection, cid)
        elif event == "reauthorizationRequired":
            await self._renew(s, connection, cid)
        elif event == "subscriptionRemoved":
            await self._recreate(s, connection, cid)
            await self._resync(s, connection, cid)

    async def _renew(self, s: Subscription, connection: Connection, cid: str) -> None:
        expires = self._expiry()
        try:
            await self._call(
                connection,
                GraphRequest(
                    "PATCH",
                    f"/subscriptions/{graph_id(s.graph_id)}",
                    json={"expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
                ),
                cid,
            )
        except NotFound:
            await self._recreate(s, connection, cid)
            return
        s.expires = expires
        await self._store.save(s)
        self._emit("subscription.renewed", Outcome.SUCCESS, cid, connection)

    async def _recreate(self, s: Subscription, connection: Connection, cid: str) -> None:
        previous = s.graph_id
        s.graph_id, s.expires = await self._create_graph(connection, s.folder, s.client_state, cid)
        await self._store.save(s, previous_graph_id=previous)
        self._emit("subscription.recreated", Outcome.SUCCESS, cid, connection)

    # -- the lifecycle timer ----------------------------------------------------------------

    async def renew_due(self, now: datetime) -> int:
        """Renew (or recreate) subscriptions expiring soon. A lifecycle run step; returns how
        many were renewed (each is audited as `subscription.renewed`)."""
        within = timedelta(hours=self._settings.SUBSCRIPTION_RENEW_WITHIN_HOURS)
        renewed = 0
        for s in await self._store.expiring_before(now + within):
            connection = await self._connection_store.get(s.connection_id)
            if connection is None:
                continue
            cid = uuid.uuid4().hex
            try:
                await self._renew(s, connection, cid)
            except Exception as exc:  # one failing subscription does not stop the run
                logger.warning("renewing a subscription failed: %s", type(exc).__name__)
                self._emit(
                    "subscription.renewed", Outcome.FAILURE, cid, connection, reason="renew_failed"
                )
            else:
                renewed += 1
        return renewed

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
            AuditEvent(
                action,
                outcome,
                cid,
                caller_oid=caller.oid if caller else None,
                caller_app_id=caller.app_id if caller else None,
                tenant_id=connection.owner_tid,
                connection_id=connection.id,
                mailbox=connection.mailbox,
                reason=reason,
                counts=counts or {},
            )
        )
