"""Graph → us, on the request path: the `validationToken` handshake, and change and lifecycle
notifications checked item by item (clientState in constant time) and queued. No Graph call
and no delivery happen here: Graph wants an answer within 3 seconds.

The endpoint is anonymous, so one request must not multiply work: at most
`MAX_ITEMS_PER_REQUEST` items, each distinct subscription id looked up once, and everything
refused in a request audited as one event with counts.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.errors import TooManyNotifications, ValidationFailed

if TYPE_CHECKING:  # the HTTP adapter imports this module: no storage SDK at import
    from shared.notifications.jobs import JobQueue
    from shared.store.subscriptions import Subscription

MAX_NOTIFICATION_BODY = 1024 * 1024
# Graph documents that one POST may batch several notifications ("When many changes occur,
# Microsoft Graph might send multiple notifications [...] in the same POST request",
# learn.microsoft.com/graph/change-notifications-delivery-webhooks) but publishes no
# maximum; the sandbox, modelled on what Graph sends, batches 20. 100 leaves headroom
# and keeps the worst request to 100 lookups.
MAX_ITEMS_PER_REQUEST = 100
MAX_VALIDATION_TOKEN = 1024
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


class SubscriptionIndex(Protocol):
    """Finds our subscription by the id Graph sends (SubscriptionStore)."""

    async def by_graph_id(self, graph_id: str) -> Subscription | None: ...


def validation_answer(token: str) -> str:
    """The decoded token to echo (length-capped: nothing else is ever echoed)."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        raise ValidationFailed("validationToken is missing or too long.")
    return token


def _items(body: bytes) -> list[Any]:
    if len(body) > MAX_NOTIFICATION_BODY:
        raise ValidationFailed("The notification is too large.")
    try:
        items = json.loads(body).get("value")
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise ValidationFailed("The notification is not valid JSON.") from None
    if not isinstance(items, list):
        raise ValidationFailed("The notification has no usable value list.")
    if len(items) > MAX_ITEMS_PER_REQUEST:
        raise TooManyNotifications(
            f"At most {MAX_ITEMS_PER_REQUEST} notifications per request are accepted."
        )
    return items


class NotificationIntake:
    def __init__(self, store: SubscriptionIndex, jobs: JobQueue, audit: AuditSink) -> None:
        self._store = store
        self._jobs = jobs
        self._audit = audit

    async def _authentic(self, body: bytes, cid: str) -> list[tuple[Subscription, dict[str, Any]]]:
        """The items whose subscription is ours and whose clientState matches; the others are
        dropped and counted in one `notification.rejected` event."""
        items = _items(body)
        found: dict[str, Subscription | None] = {}
        rejected: Counter[str] = Counter()
        connections: set[str] = set()
        out: list[tuple[Subscription, dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict):
                rejected["malformed"] += 1
                continue
            graph_id = str(item.get("subscriptionId") or "")
            if graph_id not in found:  # one lookup per distinct id, however often it repeats
                found[graph_id] = await self._store.by_graph_id(graph_id)
            subscription = found[graph_id]
            state = item.get("clientState")
            if subscription is None:
                rejected["unknown_subscription"] += 1
            elif not isinstance(state, str) or not hmac.compare_digest(
                state.encode(), subscription.client_state.encode()
            ):
                rejected["client_state_mismatch"] += 1
                connections.add(subscription.connection_id)
            else:
                out.append((subscription, item))
        if rejected:
            self._audit_rejected(rejected, connections, cid)
        return out

    def _audit_rejected(self, rejected: Counter[str], connections: set[str], cid: str) -> None:
        # A forged clientState on a real subscription says more than an unknown id: it leads.
        reason = next(
            r for r in ("client_state_mismatch", "unknown_subscription", "malformed") if rejected[r]
        )
        self._audit.emit(
            AuditEvent(
                "notification.rejected",
                Outcome.DENIED,
                cid,
                reason=reason,
                connection_id=next(iter(connections)) if len(connections) == 1 else None,
                counts={"rejected": sum(rejected.values()), **rejected},
            )
        )

    async def receive(self, body: bytes, cid: str) -> int:
        """Graph's change notifications: queue one delivery per accepted item, the items'
        jobs sent at once rather than one after another. Graph retries a POST not answered
        within 3 seconds, and each retry queues every item again: sent one by one, the 20
        items of a batch took over 3 s on a busy storage account (`make bench-triggers`:
        p90 9.4 s), so Graph's retries multiplied the jobs and the backlog fed itself."""
        sends = []
        for subscription, item in await self._authentic(body, cid):
            data = item.get("resourceData") or {}
            message_id = data.get("id") if isinstance(data, dict) else None
            change = item.get("changeType")
            if change not in ("created", "updated") or not isinstance(message_id, str):
                continue
            if change == "updated" and "flagged" not in subscription.events:
                continue
            sends.append(
                self._jobs.change(subscription.id, message_id, cid, event_type=str(change))
            )
        await asyncio.gather(*sends)
        return len(sends)

    async def receive_lifecycle(self, body: bytes, cid: str) -> int:
        queued = 0
        for subscription, item in await self._authentic(body, cid):
            event = item.get("lifecycleEvent")
            if event not in LIFECYCLE_EVENTS:
                continue
            await self._jobs.lifecycle(subscription.id, str(event), cid)
            queued += 1
        return queued
