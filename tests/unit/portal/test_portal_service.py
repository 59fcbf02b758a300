"""The portal's rules, with fakes: whose connections it shows, what a form needs, and that its
own page is always a place the connect flow may return to."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.audit import MemoryAuditSink
from shared.auth.caller import Caller
from shared.config import Settings
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.service import ConnectionService
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import KeyRing
from shared.crypto.sealed_text import SealedValues
from shared.errors import CsrfRejected, SignInFailed
from shared.portal.service import SESSION_PURPOSE, PortalService, PortalSession

TENANT = "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b"
CLIENT = "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10"


def settings(**extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "TENANT_ID": TENANT,
            "CLIENT_ID": CLIENT,
            "STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
            "CLIENT_SECRET": "unit-test-secret",
            **extra,
        }
    )


class Provider:
    name = "keyProvider"

    async def load(self) -> KeyRing:
        return KeyRing(
            {"a1": b"\x01" * 32}, "a1", {"f1": [base64.urlsafe_b64encode(b"\x02" * 32)]}, "f1"
        )

    async def check(self) -> None:
        pass


class FakeConnections:
    def __init__(self) -> None:
        self.deleted: list[tuple[Caller, str]] = []
        self.owned = [
            Connection(
                "c-1",
                "oid-a",
                TENANT,
                "alice@contoso.test",
                [],
                ConnectionStatus.ACTIVE,
                datetime(2026, 12, 1, tzinfo=UTC),
            )
        ]

    async def list(self, caller: Caller) -> list[Connection]:
        return [c for c in self.owned if c.owner_oid == caller.oid]

    async def delete(self, caller: Caller, connection_id: str, correlation_id: str) -> None:
        self.deleted.append((caller, connection_id))


class FakeSubscriptions:
    async def list_for(self, caller: Caller, connection_id: str) -> list[object]:
        return [object(), object()]


class FakeNotifications:
    subscriptions = FakeSubscriptions()


def portal(connections: FakeConnections | None = None) -> tuple[PortalService, SealedValues]:
    sealed = SealedValues(KeyRingCache(Provider()))
    service = PortalService(
        settings(),
        msal=None,  # type: ignore[arg-type]
        sealed=sealed,
        connections=connections or FakeConnections(),  # type: ignore[arg-type]
        notifications=FakeNotifications(),  # type: ignore[arg-type]
        audit=MemoryAuditSink(),
    )
    return service, sealed


SESSION = PortalSession(TENANT, "oid-a", "alice@contoso.test", "csrf-token-1")


async def test_the_page_lists_the_signed_in_persons_connections_with_trigger_counts() -> None:
    service, _ = portal()

    rows = await service.connections(SESSION)

    assert [(r.id, r.mailbox, r.subscriptions) for r in rows] == [("c-1", "alice@contoso.test", 2)]
    assert await service.connections(PortalSession(TENANT, "oid-b", "bob", "x")) == []


async def test_disconnect_without_the_sessions_token_is_refused_and_deletes_nothing() -> None:
    connections = FakeConnections()
    service, _ = portal(connections)

    with pytest.raises(CsrfRejected):
        await service.disconnect(SESSION, "c-1", "csrf-token-2", "corr")

    assert connections.deleted == []


async def test_disconnect_deletes_as_the_signed_in_person() -> None:
    connections = FakeConnections()
    service, _ = portal(connections)

    await service.disconnect(SESSION, "c-1", "csrf-token-1", "corr")

    [(caller, cid)] = connections.deleted
    assert (caller.kind, caller.oid, caller.tenant_id, cid) == ("user", "oid-a", TENANT, "c-1")


async def test_a_session_for_another_tenant_is_no_session() -> None:
    service, sealed = portal()
    other = await sealed.wrap(
        SESSION_PURPOSE,
        {"tid": "00000000-0000-0000-0000-000000000000", "oid": "o", "upn": "u", "csrf": "c"},
        60,
    )

    assert await service.session(other) is None


async def test_a_callback_without_the_flow_cookie_is_refused() -> None:
    service, _ = portal()

    with pytest.raises(SignInFailed) as refused:
        await service.finish_sign_in({"code": "c", "state": "s"}, None, "corr")

    assert refused.value.reason == "state_unknown"


def test_the_portal_page_is_an_allowed_return_to_without_any_allow_list() -> None:
    configured = settings(RETURN_TO_ALLOWLIST="")
    service = ConnectionService(configured, None, None, None, MemoryAuditSink())  # type: ignore[arg-type]

    assert configured.portal_url == "http://127.0.0.1:7071/api/portal"
    assert service._return_to_allowed("http://127.0.0.1:7071/api/portal")
    assert not service._return_to_allowed("http://127.0.0.1:7071/api/portal/../evil")
    assert not service._return_to_allowed("https://evil.example/api/portal")
