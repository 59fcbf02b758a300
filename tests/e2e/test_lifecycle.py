"""The token lifecycle through the dev host: the timer run with `POST /admin/functions/
lifecycle_timer`, its batches worked by the queue trigger over Azurite, the poison path, and
an Azurite restart in the middle of a run. Outcomes are read from stored state, the
sandbox's token log and the app's audit log."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient, TableEntity
from azure.storage.queue import QueueClient

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.container import Container
from shared.store.due import Hint
from tests.support.app import MASTER_KEY, AppServer, app_settings, start_app
from tests.support.azurite import AzuriteServer
from tests.support.browser import connect, connect_in_process
from tests.support.lifecycle import age, hints_for, in_worker
from tests.support.persistent_azurite import PersistentAzurite
from tests.support.processes import free_port, wait_until
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
NEVER = "0 0 0 1 1 *"  # the schedule never fires during a test: runs are started by hand


class LifecycleApp:
    """A private app with its own tables and queue, and readers for what it stored."""

    def __init__(self, server: AppServer, settings: dict[str, str]) -> None:
        self.server = server
        self.settings = settings
        self.audit_path = Path(settings["AUDIT_LOG_PATH"])
        self.prefix = settings["TABLE_PREFIX"]

    def table(self, short: str) -> TableClient:
        return TableClient.from_connection_string(
            self.settings["STORAGE_CONNECTION_STRING"], f"{self.prefix}{short}"
        )

    def audit(self, action: str) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        lines = self.audit_path.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["action"] == action]

    def run_timer(self, timeout: float = 30) -> dict[str, Any]:
        """Start the timer function now and wait for its run's summary event."""
        seen = len(self.audit("lifecycle.run"))
        with self.server.client() as client:
            response = client.post(
                "/admin/functions/lifecycle_timer",
                json={"input": ""},
                headers={"x-functions-key": MASTER_KEY},
            )
        assert response.status_code == 202, response.text
        wait_until(lambda: len(self.audit("lifecycle.run")) > seen, timeout, "lifecycle.run")
        return self.audit("lifecycle.run")[seen]

    def row(self, connection_id: str) -> TableEntity:
        with self.table("connections") as table:
            return table.get_entity(connection_id, connection_id)

    def age(self, connection_id: str, days: float) -> None:
        """Leave the state `days` without a refresh leave behind (tests/support/lifecycle)."""
        in_worker(self.settings, lambda worker: age(worker, [connection_id], days))

    def hints(self, connection_id: str) -> list[Hint]:
        return in_worker(self.settings, lambda worker: hints_for(worker, connection_id))


def lifecycle_settings(base: dict[str, str], tmp_path: Path, **overrides: str) -> dict[str, str]:
    tag = f"e{tmp_path.name[-8:]}".replace("_", "").lower()
    return {
        **base,
        "TABLE_PREFIX": tag,
        "LIFECYCLE_QUEUE": f"{tag}-work",
        "LIFECYCLE_SCHEDULE": NEVER,
        "AUDIT_LOG_PATH": str(tmp_path / "audit.jsonl"),
        "LOCAL_KEY_FILE": str(tmp_path / "dev-keys.json"),
        **overrides,
    }


@pytest.fixture
def lifecycle_app(
    sandbox: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path: Path,
) -> Iterator[LifecycleApp]:
    settings = lifecycle_settings(
        app_settings(sandbox, azurite, servers_dir, spare_app_port), tmp_path
    )
    server = start_app(settings, tmp_path, spare_app_port)
    try:
        yield LifecycleApp(server, settings)
    finally:
        server.stop()


def refresh_tokens(sandbox: SandboxServer, upn: str) -> list[str]:
    with sandbox.client() as control:
        issued = control.get("/_sandbox/tokens").json()
    return [t["value"] for t in issued if t["kind"] == "refresh" and t.get("upn") == upn]


def token_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        log = control.get("/_sandbox/requests").json()
    return [r for r in log if r["path"].endswith("/oauth2/v2.0/token")]


