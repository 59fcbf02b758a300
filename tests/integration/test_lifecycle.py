"""The lifecycle service in process against the real sandbox, Azurite tables and queues:
due connections are refreshed, fresh ones left alone, revoked ones stop, transient
failures back off, concurrent refreshers lose nothing, and poison settles the run."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from shared.audit import AuditEvent, MemoryAuditSink
from shared.config import load_settings
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import DueKind
from shared.container import Container
from shared.lifecycle.messages import WorkBatch, WorkItem
from tests.support.app import app_settings
from tests.support.azurite import AzuriteServer
from tests.support.browser import connect_in_process
from tests.support.lifecycle import age, hints_for
from tests.support.sandbox import SandboxServer, start_sandbox

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"


def _settings_for(settings_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    tag = f"t{tmp_path.name[-8:]}".replace("_", "").lower()
    return {**settings_env, "TABLE_PREFIX": tag, "LIFECYCLE_QUEUE": f"{tag}-work"}


@pytest.fixture
async def container(
    settings_env: dict[str, str], tmp_path: Path, sandbox: SandboxServer
) -> AsyncIterator[Container]:
    built = Container.build(
        load_settings(_settings_for(settings_env, tmp_path)), audit=MemoryAuditSink()
    )
    yield built
    await built.aclose()


def events(container: Container, action: str) -> list[AuditEvent]:
    sink = container.audit
    assert isinstance(sink, MemoryAuditSink)
    return [e for e in sink.events if e.action == action]


async def connect(container: Container, sandbox: SandboxServer, upn: str) -> Connection:
    return await connect_in_process(container, upn, sandbox.ssl_context())


def refresh_token_of(cache: bytes) -> str:
    tokens = json.loads(cache)["RefreshToken"]
    assert len(tokens) == 1
    return str(next(iter(tokens.values()))["secret"])


async def drain(container: Container) -> int:
    """Work every batch on the run's queue in process, as the queue trigger would."""
    settings = container.settings
    queue = QueueClient.from_connection_string(
        settings.STORAGE_CONNECTION_STRING.get_secret_value(),  # type: ignore[union-attr]
        settings.LIFECYCLE_QUEUE,
    )
    worked = 0
    async with queue:
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()
        async for message in queue.receive_messages():
            await container.lifecycle.work(base64.b64decode(message.content))
            await queue.delete_message(message)
            worked += 1
    return worked


async def run_once(container: Container) -> dict[str, int]:
    await container.lifecycle.run()
    await drain(container)
    summary = events(container, "lifecycle.run")[-1]
    return summary.counts


async def test_a_due_connection_is_refreshed_and_its_refresh_token_changes(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    await age(container, [connection.id], days=8)
    before = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]

    counts = await run_once(container)

    after = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]
    assert counts["due"] == 1 and counts["refreshed"] == 1 and counts["failed"] == 0
    assert refresh_token_of(after.cache) != refresh_token_of(before.cache)
    assert after.connection.last_refreshed_at > datetime.now(UTC) - timedelta(minutes=1)
    # Armed one idle period on (the batch's hint, written just before the refresh), that
    # hint names it, and nothing else is due now.
    armed = after.connection.due_at
    assert armed is not None
    assert timedelta(0) <= after.connection.last_refreshed_at + timedelta(days=7) - armed
    assert armed - after.connection.last_refreshed_at > timedelta(days=7) - timedelta(minutes=1)
    assert armed in [h.at for h in await hints_for(container, connection.id)]
    assert (await run_once(container))["due"] == 0


async def test_a_fresh_connection_is_not_touched(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    before = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()

    counts = await run_once(container)

    after = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]
    assert counts["due"] == 0 and counts["refreshed"] == 0
    assert after.etag == before.etag
    with sandbox.client() as control:
        requests = control.get("/_sandbox/requests").json()
    assert not [r for r in requests if r["path"].endswith("/oauth2/v2.0/token")]


