"""Us → the caller's webhook: one new message, claimed for its subscription (exactly once),
read from Graph, matched against the caller's filters, POSTed signed with bounded retries,
and audited. The worker calls `deliver` for each `change` job."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httpx

from shared.audit import AuditSink, Outcome
from shared.config import Settings
from shared.connections.mailbox import Mailboxes
from shared.connections.models import Connection
from shared.errors import NotFound
from shared.graph import GraphRequest
from shared.notifications.auditing import connection_event
from shared.notifications.filters import MESSAGE_SELECT, Filters, matches
from shared.notifications.webhooks import (
    Resolver,
    WebhookRejected,
    check_webhook,
    post_event,
    sign,
    system_resolver,
    webhook_client,
)
from shared.store.subscriptions import Subscription
from shared.tls import outbound_ssl_context


class DeliveryLedger(Protocol):
    """The exactly-once claims of (subscription, message) pairs (SubscriptionStore)."""

    async def claim(self, subscription_id: str, message_id: str) -> bool: ...

    async def settle(self, subscription_id: str, message_id: str, state: str) -> None: ...

    async def release(self, subscription_id: str, message_id: str) -> None: ...


class NotificationDelivery:
    def __init__(
        self,
        settings: Settings,
        *,
        mailboxes: Mailboxes,
        store: DeliveryLedger,
        audit: AuditSink,
        resolver: Resolver = system_resolver,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._mailboxes = mailboxes
        self._store = store
        self._audit = audit
        self._resolver = resolver
        self._sleep = sleep
        self._ssl_context = ssl_context
        self._http: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            # Trust is the app's outbound trust (shared/tls.py); see webhook_client for the rest.
            self._http = webhook_client(
                self._settings.WEBHOOK_TIMEOUT_SECONDS,
                self._ssl_context or outbound_ssl_context(self._settings.CA_BUNDLE),
            )
        return self._http

    async def deliver(
        self, s: Subscription, connection: Connection, message_id: str, cid: str
    ) -> None:
        if not await self._store.claim(s.id, message_id):
            return  # already delivered (or being delivered): exactly once
        try:
            mb = self._mailboxes.system(connection, correlation_id=cid)
            response = await mb.send(
                GraphRequest("GET", mb.path.message(message_id), params={"$select": MESSAGE_SELECT})
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
        self._audit.emit(
            connection_event(
                "notification.delivery",
                Outcome.SUCCESS if delivered else Outcome.FAILURE,
                cid,
                connection,
                reason=reason,
            )
        )

    async def _post_with_retries(
        self, s: Subscription, body: bytes, message_id: str
    ) -> tuple[bool, str | None]:
        signature = sign(s.signing_secret, body)
        event_id = f"{s.id}:{message_id}"[:200]
        started = time.monotonic()
        delay = self._settings.WEBHOOK_RETRY_INITIAL_SECONDS
        budget = self._settings.WEBHOOK_RETRY_MAX_SECONDS
        while True:
            # Checked again before every attempt (DNS may have changed since registration),
            # and the attempt connects to the address this check approved.
            try:
                target = await check_webhook(
                    s.notification_url,
                    allow_http_loopback=self._settings.loopback_webhooks,
                    resolver=self._resolver,
                )
            except WebhookRejected:
                return False, "webhook_rejected"
            attempt = await post_event(self._client(), target, body, signature, event_id)
            if attempt.delivered:
                return True, None
            if not attempt.retryable:
                return False, f"webhook_status_{attempt.status}"
            wait = delay * random.uniform(0.8, 1.2)
            if time.monotonic() - started + wait > budget:
                return False, "gave_up"
            await self._sleep(wait)
            delay = min(delay * 2, 300.0)
