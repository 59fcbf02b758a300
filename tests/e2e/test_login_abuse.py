"""Anonymous sign-in requests cannot grow our state without bound: `/api/auth/login` stores
nothing (the flow travels sealed in the browser's cookie), and the audit events that anyone
can cause are held to a per-worker budget. Over real HTTP: dev host + sandbox + Azurite."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.data.tables import TableServiceClient

from shared.audit.budget import ANONYMOUS_EVENTS_PER_MINUTE
from tests.support.app import AppServer, app_settings, isolated_settings, start_app
from tests.support.azurite import AzuriteServer
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
LOGINS = 2 * ANONYMOUS_EVENTS_PER_MINUTE + 40
FORGED_CALLBACKS = 40


@pytest.fixture(scope="module")
def private_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """An app of its own (tables, audit file, worker), so that its budget and its tables
    hold this test's traffic only. No sign-in completes here, so any port will do."""
    tmp = tmp_path_factory.mktemp("abuse")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir),
        **isolated_settings("abu", tmp),
        "LIFECYCLE_SCHEDULE": "0 0 0 1 1 *",
    }
    server = start_app(settings, tmp)
    try:
        yield server, settings
    finally:
        server.stop()


def rows_under(azurite: AzuriteServer, table_prefix: str) -> dict[str, int]:
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        return {
            table.name: sum(1 for _ in service.get_table_client(table.name).list_entities())
            for table in service.list_tables()
            if table.name.startswith(table_prefix)
        }


def test_anonymous_logins_store_nothing_and_their_audit_is_budgeted(
    private_app: tuple[AppServer, dict[str, str]], azurite: AzuriteServer
) -> None:
    app, settings = private_app
    started = time.monotonic()
    with httpx.Client(base_url=f"{app.url}/api", timeout=30) as anonymous:
        logins = [
            anonymous.get("/auth/login", params={"loginHint": ALICE}).status_code
            for _ in range(LOGINS)
        ]
        callbacks = [
            anonymous.get(
                "/auth/callback",
                params={"state": f"forged-{n}", "code": "forged-code"},
                headers={"Accept": "application/json"},
            ).status_code
            for n in range(FORGED_CALLBACKS)
        ]
    minutes = int((time.monotonic() - started) // 60) + 1
    audit = [json.loads(line) for line in Path(settings["AUDIT_LOG_PATH"]).read_text().splitlines()]
    actions = Counter(record["action"] for record in audit)

    assert set(logins) == {302} and set(callbacks) == {400}
    assert sum(rows_under(azurite, settings["TABLE_PREFIX"]).values()) == 0
    anonymous_events = actions["auth.login_started"] + actions["auth.callback"]
    # At most one budget per one-minute window the run touched (a run may straddle two).
    assert anonymous_events <= (minutes + 1) * ANONYMOUS_EVENTS_PER_MINUTE
    assert anonymous_events < LOGINS + FORGED_CALLBACKS
    assert actions["audit.budget_exceeded"] >= 1
