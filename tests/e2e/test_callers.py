"""Callers over real HTTP: sandbox-minted tokens against `GET /api/me` under the dev host."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from sandbox.directory import GRAPH_RESOURCE
from tests.support.app import FUNCTION_KEY, AppServer, start_app
from tests.support.sandbox import SandboxServer, start_sandbox

PROBLEM_JSON = "application/problem+json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def oid_of(token: str) -> str:
    """The `oid` the sandbox put into a token (read without verification: test side only)."""
    return str(jwt.decode(token, options={"verify_signature": False})["oid"])


def graph_app_token(sandbox: SandboxServer) -> str:
    """A client-credentials token for Microsoft Graph, as the app would get for itself."""
    with sandbox.client() as client:
        response = client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
                "scope": f"{GRAPH_RESOURCE}/.default",
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def expired_user_token(sandbox: SandboxServer) -> str:
    """A token that expired long ago (beyond any skew): minted on a clock set back."""
    with sandbox.client() as client:
        client.post("/_sandbox/clock", json={"offsetSeconds": -3600}).raise_for_status()
        try:
            response = client.post(
                "/_sandbox/token", json={"user": "alice@contoso.test", "lifetimeSeconds": 60}
            )
            response.raise_for_status()
        finally:
            client.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()
    return str(response.json()["access_token"])


def audit_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["code"] == "unauthorized"


# --- the session's app --------------------------------------------------------------


def test_me_without_a_token_is_401_with_a_bare_bearer_challenge(app_server: AppServer) -> None:
    with app_server.client() as client:
        response = client.get("/api/me")

    assert_unauthorized(response)
    assert response.headers["www-authenticate"] == "Bearer"


def test_me_with_garbage_is_401_invalid_token(app_server: AppServer) -> None:
    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer("garbage"))

    assert_unauthorized(response)
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_me_with_an_expired_sandbox_token_is_401(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    token = expired_user_token(sandbox)

    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(token))

    assert_unauthorized(response)
    assert response.json()["detail"] == "The token has expired."


def test_me_with_a_graph_token_names_the_mistake(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(graph_app_token(sandbox)))

    assert_unauthorized(response)
    assert "Microsoft Graph" in response.json()["detail"]


def test_me_with_alices_token_answers_her_identity(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    token = sandbox.user_token("alice@contoso.test")

    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "user"
    assert body["tenantId"] == sandbox.tenant_id
    assert body["oid"] == oid_of(token)
    assert body["scopes"] == ["access_as_user"]
    assert body["roles"] == []


def test_me_with_an_app_token_answers_the_apps_identity(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    token = sandbox.app_token(["Connections.Read.All"])

    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["kind"] == "app"
    assert response.json()["roles"] == ["Connections.Read.All"]


def test_an_app_token_without_an_api_role_is_403(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(sandbox.app_token([])))

    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_a_user_token_without_the_api_scope_is_401(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    token = sandbox.user_token("alice@contoso.test", scopes=["User.Read"])

    with app_server.client() as client:
        response = client.get("/api/me", headers=bearer(token))

    assert_unauthorized(response)


def test_a_denial_is_audited_with_its_reason_and_without_the_token(
    app_server: AppServer, sandbox: SandboxServer, settings_env: dict[str, str]
) -> None:
    token = expired_user_token(sandbox)
    correlation_id = f"e2e-denied-{uuid.uuid4()}"

    with app_server.client() as client:
        response = client.get(
            "/api/me", headers={**bearer(token), "x-correlation-id": correlation_id}
        )

    assert response.status_code == 401
    audit_log = Path(settings_env["AUDIT_LOG_PATH"])
    events = [e for e in audit_records(audit_log) if e.get("correlation_id") == correlation_id]
    assert len(events) == 1
    assert events[0]["action"] == "auth.denied"
    assert events[0]["outcome"] == "denied"
    assert events[0]["reason"] == "token_expired"
    assert events[0]["caller_oid"] == oid_of(token)  # the signature verified: genuine ids
    log = audit_log.read_text()
    assert token not in log
    assert token.split(".")[1] not in log  # not even the payload


def test_every_bearer_route_answers_401_problem_json_without_a_token(
    app_server: AppServer,
) -> None:
    with app_server.client() as client:
        document = client.get("/api/openapi.json").json()
        bearer_operations = [
            (method.upper(), path)
            for path, item in document["paths"].items()
            for method, operation in item.items()
            if {"bearer": []} in operation.get("security", [])
        ]
        answers = {
            (method, path): client.request(method, "/api" + re.sub(r"{[^}]+}", "x", path))
            for method, path in bearer_operations
        }

    assert ("GET", "/me") in answers
    for operation, response in answers.items():
        assert response.status_code == 401, operation
        assert response.headers["content-type"].startswith(PROBLEM_JSON), operation


# --- private apps: key rollover, function keys --------------------------------------


@pytest.fixture(scope="module")
def rolling_sandbox(servers_dir: Path) -> Iterator[SandboxServer]:
    """A sandbox of its own: rolling the session sandbox's keys would leave other tests'
    app with an unknown kid for a whole cooldown."""
    server = start_sandbox(servers_dir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rolling_app(
    rolling_sandbox: SandboxServer, settings_env: dict[str, str], servers_dir: Path
) -> Iterator[AppServer]:
    server = start_app(
        {
            **settings_env,
            "AUTHORITY_HOST": rolling_sandbox.url,
            "GRAPH_BASE_URL": rolling_sandbox.graph_url,
            "CA_BUNDLE": str(rolling_sandbox.ca_bundle_path),
            "JWKS_REFETCH_COOLDOWN_SECONDS": "0",
            "AUDIT_LOG_PATH": str(servers_dir / "rolling-audit.jsonl"),
        },
        servers_dir,
    )
    yield server
    server.stop()


def test_a_token_signed_after_a_key_roll_is_accepted(
    rolling_app: AppServer, rolling_sandbox: SandboxServer
) -> None:
    before = rolling_sandbox.user_token("alice@contoso.test")
    with rolling_app.client() as client:
        assert client.get("/api/me", headers=bearer(before)).status_code == 200  # keys cached

        with rolling_sandbox.client() as sandbox:
            new_kid = sandbox.post("/_sandbox/keys/roll").json()["kid"]
        after = rolling_sandbox.user_token("alice@contoso.test")
        response = client.get("/api/me", headers=bearer(after))

    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert response.status_code == 200
    assert response.json()["kind"] == "user"


@pytest.fixture(scope="module")
def keyed_app(settings_env: dict[str, str], servers_dir: Path) -> Iterator[AppServer]:
    server = start_app({**settings_env, "API_FUNCTION_KEYS": "true"}, servers_dir)
    yield server
    server.stop()


def test_with_function_keys_a_key_alone_is_not_enough(keyed_app: AppServer) -> None:
    with keyed_app.client() as client:
        response = client.get("/api/me", headers={"x-functions-key": FUNCTION_KEY})

    assert_unauthorized(response)  # the app's own answer: the key passed, the token is missing


def test_with_function_keys_a_token_alone_is_not_enough(
    keyed_app: AppServer, sandbox: SandboxServer
) -> None:
    token = sandbox.user_token("alice@contoso.test")

    with keyed_app.client() as client:
        response = client.get("/api/me", headers=bearer(token))

    assert response.status_code == 401  # the host's answer: no function key
    assert not response.headers.get("content-type", "").startswith(PROBLEM_JSON)


def test_with_function_keys_a_key_and_a_token_pass(
    keyed_app: AppServer, sandbox: SandboxServer
) -> None:
    token = sandbox.user_token("alice@contoso.test")

    with keyed_app.client() as client:
        response = client.get("/api/me", headers={**bearer(token), "x-functions-key": FUNCTION_KEY})

    assert response.status_code == 200
    assert response.json()["kind"] == "user"


def test_anonymous_routes_stay_open_with_function_keys(keyed_app: AppServer) -> None:
    with keyed_app.client() as client:
        assert client.get("/api/health").status_code == 200
