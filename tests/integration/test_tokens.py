"""The token service against the real sandbox and Azurite: silent refresh, write-back,
revocation → reauth_required."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.connections.models import Connection, ConnectionStatus
from shared.container import Container
from shared.errors import ReauthRequired
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"


@pytest.fixture
async def container(
    settings_env: dict[str, str], tmp_path: Path, sandbox: SandboxServer
) -> AsyncIterator[Container]:
    settings = load_settings(
        {**settings_env, "TABLE_PREFIX": f"t{tmp_path.name[-8:]}".replace("_", "")}
    )
    built = Container.build(settings, audit=MemoryAuditSink())
    yield built
    await built.aclose()


async def connect(container: Container, sandbox: SandboxServer, upn: str) -> Connection:
    """The browser flow without a browser: start, let the sandbox redirect, finish."""
    start = await container.connections.start_login(upn, None, "corr-1")
    async with httpx.AsyncClient(verify=sandbox.ssl_context()) as client:
        redirect = await client.get(start.auth_uri)
    params = dict(parse_qsl(urlsplit(redirect.headers["location"]).query))
    connected = await container.connections.finish_login(params, start.browser_secret, "corr-2")
    return connected.connection


async def graph_status(sandbox: SandboxServer, token: str) -> int:
    async with httpx.AsyncClient(verify=sandbox.ssl_context()) as client:
        response = await client.get(
            f"{sandbox.graph_url}/me/messages", headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def test_a_connected_grant_yields_a_working_graph_token(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)

    token = await container.tokens.access_token(connection, "corr")
    again = await container.tokens.access_token(connection, "corr")

    assert await graph_status(sandbox, token) == 200
    assert again == token  # served from the worker's cache: no second decrypt or refresh


async def test_a_forced_refresh_writes_the_changed_cache_back(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    before = await container.connections._store.open_cache(connection.id)

    token = await container.tokens.access_token(connection, "corr", force_refresh=True)

    after = await container.connections._store.open_cache(connection.id)
    assert before is not None and after is not None
    assert after.etag != before.etag
    assert after.connection.last_refreshed_at is not None
    assert await graph_status(sandbox, token) == 200


async def test_a_revoked_grant_marks_the_connection_reauth_required(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    with sandbox.client() as control:
        control.post("/_sandbox/identity/revoke", json={"upn": ALICE}).raise_for_status()

    with pytest.raises(ReauthRequired) as caught:
        await container.tokens.access_token(connection, "corr", force_refresh=True)

    stored = await container.connections._store.get(connection.id)
    assert stored is not None and stored.status is ConnectionStatus.REAUTH_REQUIRED
    assert caught.value.extensions["loginUrl"].endswith(
        "/api/auth/login?loginHint=alice%40contoso.test"
    )
    assert any(e.action == "connection.reauth_required" for e in container.audit.events)  # type: ignore[attr-defined]