def test_a_due_connection_is_refreshed_and_an_idle_but_fresh_one_is_untouched(
    lifecycle_app: LifecycleApp, sandbox: SandboxServer
) -> None:
    due_id = connect(lifecycle_app.server, sandbox, ALICE)
    fresh_id = connect(lifecycle_app.server, sandbox, BOB)
    lifecycle_app.age(due_id, days=8)
    due_before, fresh_before = lifecycle_app.row(due_id), lifecycle_app.row(fresh_id)
    alice_tokens, bob_tokens = refresh_tokens(sandbox, ALICE), refresh_tokens(sandbox, BOB)

    summary = lifecycle_app.run_timer()

    due_after, fresh_after = lifecycle_app.row(due_id), lifecycle_app.row(fresh_id)
    assert summary["outcome"] == "success"
    assert summary["counts"]["due"] == 1 and summary["counts"]["refreshed"] == 1
    # One new refresh token for Alice (a real redemption), none for Bob.
    assert len(refresh_tokens(sandbox, ALICE)) == len(alice_tokens) + 1
    assert refresh_tokens(sandbox, BOB) == bob_tokens
    assert due_after["Grant0"] != due_before["Grant0"]  # the sealed cache was rewritten
    assert due_after["LastRefreshedAt"] > datetime.now(UTC) - timedelta(minutes=1)
    assert fresh_after.metadata["etag"] == fresh_before.metadata["etag"]


def test_a_revoked_grant_is_marked_reauth_required_after_one_run_and_not_retried(
    lifecycle_app: LifecycleApp, sandbox: SandboxServer
) -> None:
    connection_id = connect(lifecycle_app.server, sandbox, ALICE)
    lifecycle_app.age(connection_id, days=8)
    with sandbox.client() as control:
        control.post(
            "/_sandbox/identity/refresh-error",
            json={"error": "invalid_grant", "code": "AADSTS50173", "upn": ALICE},
        ).raise_for_status()

    first = lifecycle_app.run_timer()
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()
    second = lifecycle_app.run_timer()

    assert first["counts"]["reauth_required"] == 1
    assert lifecycle_app.row(connection_id)["Status"] == "reauth_required"
    assert second["counts"]["due"] == 0
    assert token_requests(sandbox) == []  # not retried
    assert [e["reason"] for e in lifecycle_app.audit("connection.reauth_required")] == [
        "invalid_grant"
    ]


def test_a_batch_that_keeps_failing_lands_in_the_poison_queue_with_an_audit_event(
    lifecycle_app: LifecycleApp,
) -> None:
    settings = lifecycle_app.settings
    queue = QueueClient.from_connection_string(
        settings["AzureWebJobsStorage"], settings["LIFECYCLE_QUEUE"]
    )
    with queue:
        queue.send_message(base64.b64encode(b'{"v": 99}').decode())

    wait_until(lambda: lifecycle_app.audit("lifecycle.poison"), 60, "lifecycle.poison")

    [event] = lifecycle_app.audit("lifecycle.poison")
    assert event["outcome"] == "failure" and event["reason"] == "malformed:unknown_version"


def test_fifty_concurrent_refreshers_lose_no_update_and_the_grant_still_works(
    lifecycle_app: LifecycleApp, sandbox: SandboxServer
) -> None:
    connection_id = connect(lifecycle_app.server, sandbox, ALICE)
    lifecycle_app.age(connection_id, days=8)
    bearer = {"Authorization": f"Bearer {sandbox.user_token(ALICE)}"}

    def http_request(_: int) -> int:
        with lifecycle_app.server.client() as client:
            return client.get(
                f"/api/connections/{connection_id}/messages", headers=bearer
            ).status_code

    async def second_worker(count: int) -> None:
        # Another worker process: its own container, token service and key ring.
        worker = Container.build(load_settings(lifecycle_app.settings), audit=MemoryAuditSink())
        try:
            connection = await worker.connections._store.get(connection_id)  # type: ignore[attr-defined]
            await asyncio.gather(
                *(
                    worker.tokens.access_token(connection, "corr", force_refresh=True)
                    for _ in range(count)
                )
            )
        finally:
            await worker.aclose()

    with ThreadPoolExecutor(max_workers=26) as pool:
        summary = pool.submit(lifecycle_app.run_timer)
        answers = list(pool.map(http_request, range(24)))
        asyncio.run(second_worker(25))
        run = summary.result()

    stored = lifecycle_app.row(connection_id)
    token = asyncio.run(_fresh_token(lifecycle_app, connection_id))
    with httpx.Client(verify=sandbox.ssl_context()) as client:
        graph = client.get(
            f"{sandbox.graph_url}/me/messages", headers={"Authorization": f"Bearer {token}"}
        )
    assert answers == [200] * 24
    assert run["counts"]["refreshed"] + run["counts"]["skipped"] == 1
    assert run["counts"]["failed"] == 0
    assert stored["Status"] == "active"
    assert graph.status_code == 200  # the stored refresh token still redeems


