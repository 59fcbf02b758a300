"""Choosing an option: once per mail, delivered signed, transient failures retried briefly."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import httpx
import pytest

from shared.audit import MemoryAuditSink
from shared.config import Settings
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import KeyRing
from shared.crypto.sealed_text import SealedValues
from shared.errors import Conflict, NotFound
from shared.notifications.webhooks import sign
from shared.options.service import PURPOSE, OptionLinks
from shared.store.options import OptionTarget


class Provider:
    name = "keyProvider"

    async def load(self) -> KeyRing:
        return KeyRing(
            {"a1": b"\x01" * 32}, "a1", {"f1": [base64.urlsafe_b64encode(b"\x02" * 32)]}, "f1"
        )

    async def check(self) -> None:
        pass


class MemoryOptions:
    """OptionStore's contract: one choice per mail; no trigger registrations here."""

    def __init__(self) -> None:
        self.choices: dict[str, str] = {}

    async def record_choice(self, request_id: str, connection_id: str, now: datetime) -> bool:
        if request_id in self.choices:
            return False
        self.choices[request_id] = connection_id
        return True

    async def subscriptions(self, connection_id: str) -> list[OptionTarget]:
        return []


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.posts: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.posts.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 202)


def links(receiver: Receiver, sleeps: list[float]) -> tuple[OptionLinks, SealedValues]:
    settings = Settings.model_validate(
        {
            "TENANT_ID": "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b",
            "CLIENT_ID": "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
            "STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
            "ALLOW_HTTP_LOOPBACK_WEBHOOKS": "true",
            "CLIENT_SECRET": "unit-test-secret",
        }
    )
    sealed = SealedValues(KeyRingCache(Provider()))

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    service = OptionLinks(
        settings,
        writer=None,  # type: ignore[arg-type]
        sealed=sealed,
        store=MemoryOptions(),  # type: ignore[arg-type]
        audit=MemoryAuditSink(),
        sleep=sleep,
        transport=httpx.MockTransport(receiver),
    )
    return service, sealed


async def token(sealed: SealedValues, option: str) -> str:
    payload = {"r": "req-1", "o": option, "u": "http://127.0.0.1:9/hook", "s": "secret", "c": "c-1"}
    return await sealed.wrap(PURPOSE, payload, 600)


async def test_a_choice_is_posted_signed_with_the_mails_secret() -> None:
    receiver = Receiver([])
    service, sealed = links(receiver, [])

    chosen = await service.choose(await token(sealed, "Approve"), "corr")

    [post] = receiver.posts
    assert chosen.delivered and chosen.option == "Approve"
    assert post.headers["X-Signature"] == sign("secret", post.content)
    assert json.loads(post.content)["selectedOption"] == "Approve"


async def test_a_transient_failure_is_retried_briefly() -> None:
    receiver, sleeps = Receiver([503, 429]), []
    service, sealed = links(receiver, sleeps)

    chosen = await service.choose(await token(sealed, "Approve"), "corr")

    assert chosen.delivered
    assert len(receiver.posts) == 3 and sleeps == [1.0, 3.0]


async def test_a_refusal_is_not_retried() -> None:
    receiver, sleeps = Receiver([400]), []
    service, sealed = links(receiver, sleeps)

    chosen = await service.choose(await token(sealed, "Approve"), "corr")

    assert not chosen.delivered
    assert len(receiver.posts) == 1 and sleeps == []


async def test_a_second_choice_for_the_same_mail_is_refused_and_not_delivered() -> None:
    receiver = Receiver([])
    service, sealed = links(receiver, [])
    await service.choose(await token(sealed, "Approve"), "corr")

    with pytest.raises(Conflict):
        await service.choose(await token(sealed, "Reject"), "corr")

    assert len(receiver.posts) == 1


async def test_a_session_cookie_is_not_an_option_token() -> None:
    service, sealed = links(Receiver([]), [])
    cookie = await sealed.wrap(
        "portal-session", {"r": "x", "o": "y", "u": "z", "s": "s", "c": "c"}, 60
    )

    with pytest.raises(NotFound):
        await service.choose(cookie, "corr")
