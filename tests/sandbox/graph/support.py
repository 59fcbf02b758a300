"""Graph access tokens for the graph tests, obtained from the sandbox like a real client would:
auth code + PKCE for delegated tokens, client credentials for app tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from sandbox.directory import DEFAULT_REDIRECT_URI
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
SUPPORT = "support@contoso.test"
ALL_MAIL = ["Mail.ReadWrite", "Mail.Send", "Mail.ReadWrite.Shared", "Mail.Send.Shared"]
IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}


def user_token(sandbox: SandboxServer, upn: str, scopes: list[str] | None = None) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    params = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "scope": " ".join(["openid", "offline_access", *(scopes or ALL_MAIL)]),
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "login_hint": upn,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with sandbox.client() as client:
        response = client.get(f"/{sandbox.tenant_id}/oauth2/v2.0/authorize", params=params)
        location = response.headers["location"]
        code = parse_qs(urlparse(location).query)["code"][0]
        form = {
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": DEFAULT_REDIRECT_URI,
            "code_verifier": verifier,
            "scope": params["scope"],
        }
        token = client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            content=urlencode(form),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        token.raise_for_status()
        return str(token.json()["access_token"])


def app_token(sandbox: SandboxServer, roles: list[str] | None = None) -> str:
    with sandbox.client() as client:
        if roles is not None:
            client.post(
                "/_sandbox/identity/app-roles", json={"resource": "graph", "roles": roles}
            ).raise_for_status()
        form = {
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        }
        token = client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            content=urlencode(form),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        token.raise_for_status()
        return str(token.json()["access_token"])


class Graph:
    """An httpx client on the sandbox's /v1.0 with a bearer token."""

    def __init__(self, sandbox: SandboxServer, token: str, immutable: bool = False) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if immutable:
            headers.update(IMMUTABLE)
        self.sandbox = sandbox
        self.http = httpx.Client(
            base_url=sandbox.graph_url, verify=sandbox.ssl_context(), timeout=60, headers=headers
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.patch(url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(url, **kwargs)

    def close(self) -> None:
        self.http.close()


def mailbox(sandbox: SandboxServer, upn: str) -> dict[str, Any]:
    with sandbox.client() as client:
        response = client.get(f"/_sandbox/users/{upn}/mailbox")
        response.raise_for_status()
        return dict(response.json())


def seed(sandbox: SandboxServer, upn: str, **body: Any) -> list[str]:
    with sandbox.client() as client:
        response = client.post(f"/_sandbox/users/{upn}/messages", json=body)
        assert response.status_code == 201, response.text
        return list(response.json()["ids"])


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])
