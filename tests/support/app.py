"""The app under test: its settings for a test session, and the app served by the dev host."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.azurite import AzuriteServer
from tests.support.processes import ROOT, Process, free_port, python, wait_until
from tests.support.sandbox import SandboxServer

FUNCTION_KEY = "test-function-key-0123456789"
MASTER_KEY = "test-master-key-0123456789"
# Tests start timer runs themselves (admin API): a schedule firing in the middle of a test
# would do work that test did not cause.
NEVER = "0 0 0 1 1 *"


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
        "LIFECYCLE_SCHEDULE": NEVER,
        "RECONCILE_SCHEDULE": NEVER,
        "POLL_SCHEDULE": NEVER,
    }


@dataclass
class AppServer:
    process: Process
    port: int
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.process.stop()

    def wait_idle(self, timeout: float = 120) -> None:
        """Until nothing this app was asked to do is still going: no admin-API run (a timer
        started by a test), no queue message being worked on, and its queues empty (a
        message being worked on stays in its queue until done, so a job that queues another
        never leaves both at zero). Seen twice in a row, so that a job queued by a request
        that was just answered is seen too."""
        quiet = 0

        def idle() -> bool:
            nonlocal quiet
            quiet = quiet + 1 if self._idle_now() else 0
            return quiet >= 2

        wait_until(idle, timeout, "the app's background work to finish")

    def _idle_now(self) -> bool:
        with self.client() as client:
            running = client.get("/admin/host/invocations").json()
        if running["admin"] or running["queue"]:
            return False
        return all(self._queue_length(q) == 0 for q in self._queues())

    def _queues(self) -> list[str]:
        keys = ("LIFECYCLE_QUEUE", "NOTIFICATIONS_QUEUE", "EXPORTS_QUEUE")
        names = [self.settings.get(k) for k in keys]
        return [n for n in names if n]

    def _queue_length(self, name: str) -> int:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.queue import QueueClient

        with QueueClient.from_connection_string(self.settings["AzureWebJobsStorage"], name) as q:
            try:
                return int(q.get_queue_properties().approximate_message_count or 0)
            except ResourceNotFoundError:
                return 0


def isolated_settings(prefix: str, tmp: Path) -> dict[str, str]:
    """The settings that keep one test module's app apart from every other's on the shared
    Azurite and disk: its own tables and queues (named by a tag from its temp directory),
    audit log and key file."""
    tag = prefix + hashlib.sha256(str(tmp).encode()).hexdigest()[:6]
    return {
        "TABLE_PREFIX": tag,
        "LIFECYCLE_QUEUE": f"{tag}-work",
        "NOTIFICATIONS_QUEUE": f"{tag}-notify",
        "AUDIT_LOG_PATH": str(tmp / "audit.jsonl"),
        "LOCAL_KEY_FILE": str(tmp / "dev-keys.json"),
    }


def webhook_settings(port: int) -> dict[str, str]:
    """An app that Graph's notifications reach (PUBLIC_BASE_URL is its own port) and that may
    deliver to a loopback receiver."""
    return {
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ALLOW_HTTP_LOOPBACK_WEBHOOKS": "true",
    }


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
    server = AppServer(process, port, settings)

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
