"""Each app credential mode over real HTTP: the app started with that mode's settings
connects a mailbox and refreshes its grant against the sandbox (dev host + sandbox + Azurite),
and readiness names the credential when the federated record does not match."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import FUNCTION_KEY, AppServer, start_app
from tests.support.browser import browser
from tests.support.callers import Caller
from tests.support.certificates import self_signed
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"


def _control(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with sandbox.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _refresh_tokens(sandbox: SandboxServer, upn: str) -> int:
    with sandbox.client() as client:
        issued = client.get("/_sandbox/tokens").json()
    return sum(1 for t in issued if t["kind"] == "refresh" and t.get("upn") == upn)


@pytest.fixture
def private_app(
    settings_env: dict[str, str], servers_dir: Path, spare_app_port: int
) -> Iterator[Any]:
    """Start the app with extra settings on the spare port (its callback is registered)."""
    started: list[AppServer] = []

    def start(**settings: str) -> AppServer:
        app = start_app(
            {
                **settings_env,
                "REDIRECT_URI": f"http://127.0.0.1:{spare_app_port}/api/auth/callback",
                "RETURN_TO_ALLOWLIST": f"http://127.0.0.1:{spare_app_port}/",
                # No secret anywhere: the mode's own credential must do the work.
                "CLIENT_SECRET": "",
                **settings,
            },
            servers_dir,
            spare_app_port,
        )
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()


def _federation(sandbox: SandboxServer, *, subject: str | None = None) -> dict[str, str]:
    identity = _control(sandbox, "/_sandbox/managed-identity", {})
    _control(
        sandbox,
        "/_sandbox/identity/federated-credentials",
        {"issuer": identity["issuer"], "subject": subject or identity["subject"]},
    )
    return {
        "APP_CREDENTIAL": "managed_identity_federation",
        "MANAGED_IDENTITY_CLIENT_ID": identity["clientId"],
        # What the Functions host provides to a worker with a managed identity.
        "IDENTITY_ENDPOINT": identity["identityEndpoint"],
        "IDENTITY_HEADER": identity["identityHeader"],
    }


def _certificate(sandbox: SandboxServer, directory: Path) -> dict[str, str]:
    private_key, certificate = self_signed()
    _control(sandbox, "/_sandbox/identity/certificates", {"certificate": certificate})
    pem = directory / "app-credential.pem"
    pem.write_text(private_key + certificate)
    pem.chmod(0o600)
    return {"APP_CREDENTIAL": "certificate", "LOCAL_CERTIFICATE_FILE": str(pem)}


def _ready(app: AppServer) -> httpx.Response:
    with app.client() as client:
        return client.get("/api/health/ready", headers={"x-functions-key": FUNCTION_KEY})


def _connect_read_and_refresh(app: AppServer, sandbox: SandboxServer) -> None:
    caller = Caller(app, sandbox, ALICE)
    first = caller.get("/messages", top=1)
    before = _refresh_tokens(sandbox, ALICE)
    # Graph refuses the cached access token once: the app redeems the refresh token (with
    # its credential) and retries.
    _control(
        sandbox,
        "/_sandbox/faults",
        {"pathRegex": "^/v1.0/me/mailFolders/inbox/messages", "status": 401, "times": 1},
    )
    second = caller.get("/messages", top=1)

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert _refresh_tokens(sandbox, ALICE) == before + 1


def test_federation_mode_connects_and_refreshes(private_app: Any, sandbox: SandboxServer) -> None:
    app = private_app(**_federation(sandbox))

    ready = _ready(app)
    _connect_read_and_refresh(app, sandbox)

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["appCredential"] == "ok"


def test_certificate_mode_connects_and_refreshes(
    private_app: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    app = private_app(**_certificate(sandbox, tmp_path))

    ready = _ready(app)
    _connect_read_and_refresh(app, sandbox)

    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["appCredential"] == "ok"


def test_secret_mode_connects_and_refreshes(app_server: AppServer, sandbox: SandboxServer) -> None:
    ready = _ready(app_server)
    _connect_read_and_refresh(app_server, sandbox)

    assert ready.json()["checks"]["appCredential"] == "ok"


def test_a_federated_record_with_the_wrong_subject_fails_readiness_with_its_code(
    private_app: Any, sandbox: SandboxServer
) -> None:
    app = private_app(**_federation(sandbox, subject="00000000-0000-0000-0000-0000000000ff"))

    ready = _ready(app)
    with browser(sandbox) as person:
        sign_in = person.get(
            f"{app.url}/api/auth/login",
            params={"loginHint": ALICE},
            headers={"Accept": "application/json"},
        )

    assert ready.status_code == 503
    assert ready.json()["code"] == "dependency_unavailable"
    assert ready.json()["unavailable"] == ["appCredential"]
    assert ready.json()["reasons"] == {"appCredential": "AADSTS700213"}
    # A sign-in meanwhile is refused clearly (the code cannot be redeemed), never a 500.
    assert sign_in.status_code == 400, sign_in.text
    assert sign_in.json()["code"] == "sign_in_failed"


def test_a_federated_record_with_the_wrong_audience_fails_readiness_with_its_code(
    private_app: Any, sandbox: SandboxServer
) -> None:
    identity = _control(sandbox, "/_sandbox/managed-identity", {})
    _control(
        sandbox,
        "/_sandbox/identity/federated-credentials",
        {
            "issuer": identity["issuer"],
            "subject": identity["subject"],
            "audiences": ["api://SomeOtherExchange"],
        },
    )
    app = private_app(
        APP_CREDENTIAL="managed_identity_federation",
        MANAGED_IDENTITY_CLIENT_ID=identity["clientId"],
        IDENTITY_ENDPOINT=identity["identityEndpoint"],
        IDENTITY_HEADER=identity["identityHeader"],
    )

    ready = _ready(app)

    assert ready.status_code == 503
    assert ready.json()["reasons"] == {"appCredential": "AADSTS700212"}
