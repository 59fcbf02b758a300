"""Delivery to the caller's webhook: every attempt is checked again and connects to the
address that check approved, so a name that later resolves to a private address gets no
further attempt; retries are queue jobs scheduled with backoff (never sleeps), give up after
WEBHOOK_RETRY_HOURS, and a 410 Gone disables the subscription."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.connections.models import Connection
from shared.graph.paths import MailboxPath
from shared.notifications import delivery as delivery_module
from shared.notifications.delivery import NotificationDelivery
from shared.store.deliveries import Claim, DeliveryRecord, delivery_id
from shared.store.subscriptions import Subscription
from tests.support.app import sample_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStore:
    """The ledger (DeliveryStore) in memory: one record, leased by token."""

    def __init__(self) -> None:
        self.settled: list[str] = []
        self.record: DeliveryRecord | None = None

    async def claim(
        self,
        subscription_id: str,
        message_id: str,
        event_type: str,
        *,
        now: datetime,
        lease: timedelta,
        token: str | None = None,
    ) -> Claim:
        r = self.record
        if r is None:
            r = self.record = DeliveryRecord(
                subscription_id,
                delivery_id(subscription_id, message_id, event_type),
                message_id,
                event_type,
                "pending",
                0,
                now,
                None,
                None,
                None,
                None,
            )
        elif r.status != "pending":
            return Claim(r)
        elif token != r.lease_token and r.lease_until is not None and r.lease_until > now:
            return Claim(r, busy_until=r.lease_until)
        r.lease_until, r.lease_token = now + lease, f"t{len(self.settled)}-{now.timestamp()}"
        return Claim(r, r.lease_token)

    async def settle(
        self,
        record: DeliveryRecord,
        status: str,
        *,
        attempted_at: datetime | None = None,
        http_status: int | None = None,
    ) -> None:
        record.status = status
        if attempted_at is not None:
            record.attempts += 1
        self.settled.append(status)

    async def reschedule(
        self,
        record: DeliveryRecord,
        *,
        attempted_at: datetime,
        http_status: int | None,
        retry_at: datetime,
        lease: timedelta,
    ) -> str:
        record.attempts += 1
        record.lease_until, record.lease_token = retry_at + lease, f"retry-{record.attempts}"
        return record.lease_token

    async def release(self, record: DeliveryRecord, now: datetime) -> None:
        record.lease_until, record.lease_token = now, None
        self.settled.append("released")


class FakeJobs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def change(
        self,
        subscription_id: str,
        message_id: str,
        cid: str,
        *,
        event_type: str = "created",
        lease: str | None = None,
        delay_seconds: int = 0,
    ) -> None:
        self.sent.append({"msg": message_id, "lease": lease, "delay": delay_seconds})


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class FakeMailbox:
    """A connected mailbox (ConnectedMailbox.send and its path) answering one message."""

    path = MailboxPath.of(None)

    async def send(self, request: Any) -> httpx.Response:
        return httpx.Response(200, json={"id": "m1", "subject": "s"})


class FakeMailboxes:
    def system(
        self, connection: Any, *, correlation_id: str, mailbox: str | None = None
    ) -> FakeMailbox:
        return FakeMailbox()


def _subscription() -> Subscription:
    return Subscription(
        id="sub-1",
        connection_id="conn-1",
        graph_id="g-1",
        notification_url="https://hook.example/flow?sig=s",
        folder="inbox",
        filters={},
        include_message=False,
        expires=NOW,
        created_at=NOW,
        client_state="state",
        signing_secret="secret",
    )


async def test_a_name_that_rebinds_to_a_private_address_gets_no_further_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([["8.8.8.8"], ["10.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    hosts: list[str] = []

    def webhook(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(503)  # worth retrying: a second attempt is due

    monkeypatch.setattr(
        delivery_module,
        "webhook_client",
        lambda timeout, verify: httpx.AsyncClient(transport=httpx.MockTransport(webhook)),
    )
    store, audit = FakeStore(), MemoryAuditSink()
    settings = load_settings(
        {**sample_settings(), "CA_BUNDLE": "", "WEBHOOK_RETRY_INITIAL_SECONDS": "1"}
    )

    jobs = FakeJobs()
    delivery = NotificationDelivery(
        settings,
        mailboxes=cast(Any, FakeMailboxes()),
        store=store,
        jobs=jobs,
        audit=audit,
        resolver=rebinding,
    )
    connection = cast(Connection, SimpleNamespace(owner_tid="t", id="conn-1", mailbox="a@x"))

    await delivery.deliver(_subscription(), connection, "m1", "cid")
    [retry] = jobs.sent  # the second attempt is a queued job, run here as the worker would
    await delivery.deliver(_subscription(), connection, "m1", "cid", lease=retry["lease"])
    await delivery.aclose()

    assert hosts == ["8.8.8.8"]  # the one attempt went to the checked address
    assert store.settled == ["failed"]
    assert [e.reason for e in audit.events] == ["webhook_rejected"]


CONNECTION = cast(Connection, SimpleNamespace(owner_tid="t", id="conn-1", mailbox="a@x"))


def _delivery(
    monkeypatch: pytest.MonkeyPatch,
    answers: list[int],
    seen: list[httpx.Request],
    **settings: str,
) -> tuple[NotificationDelivery, FakeStore, FakeJobs, Clock, MemoryAuditSink]:
    def webhook(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(answers.pop(0) if len(answers) > 1 else answers[0])

    monkeypatch.setattr(
        delivery_module,
        "webhook_client",
        lambda timeout, verify: httpx.AsyncClient(transport=httpx.MockTransport(webhook)),
    )

    async def public(host: str, port: int) -> list[str]:
        return ["8.8.8.8"]

    store, jobs, clock, audit = FakeStore(), FakeJobs(), Clock(), MemoryAuditSink()
    delivery = NotificationDelivery(
        load_settings({**sample_settings(), "CA_BUNDLE": "", **settings}),
        mailboxes=cast(Any, FakeMailboxes()),
        store=store,
        jobs=jobs,
        audit=audit,
        resolver=public,
        clock=clock,
    )
    return delivery, store, jobs, clock, audit


async def test_retries_are_queued_with_growing_delays_and_the_event_fails_after_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []
    delivery, store, jobs, clock, audit = _delivery(
        monkeypatch,
        [503],
        seen,
        WEBHOOK_RETRY_INITIAL_SECONDS="60",
        WEBHOOK_RETRY_MAX_SECONDS="3600",
        WEBHOOK_RETRY_HOURS="2",
    )
    ended = await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")
    states = [ended]
    while jobs.sent and states[-1] == "pending":
        clock.now += timedelta(seconds=jobs.sent[-1]["delay"])
        states.append(
            await delivery.deliver(
                _subscription(), CONNECTION, "m1", "cid", lease=jobs.sent[-1]["lease"]
            )
        )

    delays = [job["delay"] for job in jobs.sent]
    # Doubling from 60 s, capped at WEBHOOK_RETRY_MAX_SECONDS before the ±20 % jitter.
    bases = [min(60 * 2**i, 3600) for i in range(len(delays))]
    assert all(0.8 * b - 1 <= d <= 1.2 * b + 1 for b, d in zip(bases, delays, strict=True))
    assert clock.now - NOW <= timedelta(hours=2)
    assert states[-1] == "failed" and set(states[:-1]) == {"pending"}
    assert len(seen) == len(delays) + 1
    assert store.settled == ["failed"]
    assert [e.reason for e in audit.events] == ["gave_up"]
    # Every attempt carried the same webhook-id.
    assert {r.headers["webhook-id"] for r in seen} == {delivery_id("sub-1", "m1", "created")}


async def test_a_duplicate_while_a_retry_is_scheduled_waits_for_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[httpx.Request] = []
    delivery, store, jobs, clock, _ = _delivery(
        monkeypatch, [503, 202], seen, WEBHOOK_RETRY_INITIAL_SECONDS="10"
    )
    await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")
    [retry] = jobs.sent

    duplicate = await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")

    assert duplicate is None and len(seen) == 1  # no early attempt
    assert jobs.sent[1]["lease"] is None and jobs.sent[1]["delay"] >= retry["delay"]
    clock.now += timedelta(seconds=retry["delay"])
    ended = await delivery.deliver(_subscription(), CONNECTION, "m1", "cid", lease=retry["lease"])
    assert ended == "delivered" and len(seen) == 2
    later = await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")
    assert later is None and len(seen) == 2 and store.settled == ["delivered"]


async def test_a_410_gone_disables_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []
    delivery, store, jobs, _, audit = _delivery(monkeypatch, [410], seen)

    ended = await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")

    assert ended == "disabled"
    assert jobs.sent == [] and store.settled == ["failed"] and len(seen) == 1
    assert [e.reason for e in audit.events] == ["webhook_gone"]


class BodyMailbox:
    """A connected mailbox answering one HTML message, recording the $select it was asked."""

    path = MailboxPath.of(None)

    def __init__(self, html: str, selects: list[str]) -> None:
        self.html, self.selects = html, selects

    async def send(self, request: Any) -> httpx.Response:
        self.selects.append(request.params["$select"])
        body = {"contentType": "html", "content": self.html}
        return httpx.Response(200, json={"id": "m1", "subject": "s", "body": body})


@pytest.mark.parametrize(
    ("html", "ended"),
    [
        ('<p>Hi <a id="OWAAM1A2B" href="mailto:A@X">@A</a></p>', "delivered"),
        ('<p>Thanks</p><p><a href="mailto:a@x">a@x</a></p>', "filtered"),
    ],
)
async def test_mentions_me_reads_the_body_and_never_sends_it(
    monkeypatch: pytest.MonkeyPatch, html: str, ended: str
) -> None:
    seen: list[httpx.Request] = []
    selects: list[str] = []
    delivery, store, _, _, _ = _delivery(monkeypatch, [202], seen)
    mailbox = BodyMailbox(html, selects)
    monkeypatch.setattr(delivery, "_mailboxes", SimpleNamespace(system=lambda c, **_: mailbox))
    subscription = _subscription()
    subscription.filters = {"mentionsMe": True}
    subscription.include_message = True

    state = await delivery.deliver(subscription, CONNECTION, "m1", "cid")
    await delivery.aclose()

    assert state == ended and store.settled == [ended]
    assert [s.split(",")[-1] for s in selects] == ["body"]
    assert all("body" not in r.read().decode() for r in seen)
    assert len(seen) == (1 if ended == "delivered" else 0)


async def test_without_mentions_me_the_body_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    selects: list[str] = []
    delivery, _, _, _, _ = _delivery(monkeypatch, [202], [])
    mailbox = BodyMailbox("<p>x</p>", selects)
    monkeypatch.setattr(delivery, "_mailboxes", SimpleNamespace(system=lambda c, **_: mailbox))

    await delivery.deliver(_subscription(), CONNECTION, "m1", "cid")
    await delivery.aclose()

    assert selects and "body" not in selects[0].split(",")
