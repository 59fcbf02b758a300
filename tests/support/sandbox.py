"""A running sandbox (sandbox/) for tests: its URLs, its CA, and a client for its control API."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sandbox.directory import APP_ID_URI, CLIENT_ID, CLIENT_SECRET, TENANT_ID
from sandbox.settings import SandboxSettings
from tests.support.processes import Process, free_port, python, wait_until


@dataclass
class SandboxServer:
    process: Process
    port: int
    state_dir: Path

    tenant_id: str = TENANT_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    app_id_uri: str = APP_ID_URI

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant_id}"

    @property
    def graph_url(self) -> str:
        return f"{self.url}/v1.0"

    @property
    def ca_path(self) -> Path:
        return SandboxSettings(port=self.port, state_dir=self.state_dir).ca_path

    @property
    def ca_bundle_path(self) -> Path:
        return SandboxSettings(port=self.port, state_dir=self.state_dir).ca_bundle_path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=30, **kwargs)

    def reset(self) -> None:
        with self.client() as client:
            client.post("/_sandbox/reset").raise_for_status()

    def user_token(self, upn: str, scopes: list[str] | None = None) -> str:
        """A caller's access token for this API (audience = the API), minted by the sandbox."""
        body: dict[str, Any] = {"user": upn}
        if scopes is not None:
            body["scopes"] = scopes
        with self.client() as client:
            response = client.post("/_sandbox/token", json=body)
            response.raise_for_status()
            return str(response.json()["access_token"])

    def app_token(self, roles: list[str], client_id: str | None = None) -> str:
        """An application's token (another application than the default with `client_id`)."""
        body: dict[str, Any] = {"app": True, "roles": roles}
        if client_id is not None:
            body["clientId"] = client_id
        with self.client() as client:
            response = client.post("/_sandbox/token", json=body)
            response.raise_for_status()
            return str(response.json()["access_token"])

    def stop(self) -> None:
        self.process.stop()


def start_sandbox(tmp_dir: Path, env: dict[str, str] | None = None) -> SandboxServer:
    port = free_port()
    state_dir = tmp_dir / f"sandbox-{port}"
    process = Process(
        "sandbox",
        [python(), "-m", "sandbox"],
        {"SANDBOX_PORT": str(port), "SANDBOX_STATE_DIR": str(state_dir), **(env or {})},
        tmp_dir / f"sandbox-{port}.log",
    )
    server = SandboxServer(process=process, port=port, state_dir=state_dir)

    def ready() -> bool:
        process.ensure_running()
        if not server.ca_path.exists():
            return False
        try:
            with server.client() as client:
                return client.get("/_sandbox/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 30, "sandbox")
    except Exception:
        process.stop()
        raise
    return server
