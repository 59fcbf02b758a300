"""Us → the caller's webhook: one event (a message for a subscription), leased in the
delivery ledger, read from Graph, matched against the caller's filters, POSTed signed, and
audited. The worker calls `deliver` for each `change` job.

Durable: a failed attempt worth retrying is scheduled as a new queue job that becomes visible
after an exponential backoff with jitter (never a sleep inside one execution), and holds the
ledger's lease until it runs. A worker that dies holding a lease loses nothing: the lease
ends after WEBHOOK_LEASE_SECONDS and the event is claimable again (a job finding the lease
held looks again when it ends). After WEBHOOK_RETRY_HOURS an event that still fails is
settled `failed` (listed, and replayable, through the deliveries routes).
"""

from __future__ import annotations

import json
import math
import random
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
    signed_headers,
    system_resolver,
    webhook_client,
)
from shared.store.deliveries import Claim, DeliveryRecord, FlagState
from shared.store.subscriptions import Subscription
from shared.tls import outbound_ssl_context

# The Graph fields read for an event: the filters' and the event's, and the flag state.
READ_SELECT = MESSAGE_SELECT + ",flag"


def event_kind(event_type: str) -> str:
    """`created`, or `flagged` for the ledger's `flagged.<n>` (the n-th flag transition)."""
    return event_type.split(".", 1)[0]


class FlagLedger(Protocol):
    """The last flag state seen per message and subscription (DeliveryStore): the push
    path's `flagged` judgement, and poll mode's seed of it."""

    async def flag_state(self, subscription_id: str, message_id: str) -> FlagState: ...

    async def set_flag_state(
        self,
        subscription_id: str,
        message_id: str,
        flagged: bool,
        transitions: int,
        seen: FlagState,
    ) -> bool: ...


class DeliveryLedger(FlagLedger, Protocol):
    """The events' leases and states (DeliveryStore)."""

    async def claim(
        self,
        subscription_id: str,
        message_id: str,
        event_type: str,
        *,
        now: datetime,
        lease: timedelta,
        token: str | None = None,
    ) -> Claim: ...

    async def settle(
        self,
        record: DeliveryRecord,
        status: str,
        *,
        attempted_at: datetime | None = None,
        http_status: int | None = None,
    ) -> None: ...

    async def reschedule(
        self,
        record: DeliveryRecord,
        *,
        attempted_at: datetime,
        http_status: int | None,
        retry_at: datetime,
        lease: timedelta,
    ) -> str: ...

    async def release(self, record: DeliveryRecord, now: datetime) -> None: ...


class RetryJobs(Protocol):
    """Where a retry is scheduled (JobQueue.change)."""

    async def change(
        self,
        subscription_id: str,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
        delay_seconds: int = 0,
    ) -> None: ...


