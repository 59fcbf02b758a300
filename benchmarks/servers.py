"""The servers a benchmark runs the app against: the sandbox and Azurite on free loopback
ports in a fresh directory, with the app's settings pointed at them (as the tests do)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.app import app_settings
from tests.support.azurite import AzuriteServer, start_azurite
from tests.support.processes import free_port
from tests.support.sandbox import SandboxServer, start_sandbox


@dataclass(frozen=True)
class LocalServers:
    sandbox: SandboxServer
    azurite: AzuriteServer
    work: Path
    app_port: int
    settings: dict[str, str]  # local.settings.sample.json pointed at these servers


@contextmanager
def local_servers(prefix: str) -> Iterator[LocalServers]:
    """Start both (the sandbox accepting the app's callback on `app_port`), stop both."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    app_port = free_port()
    sandbox = start_sandbox(
        work, {"SANDBOX_REDIRECT_URIS": f"http://127.0.0.1:{app_port}/api/auth/callback"}
    )
    try:
        azurite = start_azurite(work)
        try:
            settings = app_settings(sandbox, azurite, work, app_port)
            yield LocalServers(sandbox, azurite, work, app_port, settings)
        finally:
            azurite.stop()
    finally:
        sandbox.stop()
