"""Driving the sandbox's OAuth endpoints by hand (no MSAL), for tests of its unhappy paths."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from sandbox.directory import DEFAULT_REDIRECT_URI
from tests.support.sandbox import SandboxServer

GRAPH_SCOPES = "openid profile offline_access Mail.ReadWrite Mail.Send User.Read"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


@dataclass
class SignIn:
    verifier: str
    state: str
    response: httpx.Response

    @property
    def params(self) -> dict[str, str]:
        location = self.response.headers.get("location", "")
        return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}

    @property
    def code(self) -> str:
        return self.params["code"]


def authorize_params(sandbox: SandboxServer, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "client_id": sandbox.client_id,
        "response_type": "code",
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "scope": GRAPH_SCOPES,
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "login_hint": "alice@contoso.test",
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def authorize(sandbox: SandboxServer, **overrides: str | None) -> SignIn:
    verifier, challenge = pkce_pair()
    params = authorize_params(sandbox, **{"code_challenge": challenge, **overrides})
    with sandbox.client() as client:
        response = client.get(f"/{sandbox.tenant_id}/oauth2/v2.0/authorize", params=params)
    return SignIn(verifier=verifier, state=params.get("state", ""), response=response)


def token_request(
    sandbox: SandboxServer,
    form: dict[str, str],
    *,
    secret: str | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = {"client_id": sandbox.client_id, "client_secret": secret or sandbox.client_secret}
    body.update(form)
    with sandbox.client() as client:
        return client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            content=urlencode(body),
            headers={"content-type": "application/x-www-form-urlencoded", **(headers or {})},
        )


def redeem(sandbox: SandboxServer, sign_in: SignIn, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": sign_in.code,
        "redirect_uri": DEFAULT_REDIRECT_URI,
        "code_verifier": sign_in.verifier,
        "scope": GRAPH_SCOPES,
        "client_info": "1",
    }
    form.update(overrides)
    return token_request(sandbox, form)


def refresh(
    sandbox: SandboxServer, refresh_token: str, scope: str = GRAPH_SCOPES
) -> httpx.Response:
    return token_request(
        sandbox, {"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": scope}
    )


def signed_in_tokens(sandbox: SandboxServer, **overrides: str) -> dict[str, Any]:
    sign_in = authorize(sandbox, **overrides)
    response = redeem(sandbox, sign_in)
    response.raise_for_status()
    return dict(response.json())
