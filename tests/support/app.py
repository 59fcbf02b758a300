"""The app under test: its settings for a test session, and the app served by the dev host."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.azurite import AzuriteServer
from tests.support.processes import ROOT, Process, free_port, python, wait_until
from tests.support.sandbox import SandboxServer

FUNCTION_KEY = "test-function-key-0123456789"
MASTER_KEY = "test-master-key-0123456789"


def sample_settings() -> dict[str, str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    return {k: str(v) for k, v in values.items()}


def app_settings(
    sandbox: SandboxServer, azurite: AzuriteServer, tmp_dir: Path, app_port: int = 7071
) -> dict[str, str]:
    """local.settings.sample.json, pointed at this session's servers."""
    return {
        **sample_settings(),
        "AUTHORITY_HOST": sandbox.url,
        "GRAPH_BASE_URL": sandbox.graph_url,
        "CA_BUNDLE": str(sandbox.ca_bundle_path),
        "REDIRECT_URI": f"http://127.0.0.1:{app_port}/api/auth/callback",
        "RETURN_TO_ALLOWLIST": f"http://127.0.0.1:{app_port}/",
        "AzureWebJobsStorage": azurite.connection_string,
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AUDIT_LOG_PATH": str(tmp_dir / "audit.jsonl"),
        "LOCAL_KEY_FILE": str(tmp_dir / "dev-keys.json"),
        # Set, as in production (the sample leaves it empty: a key per worker process), so
        # that the secrecy sweep knows the cursor signing key and looks for it.
        "CURSOR_SECRET": base64.b64encode(os.urandom(32)).decode(),
    }


@dataclass
class AppServer:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.process.stop()


def start_app(settings: dict[str, str], tmp_dir: Path, port: int | None = None) -> AppServer:
    """`function_app` under the dev host on a free loopback port, with known host keys."""
    port = port or free_port()
    process = Process(
        "devhost",
        [python(), "-m", "devhost", "--port", str(port)],
        {
            **settings,
            "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
            "DEVHOST_MASTER_KEY": MASTER_KEY,
        },
        tmp_dir / f"devhost-{port}.log",
    )
    server = AppServer(process, port)

    def ready() -> bool:
        process.ensure_running()
        try:
            with server.client() as client:
                return client.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 60, "the app (dev host)")
    except Exception:
        process.stop()
        raise
    return server
