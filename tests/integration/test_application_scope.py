"""The daily reach check of application connections, in process against the real sandbox
(Exchange's scope, the app's client-credentials token) and Azurite tables: a mailbox that
left the app's scope becomes `out_of_scope`, one back in it `active`, each change audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.audit import AuditEvent, MemoryAuditSink
from shared.auth.caller import Caller
from shared.config import load_settings
from shared.connections.models import ConnectionStatus
from shared.container import Container
from tests.support.sandbox import SandboxServer

SUPPORT = "support@contoso.test"
ADMIN = Caller("app", "", "admin-sp", "admin-app", frozenset(), frozenset({"Connections.Admin"}))


@pytest.fixture
async def container(
    settings_env: dict[str, str], tmp_path: Path, sandbox: SandboxServer
) -> AsyncIterator[Container]:
    tag = f"s{tmp_path.name[-8:]}".replace("_", "").lower()
    settings = {**settings_env, "TABLE_PREFIX": tag, "LIFECYCLE_QUEUE": f"{tag}-work"}
    built = Container.build(load_settings(settings), audit=MemoryAuditSink())
    yield built
    await built.aclose()


def events(container: Container, action: str) -> list[AuditEvent]:
    sink = container.audit
    assert isinstance(sink, MemoryAuditSink)
    return [e for e in sink.events if e.action == action]


def set_scope(sandbox: SandboxServer, mailboxes: list[str]) -> None:
    with sandbox.client() as control:
        control.post(
            f"/_sandbox/apps/{sandbox.client_id}/scope", json={"mailboxes": mailboxes}
        ).raise_for_status()


async def test_a_mailbox_that_leaves_the_scope_is_marked_and_one_that_returns_is_active(
    container: Container, sandbox: SandboxServer
) -> None:
    admin = replace(ADMIN, tenant_id=str(container.settings.TENANT_ID))
    created = await container.application_connections.create(
        admin, SUPPORT, display_name=None, allowed=[], correlation_id="c"
    )
    assert created.last_refreshed_at is not None
    set_scope(sandbox, ["bob@contoso.test"])

    same_day = await container.application_connections.check_scope(
        created.last_refreshed_at + timedelta(hours=3)
    )
    next_day = await container.application_connections.check_scope(
        created.last_refreshed_at + timedelta(days=1, minutes=5)
    )
    marked = await container.connections.get(admin, created.id)

    assert same_day == 0  # checked today already: nothing sent to Graph
    assert next_day == 1
    assert marked.status is ConnectionStatus.OUT_OF_SCOPE
    [event] = events(container, "connection.out_of_scope")
    assert (event.connection_id, event.reason, event.mode) == (
        created.id,
        "mailbox_out_of_scope",
        "application",
    )

    set_scope(sandbox, [SUPPORT])
    back = await container.application_connections.check_scope(
        created.last_refreshed_at + timedelta(days=2, minutes=10)
    )
    container.connections.forget(created.id)

    assert back == 1
    assert (await container.connections.get(admin, created.id)).status is ConnectionStatus.ACTIVE
    assert len(events(container, "connection.active")) == 1