class NotificationDelivery:
    def __init__(
        self,
        settings: Settings,
        *,
        mailboxes: Mailboxes,
        store: DeliveryLedger,
        jobs: RetryJobs,
        audit: AuditSink,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._mailboxes = mailboxes
        self._store = store
        self._jobs = jobs
        self._audit = audit
        self._resolver = resolver
        self._ssl_context = ssl_context
        self._clock = clock
        self._http: httpx.AsyncClient | None = None

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._settings.WEBHOOK_LEASE_SECONDS)

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
        self,
        s: Subscription,
        connection: Connection,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
    ) -> str | None:
        """One attempt at the event. Returns its state after it (`delivered`, `failed`,
        `filtered`, `gone`, `pending` with a retry scheduled, or `disabled` when the
        receiver answered 410 Gone); None when it was not ours (settled already, or leased:
        looked at again when the lease ends)."""
        if event_type == "updated":
            return await self._on_update(s, connection, message_id, cid)
        if event_type == "created" and "created" not in s.events:
            # Only flags are wanted: note the new message's flag state (no event).
            message = await self._read(s, connection, message_id, cid)
            if message is not None:
                await self._remember_flag(s, message_id, message)
            return None
        return await self._deliver(s, connection, message_id, cid, event_type, lease, None)

    async def _read(
        self,
        s: Subscription,
        connection: Connection,
        message_id: str,
        cid: str,
        *,
        body: bool = False,
    ) -> dict[str, Any] | None:
        """The message's fields the event and filters need; its body only when a filter
        reads it (`mentionsMe`): bodies can be megabytes."""
        # The watched mailbox: a poll-mode subscription's is another user's (shared) one.
        mb = self._mailboxes.system(connection, correlation_id=cid, mailbox=s.mailbox)
        select = READ_SELECT + ",body" if body else READ_SELECT
        try:
            response = await mb.send(
                GraphRequest("GET", mb.path.message(message_id), params={"$select": select})
            )
        except NotFound:
            return None
        return dict(response.json() or {})

    async def _remember_flag(
        self, s: Subscription, message_id: str, message: dict[str, Any]
    ) -> None:
        """A new message's flag state, when it is not flagged (a later update that flags it
        is a transition). Read flagged, it is left unknown: the read may come after a flag
        set since, and an update job finding it flagged and unknown fires once."""
        if _flagged(message):
            return
        seen = await self._store.flag_state(s.id, message_id)
        if seen.flagged is None:
            await self._store.set_flag_state(s.id, message_id, _flagged(message), 0, seen)

    async def _on_update(
        self, s: Subscription, connection: Connection, message_id: str, cid: str
    ) -> str | None:
        """Graph's `updated`: a `flagged` event only for a not-flagged → flagged transition
        (each transition is its own event, `flagged.<n>`); a re-flag or any other change
        fires nothing. Duplicate notifications of one transition compute the same `n`, so
        the ledger's claim keeps it one event."""
        message = await self._read(
            s, connection, message_id, cid, body=Filters.model_validate(s.filters).reads_body
        )
        if message is None:
            return None
        seen = await self._store.flag_state(s.id, message_id)
        flagged = _flagged(message)
        if not flagged:
            if seen.flagged is not False:
                await self._store.set_flag_state(s.id, message_id, False, seen.transitions, seen)
            return None
        if seen.flagged:
            return None
        transition = seen.transitions + 1

        async def record_transition() -> None:
            # After the event is leased in the ledger: a worker dying between the two leaves
            # a pending event that the reconciliation finds, never a lost one.
            await self._store.set_flag_state(s.id, message_id, True, transition, seen)

        return await self._deliver(
            s,
            connection,
            message_id,
            cid,
            f"flagged.{transition}",
            None,
            message,
            on_claimed=record_transition,
        )

    async def _deliver(
        self,
        s: Subscription,
        connection: Connection,
        message_id: str,
        cid: str,
        event_type: str,
        lease: str | None,
        message: dict[str, Any] | None,
        on_claimed: Callable[[], Awaitable[None]] | None = None,
    ) -> str | None:
        now = self._clock()
        claim = await self._store.claim(
            s.id, message_id, event_type, now=now, lease=self._lease, token=lease
        )
        if claim.token is None or claim.record is None:
            if claim.busy_until is not None:
                # Someone holds the lease (a running attempt, a scheduled retry, or a worker
                # that died): look again when it ends; a live holder will have settled it.
                wait = (claim.busy_until - now).total_seconds() + 1
                await self._jobs.change(
                    s.id, message_id, cid, event_type=event_type, delay_seconds=math.ceil(wait)
                )
            return None
        record = claim.record
        if on_claimed is not None:
            await on_claimed()
        filters = Filters.model_validate(s.filters)
        if message is None:
            try:
                message = await self._read(s, connection, message_id, cid, body=filters.reads_body)
            except Exception:
                await self._store.release(record, self._clock())  # the host's retry may claim
                raise
            if message is None:
                await self._store.settle(record, "gone")
                return "gone"
            if event_type == "created" and "flagged" in s.events:
                await self._remember_flag(s, message_id, message)
        # The watched mailbox's address, for mentionsMe: the shared mailbox a poll-mode
        # subscription names, else the connection's UPN (the primary SMTP address in most
        # tenants; see docs/triggers.md for the limit).
        if not matches(filters, message, me=(s.mailbox or connection.mailbox,)):
            await self._store.settle(record, "filtered")
            return "filtered"
        kind = event_kind(event_type)
        event: dict[str, Any] = {
            "subscriptionId": s.id,
            "connectionId": s.connection_id,
            "changeType": "created" if kind == "created" else "updated",
            "type": f"message.{kind}",
            "mailbox": s.mailbox or connection.mailbox,
            "occurredAt": record.first_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "messageId": message_id,
        }
        if s.include_message:
            # Never the body (read for mentionsMe only): the event carries headers.
            event["message"] = {k: v for k, v in message.items() if k not in ("flag", "body")}
        body = json.dumps(event, separators=(",", ":")).encode()
        return await self._attempt(s, connection, record, body, cid)

    async def _attempt(
        self, s: Subscription, connection: Connection, record: DeliveryRecord, body: bytes, cid: str
    ) -> str:
        # Checked again before every attempt (DNS may have changed since registration), and
        # the attempt connects to the address this check approved.
        try:
            target = await check_webhook(
                s.notification_url,
                allow_http_loopback=self._settings.loopback_webhooks,
                resolver=self._resolver,
            )
        except WebhookRejected:
            await self._store.settle(record, "failed", attempted_at=self._clock())
            return self._audited("failed", "webhook_rejected", cid, connection)
        started = self._clock()
        headers = signed_headers(s.signing_secret, record.id, int(started.timestamp()), body)
        attempt = await post_event(
            self._client(),
            target,
            body,
            sign(s.signing_secret, body),
            f"{s.id}:{record.message_id}"[:200],
            headers=headers,
        )
        attempted = self._clock()
        if attempt.delivered:
            await self._store.settle(
                record, "delivered", attempted_at=attempted, http_status=attempt.status
            )
            return self._audited("delivered", None, cid, connection)
        if not attempt.retryable:
            await self._store.settle(
                record, "failed", attempted_at=attempted, http_status=attempt.status
            )
            if attempt.gone:
                self._audited("failed", "webhook_gone", cid, connection)
                return "disabled"
            return self._audited("failed", f"webhook_status_{attempt.status}", cid, connection)
        delay = self._backoff(record.attempts + 1)
        retry_at = attempted + timedelta(seconds=delay)
        deadline = record.window_start + timedelta(hours=self._settings.WEBHOOK_RETRY_HOURS)
        if retry_at > deadline:
            await self._store.settle(
                record, "failed", attempted_at=attempted, http_status=attempt.status
            )
            return self._audited("failed", "gave_up", cid, connection)
        token = await self._store.reschedule(
            record,
            attempted_at=attempted,
            http_status=attempt.status,
            retry_at=retry_at,
            lease=self._lease,
        )
        await self._jobs.change(
            s.id,
            record.message_id,
            cid,
            event_type=record.type,
            lease=token,
            delay_seconds=max(1, round(delay)),
        )
        return "pending"

    def _backoff(self, attempts: int) -> float:
        """The wait after the `attempts`-th failed attempt: WEBHOOK_RETRY_INITIAL_SECONDS,
        doubling, at most WEBHOOK_RETRY_MAX_SECONDS, with ±20% jitter."""
        base = float(self._settings.WEBHOOK_RETRY_INITIAL_SECONDS) * 2.0 ** min(attempts - 1, 30)
        cap = float(self._settings.WEBHOOK_RETRY_MAX_SECONDS)
        return min(base, cap) * random.uniform(0.8, 1.2)

    def _audited(self, status: str, reason: str | None, cid: str, connection: Connection) -> str:
        self._audit.emit(
            connection_event(
                "notification.delivery",
                Outcome.SUCCESS if status == "delivered" else Outcome.FAILURE,
                cid,
                connection,
                reason=reason,
            )
        )
        return status


def _flagged(message: dict[str, Any]) -> bool:
    return (message.get("flag") or {}).get("flagStatus") == "flagged"
