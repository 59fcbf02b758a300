"""MSAL Python, unmodified and given only the authority URL and a CA bundle, signs in against
the sandbox, redeems the code, refreshes, and gets app tokens: the proof that the sandbox is
an Entra ID that real client code accepts.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import msal
import pytest
import requests

from sandbox.directory import DEFAULT_REDIRECT_URI
from tests.support.sandbox import SandboxServer

SCOPES = ["Mail.ReadWrite", "Mail.Send", "User.Read"]


@pytest.fixture
def msal_session(sandbox: SandboxServer) -> Iterator[requests.Session]:
    session = requests.Session()
    # The trap: with trust_env on, REQUESTS_CA_BUNDLE (set on these machines to the system
    # bundle) overrides `verify`. The combined bundle trusts both, whatever the env says.
    session.trust_env = False
    session.verify = str(sandbox.ca_bundle_path)
    yield session
    session.close()


@pytest.fixture
def msal_app(sandbox: SandboxServer, msal_session: requests.Session) -> msal.ClientApplication:
    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=msal_session,
    )


def _browse(sandbox: SandboxServer, auth_uri: str) -> dict[str, str]:
    """What a browser would do with auto-consent on: follow the authorize URL to the
    redirect and hand its query string to the app.
    """
    verify = ssl.create_default_context(cafile=str(sandbox.ca_path))
    with httpx.Client(verify=verify) as browser:
        response = browser.get(auth_uri)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def _sign_in(sandbox: SandboxServer, app: msal.ClientApplication) -> tuple[dict[str, Any], str]:
    flow = app.initiate_auth_code_flow(
        scopes=SCOPES, redirect_uri=DEFAULT_REDIRECT_URI, login_hint="alice@contoso.test"
    )
    result = app.acquire_token_by_auth_code_flow(flow, _browse(sandbox, flow["auth_uri"]))
    return result, flow["nonce"]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_auth_code_flow_signs_alice_in(
    sandbox: SandboxServer, msal_app: msal.ClientApplication
) -> None:
    result, _ = _sign_in(sandbox, msal_app)

    assert "error" not in result, result
    assert result["token_type"] == "Bearer"
    assert set(SCOPES) <= set(result["scope"].split())
    assert result["id_token_claims"]["preferred_username"] == "alice@contoso.test"
    [account] = msal_app.get_accounts()
    assert account["username"] == "alice@contoso.test"
    assert account["home_account_id"] == (f"{result['id_token_claims']['oid']}.{sandbox.tenant_id}")


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_id_token_verifies_against_the_published_keys_and_carries_the_nonce(
    sandbox: SandboxServer, msal_app: msal.ClientApplication, msal_session: requests.Session
) -> None:
    result, nonce = _sign_in(sandbox, msal_app)
    config = msal_session.get(f"{sandbox.authority}/v2.0/.well-known/openid-configuration").json()
    jwks = jwt.PyJWKSet.from_dict(msal_session.get(config["jwks_uri"]).json())
    id_token = result["id_token"]
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(id_token)["kid"])

    claims = jwt.decode(
        id_token, key, algorithms=["RS256"], audience=sandbox.client_id, issuer=config["issuer"]
    )

    # MSAL sends the SHA-256 of its nonce and checks the echo itself.
    assert claims["nonce"] == hashlib.sha256(nonce.encode()).hexdigest()
    assert claims["tid"] == sandbox.tenant_id
    assert config["issuer"] == f"{sandbox.authority}/v2.0"


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_silent_force_refresh_redeems_the_refresh_token(
    sandbox: SandboxServer, msal_app: msal.ClientApplication
) -> None:
    first, _ = _sign_in(sandbox, msal_app)
    [account] = msal_app.get_accounts()

    refreshed = msal_app.acquire_token_silent(SCOPES, account=account, force_refresh=True)

    assert refreshed is not None and "error" not in refreshed, refreshed
    assert refreshed["access_token"] != first["access_token"]
    assert refreshed["token_source"] == "identity_provider"
    with sandbox.client() as client:
        kinds = [t["kind"] for t in client.get("/_sandbox/tokens").json()]
    assert kinds.count("refresh") == 2


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_surfaces_an_injected_invalid_grant_on_refresh(
    sandbox: SandboxServer, msal_app: msal.ClientApplication
) -> None:
    _sign_in(sandbox, msal_app)
    [account] = msal_app.get_accounts()
    with sandbox.client() as client:
        client.post(
            "/_sandbox/identity/refresh-error", json={"code": "AADSTS700082"}
        ).raise_for_status()

    result = msal_app.acquire_token_silent_with_error(SCOPES, account=account, force_refresh=True)

    assert result is not None
    assert result["error"] == "invalid_grant"
    assert result["error_codes"] == [700082]


def test_msal_client_credentials_gets_an_app_token_with_roles(
    sandbox: SandboxServer, msal_app: msal.ClientApplication
) -> None:
    result = msal_app.acquire_token_for_client([f"{sandbox.app_id_uri}/.default"])

    assert "error" not in result, result
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["aud"] == sandbox.client_id
    assert claims["idtyp"] == "app"
    assert "Connections.ReadWrite.All" in claims["roles"]


@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_trust_env_off_survives_a_system_only_requests_ca_bundle(
    sandbox: SandboxServer, msal_session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().cafile or "/dev/null")
    app = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential=sandbox.client_secret,
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=msal_session,
    )

    result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])

    assert "access_token" in result, result