async def test_a_revoked_grant_becomes_reauth_required_after_one_run_and_is_not_retried(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    await age(container, [connection.id], days=8)
    with sandbox.client() as control:
        control.post("/_sandbox/identity/revoke", json={"upn": ALICE}).raise_for_status()

    first = await run_once(container)
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()
    second = await run_once(container)

    stored = await container.connections._store.get(connection.id)  # type: ignore[attr-defined]
    assert stored.status is ConnectionStatus.REAUTH_REQUIRED
    assert first["reauth_required"] == 1 and first["refreshed"] == 0
    assert second["due"] == 0
    assert len(events(container, "connection.reauth_required")) == 1
    with sandbox.client() as control:
        assert control.get("/_sandbox/requests").json() == []


async def test_a_transient_failure_is_retried_later_with_backoff(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    await age(container, [connection.id], days=8)
    with sandbox.client() as control:
        control.post(
            "/_sandbox/identity/refresh-error",
            json={"error": "temporarily_unavailable", "status": 503, "times": 5},
        ).raise_for_status()

    counts = await run_once(container)

    soon = datetime.now(UTC) + timedelta(minutes=6)
    found = [h for h in await hints_for(container, connection.id) if h.at <= soon]
    stored = await container.connections._store.get(connection.id)  # type: ignore[attr-defined]
    assert counts["failed"] == 1 and counts["refreshed"] == 0
    assert stored.status is ConnectionStatus.ACTIVE
    assert [(h.kind, h.attempts) for h in found] == [(DueKind.RETRY, 1)]
    assert found[0].at > datetime.now(UTC) + timedelta(minutes=4)
    # The row still points at the hint that fired, so the retry hint is not taken for stale.
    assert stored.due_at is not None and stored.due_at <= found[0].at


async def test_fifty_concurrent_refreshers_lose_no_update(
    container: Container,
    sandbox: SandboxServer,
    settings_env: dict[str, str],
    tmp_path: Path,
) -> None:
    connection = await connect(container, sandbox, BOB)
    await age(container, [connection.id], days=8)
    other_worker = Container.build(
        load_settings(_settings_for(settings_env, tmp_path)), audit=MemoryAuditSink()
    )
    try:
        await container.lifecycle.run()

        async def http_like(worker: Container) -> None:
            await worker.tokens.access_token(connection, "corr", force_refresh=True)

        refreshers = [http_like(container if n % 2 else other_worker) for n in range(49)]
        await asyncio.gather(drain(container), *refreshers)
    finally:
        await other_worker.aclose()

    stored = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]
    fresh = Container.build(
        load_settings(_settings_for(settings_env, tmp_path)), audit=MemoryAuditSink()
    )
    try:
        token = await fresh.tokens.access_token(stored.connection, "corr", force_refresh=True)
    finally:
        await fresh.aclose()
    async with httpx.AsyncClient(verify=sandbox.ssl_context()) as client:
        graph = await client.get(
            f"{sandbox.graph_url}/me/messages", headers={"Authorization": f"Bearer {token}"}
        )
    with sandbox.client() as control:
        issued = [
            t["value"] for t in control.get("/_sandbox/tokens").json() if t["kind"] == "refresh"
        ]
    assert graph.status_code == 200
    assert refresh_token_of(stored.cache) in issued
    assert stored.connection.status is ConnectionStatus.ACTIVE


async def test_a_poisoned_batch_is_audited_and_settles_its_run(
    container: Container, sandbox: SandboxServer
) -> None:
    connection = await connect(container, sandbox, ALICE)
    await age(container, [connection.id], days=8)
    started = await container.lifecycle.run()
    item = WorkItem(connection.id, datetime.now(UTC) - timedelta(days=1))
    batch = WorkBatch(started.run_id, 0, (item,))

    await container.lifecycle.poisoned(base64.b64decode(batch.encode()))

    poison = events(container, "lifecycle.poison")
    summary = events(container, "lifecycle.run")
    assert [(e.correlation_id, e.counts) for e in poison] == [(started.run_id, {"items": 1})]
    assert summary[-1].correlation_id == started.run_id
    assert summary[-1].counts["failed"] == 1 and summary[-1].reason == "batch_poisoned"
    # Its connection is hinted again with backoff, so a later run retries it.
    [retry] = [h for h in await hints_for(container, connection.id) if h.kind is DueKind.RETRY]
    assert retry.attempts == 1 and retry.at > datetime.now(UTC) + timedelta(minutes=4)


async def test_storage_down_stops_the_run_cleanly_and_says_why(
    settings_env: dict[str, str], tmp_path: Path, azurite: AzuriteServer
) -> None:
    dead = azurite.connection_string.replace(str(azurite.table_port), "9")
    settings = load_settings(
        {**_settings_for(settings_env, tmp_path), "STORAGE_CONNECTION_STRING": dead}
    )
    built = Container.build(settings, audit=MemoryAuditSink())
    try:
        started = await built.lifecycle.run()
    finally:
        await built.aclose()

    summary = events(built, "lifecycle.run")
    assert started.reason == "storage_unavailable"
    assert [(e.outcome, e.reason) for e in summary] == [("failure", "storage_unavailable")]


async def test_a_recently_used_connection_has_its_access_token_refreshed_before_it_expires(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    # A sandbox whose access tokens live 10 minutes: a caller's use makes the connection
    # warm, and its token then comes due for the timer at once (10 minutes before expiry).
    callback = "http://127.0.0.1:7071/api/auth/callback"
    short = start_sandbox(
        tmp_path, {"SANDBOX_REDIRECT_URIS": callback, "SANDBOX_ACCESS_TOKEN_LIFETIME": "600"}
    )
    settings = _settings_for(app_settings(short, azurite, tmp_path), tmp_path)
    container = Container.build(load_settings(settings), audit=MemoryAuditSink())
    try:
        connection = await connect(container, short, ALICE)
        fresh = await run_once(container)  # connected a moment ago, never used: nothing due

        first = await container.tokens.access_token(connection, "corr")
        await container.tokens.access_token(connection, "corr")  # used again: recorded once
        used = await container.connections._store.get(connection.id)  # type: ignore[attr-defined]
        hints = await hints_for(container, connection.id)
        counts = await run_once(container)
        after = await container.connections._store.open_cache(connection.id)  # type: ignore[attr-defined]
    finally:
        await container.aclose()
        short.stop()

    assert fresh["due"] == 0
    assert used.last_used_at > datetime.now(UTC) - timedelta(minutes=1)
    assert [h.kind for h in hints if h.at == used.due_at] == [DueKind.ACCESS]
    assert counts["due"] == 1 and counts["refreshed"] == 1
    # The stored cache now holds a new access token, so the next caller need not wait.
    access = json.loads(after.cache)["AccessToken"]
    assert first not in [entry["secret"] for entry in access.values()]