async def _fresh_token(app: LifecycleApp, connection_id: str) -> str:
    """Redeem the stored grant from a brand-new worker (nothing cached anywhere)."""
    worker = Container.build(load_settings(app.settings), audit=MemoryAuditSink())
    try:
        connection = await worker.connections._store.get(connection_id)  # type: ignore[attr-defined]
        return await worker.tokens.access_token(connection, "corr", force_refresh=True)
    finally:
        await worker.aclose()


def test_azurite_restarted_mid_run_the_next_run_completes_and_nothing_is_corrupted(
    sandbox: SandboxServer, servers_dir: Path, spare_app_port: int, tmp_path: Path
) -> None:
    storage = PersistentAzurite(tmp_path)
    base = app_settings(sandbox, storage, servers_dir, spare_app_port)  # type: ignore[arg-type]
    settings = lifecycle_settings(base, tmp_path)
    server = start_app(settings, tmp_path, free_port())
    app = LifecycleApp(server, settings)
    try:
        connection_id = asyncio.run(_connect_in_process(settings, sandbox, ALICE))
        app.age(connection_id, days=8)
        grant_before = app.row(connection_id)["Grant0"]
        with sandbox.client() as control:
            control.post("/_sandbox/latency", json={"identityMs": 1500}).raise_for_status()
            control.delete("/_sandbox/requests").raise_for_status()
        with server.client() as client:
            client.post(
                "/admin/functions/lifecycle_timer", headers={"x-functions-key": MASTER_KEY}
            ).raise_for_status()
        # The batch is in the middle of its refresh (waiting on the identity provider) ...
        wait_until(lambda: token_requests(sandbox), 30, "the batch's token request")

        # ... when storage goes away; it comes back once the batch has failed.
        storage.restart_after(
            lambda: wait_until(
                lambda: "lifecycle_batch failed" in server.process.output(None),
                30,
                "the batch to fail",
            )
        )
        with sandbox.client() as control:
            control.post("/_sandbox/latency", json={}).raise_for_status()
        summary = app.run_timer()

        with server.client() as client:
            assert client.get("/api/health").status_code == 200
        row = app.row(connection_id)
        hints = app.hints(connection_id)
        token = asyncio.run(_fresh_token(app, connection_id))
    finally:
        server.stop()
        storage.stop()
    assert summary["outcome"] == "success"
    assert row["Status"] == "active"
    # Either the interrupted batch's write never landed (the old grant is intact) or it
    # landed whole; in both cases the stored grant opens and still redeems.
    assert row["Grant0"] == grant_before or row["LastRefreshedAt"] > datetime.now(UTC) - timedelta(
        minutes=2
    )
    assert token
    # Nothing is lost. Depending on how long storage stayed away, the interrupted batch was
    # retried by the host (the row points at that batch's hint), is still on the queue, or
    # was poisoned and hinted again with backoff; in every case a hint at or after the row's
    # pointer exists (the worker drops only hints earlier than the pointer), so a run will
    # reach the connection. The batch's own hint, written before its refresh, is one of them.
    pointer = row["DueAt"]
    assert [h for h in hints if h.at >= pointer - timedelta(seconds=1)]
    assert [h for h in hints if h.at > datetime.now(UTC) + timedelta(days=6)]
    assert summary["counts"]["due"] == 0 and summary["counts"]["failed"] == 0


async def _connect_in_process(settings: dict[str, str], sandbox: SandboxServer, upn: str) -> str:
    """The browser flow without a browser (the app's callback port is not registered)."""
    worker = Container.build(load_settings(settings), audit=MemoryAuditSink())
    try:
        return (await connect_in_process(worker, upn, sandbox.ssl_context())).id
    finally:
        await worker.aclose()
