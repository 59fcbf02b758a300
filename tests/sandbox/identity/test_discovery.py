"""Discovery document and JWKS, at Entra's v2.0 paths, and the signing-key roll."""

from __future__ import annotations

import jwt

from tests.support.sandbox import SandboxServer


def test_discovery_document_points_at_the_tenant_endpoints(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        config = client.get(f"/{sandbox.tenant_id}/v2.0/.well-known/openid-configuration").json()

    assert config["issuer"] == f"{sandbox.authority}/v2.0"
    assert config["authorization_endpoint"] == f"{sandbox.authority}/oauth2/v2.0/authorize"
    assert config["token_endpoint"] == f"{sandbox.authority}/oauth2/v2.0/token"
    assert config["jwks_uri"] == f"{sandbox.authority}/discovery/v2.0/keys"
    assert "client_secret_basic" in config["token_endpoint_auth_methods_supported"]
    assert "form_post" in config["response_modes_supported"]


def test_tenant_domain_name_is_an_alias_of_the_tenant_id(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        config = client.get("/contoso.test/v2.0/.well-known/openid-configuration").json()

    assert config["issuer"] == f"{sandbox.authority}/v2.0"


def test_unknown_tenant_is_refused_with_aadsts90002(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        response = client.get("/fabrikam.test/v2.0/.well-known/openid-configuration")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert response.json()["error_codes"] == [90002]


def test_jwks_publishes_rsa_signing_keys_with_thumbprints(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        keys = client.get(f"/{sandbox.tenant_id}/discovery/v2.0/keys").json()["keys"]

    assert keys
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["use"] == "sig"
        assert key["kid"] == key["x5t"]
        assert key["e"] == "AQAB"
        assert key["x5c"]


def _kids(sandbox: SandboxServer) -> list[str]:
    with sandbox.client() as client:
        return [
            k["kid"] for k in client.get(f"/{sandbox.tenant_id}/discovery/v2.0/keys").json()["keys"]
        ]


def _roll(sandbox: SandboxServer) -> str:
    with sandbox.client() as client:
        response = client.post("/_sandbox/keys/roll")
    assert response.status_code == 201
    return str(response.json()["kid"])


def test_rolled_key_signs_new_tokens_and_the_old_key_stays_published(
    sandbox: SandboxServer,
) -> None:
    old_token = sandbox.user_token("alice@contoso.test")
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    new_kid = _roll(sandbox)

    assert jwt.get_unverified_header(sandbox.user_token("alice@contoso.test"))["kid"] == new_kid
    assert _kids(sandbox)[:2] == [new_kid, old_kid]


def test_a_token_outlives_one_key_roll_but_not_two(sandbox: SandboxServer) -> None:
    token = sandbox.user_token("alice@contoso.test")
    kid = jwt.get_unverified_header(token)["kid"]

    _roll(sandbox)
    after_one = kid in _kids(sandbox)
    _roll(sandbox)
    after_two = kid in _kids(sandbox)

    assert (after_one, after_two) == (True, False)
