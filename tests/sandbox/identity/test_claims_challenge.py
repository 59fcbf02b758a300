"""Claims challenges (CAE): Graph's 401 with `insufficient_claims` to CP1 clients only, a
refresh carrying the claims that satisfies them (`refresh`) or demands the person
(`interaction`), and a sign-in carrying them that clears the demand."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from sandbox.identity.tokens import unverified_claims
from tests.sandbox.identity.flows import authorize, redeem, token_request
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
CP1 = {"access_token": {"xms_cc": {"values": ["CP1"]}}}


def _cae_tokens(sandbox: SandboxServer) -> dict[str, Any]:
    """Signed in as a client that declared CP1 (as MSAL does with client_capabilities)."""
    sign_in = authorize(sandbox, claims=json.dumps(CP1))
    response = redeem(sandbox, sign_in, claims=json.dumps(CP1))
    response.raise_for_status()
    return dict(response.json())


def _read(sandbox: SandboxServer, token: str) -> Any:
    with sandbox.client() as client:
        return client.get("/v1.0/me/messages", headers={"Authorization": f"Bearer {token}"})


def _demand(sandbox: SandboxServer, mode: str) -> None:
    with sandbox.client() as client:
        response = client.post("/_sandbox/claims-challenge", json={"user": ALICE, "mode": mode})
    assert response.status_code == 201, response.text


def _demands(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as client:
        return list(client.get("/_sandbox/claims-challenge").json())


def _challenged_claims(response: Any) -> dict[str, Any]:
    header = response.headers["www-authenticate"]
    assert 'error="insufficient_claims"' in header
    encoded = re.search(r'claims="([^"]+)"', header)
    assert encoded is not None
    return dict(json.loads(base64.b64decode(encoded.group(1))))


def _refresh_with(sandbox: SandboxServer, refresh_token: str, claims: dict[str, Any]) -> Any:
    merged = {"access_token": {**claims["access_token"], **CP1["access_token"]}}
    return token_request(
        sandbox,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": "openid profile offline_access Mail.ReadWrite",
            "claims": json.dumps(merged),
        },
    )


def test_tokens_of_a_cp1_client_carry_xms_cc(sandbox: SandboxServer) -> None:
    claims = unverified_claims(_cae_tokens(sandbox)["access_token"])

    assert claims["xms_cc"] == ["CP1"]


def test_graph_challenges_a_cp1_token_with_insufficient_claims(sandbox: SandboxServer) -> None:
    tokens = _cae_tokens(sandbox)
    _demand(sandbox, "refresh")

    refused = _read(sandbox, tokens["access_token"])

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert refused.headers["www-authenticate"].startswith('Bearer realm="", authorization_uri=')
    assert "nbf" in _challenged_claims(refused)["access_token"]


def test_a_client_without_cp1_is_never_challenged(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)
    tokens = redeem(sandbox, sign_in).json()
    _demand(sandbox, "refresh")

    answer = _read(sandbox, tokens["access_token"])

    assert answer.status_code == 200
    assert _demands(sandbox)[0]["challenged"] == 0


def test_a_refresh_carrying_the_claims_satisfies_a_refresh_demand(sandbox: SandboxServer) -> None:
    tokens = _cae_tokens(sandbox)
    _demand(sandbox, "refresh")
    claims = _challenged_claims(_read(sandbox, tokens["access_token"]))

    refreshed = _refresh_with(sandbox, tokens["refresh_token"], claims)
    again = _read(sandbox, refreshed.json()["access_token"])

    assert refreshed.status_code == 200
    assert again.status_code == 200
    assert _demands(sandbox)[0] | {"claims": None} == {
        "user": ALICE,
        "mode": "refresh",
        "claims": None,
        "challenged": 1,
        "claimsRefreshes": 1,
        "satisfied": True,
    }


def test_an_interaction_demand_refuses_the_refresh_and_a_sign_in_clears_it(
    sandbox: SandboxServer,
) -> None:
    tokens = _cae_tokens(sandbox)
    _demand(sandbox, "interaction")
    claims = _challenged_claims(_read(sandbox, tokens["access_token"]))

    refused = _refresh_with(sandbox, tokens["refresh_token"], claims)
    still = _read(sandbox, tokens["access_token"])
    merged = {"access_token": {**claims["access_token"], **CP1["access_token"]}}
    sign_in = authorize(sandbox, claims=json.dumps(merged))
    fresh = redeem(sandbox, sign_in, claims=json.dumps(CP1)).json()

    assert refused.status_code == 400
    assert refused.json()["error"] == "interaction_required"
    assert refused.json()["error_codes"] == [50076]
    assert still.status_code == 401
    assert _read(sandbox, fresh["access_token"]).status_code == 200
    assert _demands(sandbox)[0]["satisfied"] is True


def test_an_unknown_user_or_mode_is_refused(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        unknown = client.post(
            "/_sandbox/claims-challenge", json={"user": "nobody@contoso.test", "mode": "refresh"}
        )
        bad_mode = client.post("/_sandbox/claims-challenge", json={"user": ALICE, "mode": "x"})

    assert unknown.status_code == 400
    assert bad_mode.status_code == 400
