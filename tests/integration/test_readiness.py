"""Readiness against a real Azurite: ready when it is up, 503 naming it when it is down."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import azure.functions as func
import pytest

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.container import Container, use_container
from shared.errors import DependencyUnavailable
from tests.support.app import sample_settings
from tests.support.azurite import AzuriteServer
from tests.support.functions import app_functions
from tests.support.processes import free_port
from tests.support.sandbox import SandboxServer


def settings_for(connection_string: str, key_file: Path, sandbox: SandboxServer) -> dict[str, str]:
    return {
        **sample_settings(),
        "LOCAL_KEY_FILE": str(key_file),
        # The app credential is proven against the sandbox's token endpoint.
        "AUTHORITY_HOST": sandbox.url,
        "CA_BUNDLE": str(sandbox.ca_bundle_path),
        "STORAGE_CONNECTION_STRING": connection_string,
        "STORAGE_TIMEOUT_SECONDS": "2",
    }


@pytest.fixture
async def make_container(
    tmp_path: Path, sandbox: SandboxServer
) -> AsyncIterator[Callable[[str], Container]]:
    built: list[Container] = []

    def make(connection_string: str) -> Container:
        container = Container.build(
            load_settings(settings_for(connection_string, tmp_path / "keys.json", sandbox)),
            audit=MemoryAuditSink(),
        )
        built.append(container)
        return container

    yield make
    use_container(None)
    for container in built:
        await container.aclose()


async def test_ready_when_table_storage_and_keys_are_reachable(
    azurite: AzuriteServer, make_container: Callable[[str], Container]
) -> None:
    container = make_container(azurite.connection_string)

    readiness = await container.health.readiness()

    assert readiness.checks == {"tableStorage": "ok", "keyProvider": "ok", "appCredential": "ok"}


async def test_unreachable_table_storage_is_named(
    make_container: Callable[[str], Container],
) -> None:
    dead = AzuriteServer.__new__(AzuriteServer)
    dead.blob_port = dead.queue_port = dead.table_port = free_port()  # nothing listens there
    container = make_container(dead.connection_string)

    with pytest.raises(DependencyUnavailable) as caught:
        await container.health.readiness()

    assert caught.value.extensions["unavailable"] == ["tableStorage"]


async def test_ready_endpoint_answers_503_problem_json_when_storage_is_down(
    make_container: Callable[[str], Container],
) -> None:
    dead = AzuriteServer.__new__(AzuriteServer)
    dead.blob_port = dead.queue_port = dead.table_port = free_port()
    use_container(make_container(dead.connection_string))
    handler = app_functions()["health_ready"].get_user_function()

    response = await handler(func.HttpRequest("GET", "http://127.0.0.1/api/health/ready", body=b""))

    body = json.loads(response.get_body())
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert body["code"] == "dependency_unavailable"
    assert body["unavailable"] == ["tableStorage"]
