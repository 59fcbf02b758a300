"""Fixtures for the dev host tests: dev hosts on free loopback ports, and Azurite for queues."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.server import DevHost
from tests.devhost import sample_app

MASTER_KEY = "test-master-key"
FUNCTION_KEY = "test-function-key"
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def write_host_json(root: Path, route_prefix: str | None = "api", queues: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    http = "" if route_prefix is None else f'"http": {{"routePrefix": "{route_prefix}"}}'
    sections = ", ".join(part for part in (http, queues) if part)
    (root / "host.json").write_text(f'{{"version": "2.0", "extensions": {{{sections}}}}}')
    return root


def base_env(**extra: str) -> dict[str, str]:
    return {
        "SCHEDULE_SETTING": "0 0 0 1 1 *",
        "WORK_QUEUE": "devhost-work",
        "DEVHOST_MASTER_KEY": MASTER_KEY,
        "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
        **extra,
    }


@pytest.fixture(autouse=True)
def clean_recorder() -> Iterator[None]:
    sample_app.recorder.clear()
    yield
    sample_app.recorder.clear()


@pytest.fixture(scope="module")
def http_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    """A dev host for the sample app, HTTP and admin API only, routePrefix 'api'."""
    root = write_host_json(tmp_path_factory.mktemp("devhost-http"))
    host = DevHost(
        sample_app.app, root=root, port=0, enable_timers=False, enable_queues=False, env=base_env()
    )
    with host.running_in_thread():
        yield host


@pytest.fixture
def client(http_host: DevHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_host.base_url, timeout=10) as http_client:
        yield http_client


@pytest.fixture
def work_queue_name() -> str:
    """A fresh queue name per test, so tests never see each other's messages."""
    return f"devhost-work-{uuid.uuid4().hex[:12]}"
