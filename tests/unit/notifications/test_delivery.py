"""Delivery to the caller's webhook: every attempt is checked again and connects to the
address that check approved, so a name that later resolves to a private address gets no
further attempt."""

from __future__ import annotations

from datetime import UTC, datetime
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
from shared.store.subscriptions import Subscription
from tests.support.app import sample_settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeStore:
    def __init__(self) -> None:
        self.settled: list[str] = []

    async def claim(self, subscription_id: str, message_id: str) -> bool:
        return True

    async def settle(self, subscription_id: str, message_id: str, state: str) -> None:
        self.settled.append(state)

    async def release(self, subscription_id: str, message_id: str) -> None:
        self.settled.append("released")


class FakeMailbox:
    """A connected mailbox (ConnectedMailbox.send and its path) answering one message."""

    path = MailboxPath.of(None)

    async def send(self, request: Any) -> httpx.Response:
        return httpx.Response(200, json={"id": "m1", "subject": "s"})


class FakeMailboxes:
    def system(self, connection: Any, *, correlation_id: str) -> FakeMailbox:
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

    async def no_sleep(seconds: float) -> None:
        pass

    delivery = NotificationDelivery(
        settings,
        mailboxes=cast(Any, FakeMailboxes()),
        store=store,
        audit=audit,
        resolver=rebinding,
        sleep=no_sleep,
    )
    connection = cast(Connection, SimpleNamespace(owner_tid="t", id="conn-1", mailbox="a@x"))

    await delivery.deliver(_subscription(), connection, "m1", "cid")
    await delivery.aclose()

    assert hosts == ["8.8.8.8"]  # the one attempt went to the checked address
    assert store.settled == ["failed"]
    assert [e.reason for e in audit.events] == ["webhook_rejected"]
