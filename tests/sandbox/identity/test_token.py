"""The token endpoint: client authentication, code redemption rules, refresh semantics in
both rotation modes, client credentials, and Entra's error body.
"""

from __future__ import annotations

import base64
import re
import uuid
from urllib.parse import quote

from sandbox.directory import GRAPH_APP_ID
from sandbox.identity.tokens import unverified_claims
from tests.sandbox.identity.flows import (
    authorize,
    redeem,
    refresh,
    signed_in_tokens,
    token_request,
)
from tests.support.sandbox import SandboxServer

# How Entra writes a grant's issue time in its refusals.
ISSUED_ON = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.0000000Z"


def _post(sandbox: SandboxServer, path: str, body: dict[str, object]) -> None:
    with sandbox.client() as client:
        response = client.post(path, json=body)
    assert response.status_code in (200, 201, 204), response.text


def test_code_redemption_returns_entra_shaped_tokens(sandbox: SandboxServer) -> None:
    tokens = signed_in_tokens(sandbox)

    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == tokens["ext_expires_in"] == 3600
    assert tokens["scope"] == "Mail.ReadWrite Mail.Send offline_access openid profile User.Read"
    assert not tokens["refresh_token"].startswith("eyJ")  # opaque, not a JWT
    info = base64.urlsafe_b64decode(tokens["client_info"] + "==")
    assert b'"utid":"' + sandbox.tenant_id.encode() in info


def test_graph_access_token_has_v1_claims(sandbox: SandboxServer) -> None:
    claims = unverified_claims(signed_in_tokens(sandbox)["access_token"])

    assert claims["aud"] == GRAPH_APP_ID
    assert claims["iss"] == f"https://sts.windows.net/{sandbox.tenant_id}/"
    assert claims["ver"] == "1.0"
    assert claims["upn"] == "alice@contoso.test"
    assert claims["appid"] == sandbox.client_id
    assert claims["scp"] == "Mail.ReadWrite Mail.Send offline_access openid profile User.Read"
    assert claims["tid"] == sandbox.tenant_id
    assert claims["nbf"] <= claims["iat"] < claims["exp"]


def test_graph_uri_prefixed_scopes_give_the_graph_uri_as_audience(sandbox: SandboxServer) -> None:
    scope = "openid offline_access https://graph.microsoft.com/Mail.Read"
    sign_in = authorize(sandbox, scope=scope)

    claims = unverified_claims(redeem(sandbox, sign_in, scope=scope).json()["access_token"])

    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["scp"] == "Mail.Read offline_access openid"


def test_id_token_is_v2_for_the_client(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, nonce="n-0S6_WzA2Mj")

    claims = unverified_claims(redeem(sandbox, sign_in).json()["id_token"])

    assert claims["aud"] == sandbox.client_id
    assert claims["iss"] == f"{sandbox.authority}/v2.0"
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["preferred_username"] == "alice@contoso.test"
    assert claims["ver"] == "2.0"


def test_openid_profile_alone_gives_an_id_token_and_no_refresh_token(
    sandbox: SandboxServer,
) -> None:
    # The app's portal signs people in this way: who they are, no consent to Graph.
    sign_in = authorize(sandbox, scope="openid profile", nonce="n-portal")

    tokens = redeem(sandbox, sign_in, scope="openid profile").json()

    claims = unverified_claims(tokens["id_token"])
    assert claims["aud"] == sandbox.client_id
    assert claims["nonce"] == "n-portal"
    assert claims["preferred_username"] == "alice@contoso.test"
    assert "refresh_token" not in tokens
    assert "Mail" not in tokens["scope"]


def test_wrong_client_secret_is_401_invalid_client(sandbox: SandboxServer) -> None:
    response = token_request(
        sandbox,
        {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
        secret="not-the-secret",
    )

    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert f"Correlation ID: {body['correlation_id']}" in body["error_description"]
    assert {"timestamp", "trace_id", "correlation_id"} <= body.keys()


def test_correlation_id_echoes_client_request_id(sandbox: SandboxServer) -> None:
    request_id = str(uuid.uuid4())

    response = token_request(
        sandbox,
        {"grant_type": "client_credentials", "scope": "x"},
        headers={"client-request-id": request_id},
    )

    assert response.json()["correlation_id"] == request_id


def test_client_secret_basic_authenticates(sandbox: SandboxServer) -> None:
    credentials = f"{quote(sandbox.client_id)}:{quote(sandbox.client_secret, safe='')}"
    with sandbox.client() as client:
        response = client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "scope": f"{sandbox.app_id_uri}/.default"},
            headers={"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()},
        )

    assert response.status_code == 200, response.text


def test_missing_client_secret_is_invalid_client(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        response = client.post(
            f"/{sandbox.tenant_id}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": sandbox.client_id},
        )

    assert response.status_code == 401
    assert response.json()["error_codes"] == [7000218]


def test_unknown_grant_type_is_unsupported(sandbox: SandboxServer) -> None:
    response = token_request(sandbox, {"grant_type": "password"})

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_reused_code_is_invalid_grant_54005(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)
    assert redeem(sandbox, sign_in).status_code == 200

    again = redeem(sandbox, sign_in)

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert again.json()["error_codes"] == [54005]


def test_code_expires_after_ten_minutes(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)
    _post(sandbox, "/_sandbox/clock", {"offsetSeconds": 601})

    response = redeem(sandbox, sign_in)

    assert response.status_code == 400
    assert response.json()["error_codes"] == [70008]


def test_code_is_still_good_just_before_ten_minutes(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)
    _post(sandbox, "/_sandbox/clock", {"offsetSeconds": 590})

    assert redeem(sandbox, sign_in).status_code == 200


def test_wrong_pkce_verifier_is_refused_and_burns_the_code(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)

    wrong = redeem(sandbox, sign_in, code_verifier="x" * 43)
    right = redeem(sandbox, sign_in)

    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["error_codes"] == [501481]
    assert right.json()["error_codes"] == [54005]


def test_missing_pkce_verifier_is_refused(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)

    response = redeem(sandbox, sign_in, code_verifier="")

    assert response.status_code == 400
    assert response.json()["error_codes"] == [900144]


def test_redirect_uri_must_equal_the_one_of_the_sign_in(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)

    response = redeem(sandbox, sign_in, redirect_uri="http://127.0.0.1:7071/api/auth/other")

    assert response.json()["error"] == "invalid_grant"
    assert response.json()["error_codes"] == [500112]


def test_unknown_code_is_invalid_grant(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox)

    response = redeem(sandbox, sign_in, code="1.AQnot-a-code")

    assert response.json()["error"] == "invalid_grant"


def test_refresh_returns_a_new_refresh_token_and_the_old_one_stays_valid(
    sandbox: SandboxServer,
) -> None:
    first = signed_in_tokens(sandbox)["refresh_token"]

    second = refresh(sandbox, first)
    again = refresh(sandbox, first)

    assert second.status_code == again.status_code == 200
    assert second.json()["refresh_token"] != first
    assert again.json()["refresh_token"] not in (first, second.json()["refresh_token"])


def test_strict_rotation_revokes_the_used_refresh_token(sandbox: SandboxServer) -> None:
    _post(sandbox, "/_sandbox/identity/refresh-mode", {"strict": True})
    first = signed_in_tokens(sandbox)["refresh_token"]

    second = refresh(sandbox, first)
    replay = refresh(sandbox, first)
    third = refresh(sandbox, second.json()["refresh_token"])

    assert second.status_code == 200
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert replay.json()["error_codes"] == [50173]
    assert third.status_code == 200


def test_refresh_token_is_multi_resource_within_consent(sandbox: SandboxServer) -> None:
    scope = f"openid offline_access Mail.ReadWrite {sandbox.app_id_uri}/access_as_user"
    sign_in = authorize(sandbox, scope=scope)
    first = redeem(sandbox, sign_in, scope=scope).json()

    api = refresh(sandbox, first["refresh_token"], scope=f"{sandbox.app_id_uri}/access_as_user")

    assert unverified_claims(first["access_token"])["aud"] == GRAPH_APP_ID
    claims = unverified_claims(api.json()["access_token"])
    assert claims["aud"] == sandbox.client_id
    assert claims["scp"] == "access_as_user"
    assert api.json()["scope"] == f"{sandbox.app_id_uri}/access_as_user"


def test_refresh_for_a_subset_of_scopes_keeps_all_consented_in_scp(sandbox: SandboxServer) -> None:
    first = signed_in_tokens(sandbox)["refresh_token"]

    response = refresh(sandbox, first, scope="Mail.Send offline_access")

    claims = unverified_claims(response.json()["access_token"])
    assert {"Mail.ReadWrite", "Mail.Send", "User.Read"} <= set(claims["scp"].split())


def test_refresh_for_unconsented_scope_is_consent_required(sandbox: SandboxServer) -> None:
    first = signed_in_tokens(sandbox)["refresh_token"]

    response = refresh(sandbox, first, scope="Mail.ReadWrite.Shared offline_access")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert response.json()["suberror"] == "consent_required"
    assert response.json()["error_codes"] == [65001]


def test_injected_refresh_error_applies_to_its_user_only(sandbox: SandboxServer) -> None:
    alice = signed_in_tokens(sandbox)["refresh_token"]
    bob = signed_in_tokens(sandbox, login_hint="bob@contoso.test")["refresh_token"]
    _post(
        sandbox,
        "/_sandbox/identity/refresh-error",
        {"code": "AADSTS50173", "upn": "alice@contoso.test"},
    )

    bob_response = refresh(sandbox, bob)
    alice_response = refresh(sandbox, alice)
    alice_again = refresh(sandbox, alice)

    assert bob_response.status_code == 200
    assert alice_response.status_code == 400
    assert alice_response.json()["error"] == "invalid_grant"
    assert alice_response.json()["error_codes"] == [50173]
    assert alice_again.status_code == 200


def test_refresh_token_expires_after_ninety_days(sandbox: SandboxServer) -> None:
    first = signed_in_tokens(sandbox)["refresh_token"]
    _post(sandbox, "/_sandbox/clock", {"offsetSeconds": 90 * 86400 + 1})

    response = refresh(sandbox, first)

    assert response.json()["error_codes"] == [700082]


def test_revoking_a_user_fails_all_their_refresh_tokens(sandbox: SandboxServer) -> None:
    first = signed_in_tokens(sandbox)["refresh_token"]
    _post(sandbox, "/_sandbox/identity/revoke", {"upn": "alice@contoso.test"})

    response = refresh(sandbox, first)

    assert response.json()["error_codes"] == [50173]


def test_refused_refresh_tokens_name_their_issue_time_as_entra_does(
    sandbox: SandboxServer,
) -> None:
    expired = signed_in_tokens(sandbox)["refresh_token"]
    revoked = signed_in_tokens(sandbox, login_hint="bob@contoso.test")["refresh_token"]
    _post(sandbox, "/_sandbox/identity/revoke", {"upn": "bob@contoso.test"})
    revoked_text = refresh(sandbox, revoked).json()["error_description"]
    _post(sandbox, "/_sandbox/clock", {"offsetSeconds": 90 * 86400 + 1})
    expired_text = refresh(sandbox, expired).json()["error_description"]

    assert re.search(f"The grant was issued on '{ISSUED_ON}'\\.", revoked_text), revoked_text
    assert re.search(
        f"The token was issued on {ISSUED_ON} and was inactive for 90\\.00:00:00\\.",
        expired_text,
    ), expired_text


def test_client_credentials_for_graph_gives_roles(sandbox: SandboxServer) -> None:
    response = token_request(
        sandbox,
        {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
    )

    body = response.json()
    claims = unverified_claims(body["access_token"])
    assert "refresh_token" not in body
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["idtyp"] == "app"
    assert claims["roles"] == ["Mail.ReadWrite", "Mail.Send"]
    assert "scp" not in claims


def test_app_roles_control_changes_granted_roles(sandbox: SandboxServer) -> None:
    _post(sandbox, "/_sandbox/identity/app-roles", {"resource": "graph", "roles": []})

    response = token_request(
        sandbox,
        {"grant_type": "client_credentials", "scope": "https://graph.microsoft.com/.default"},
    )

    assert unverified_claims(response.json()["access_token"])["roles"] == []


def test_client_credentials_without_default_scope_is_refused(sandbox: SandboxServer) -> None:
    response = token_request(
        sandbox, {"grant_type": "client_credentials", "scope": "Mail.ReadWrite"}
    )

    assert response.json()["error"] == "invalid_scope"
    assert response.json()["error_codes"] == [1002012]


def test_issued_tokens_are_listed_by_kind_and_owner(sandbox: SandboxServer) -> None:
    tokens = signed_in_tokens(sandbox)
    token_request(
        sandbox, {"grant_type": "client_credentials", "scope": f"{sandbox.app_id_uri}/.default"}
    )

    with sandbox.client() as client:
        issued = client.get("/_sandbox/tokens").json()

    assert [t["kind"] for t in issued] == ["code", "access", "refresh", "id", "access"]
    assert {
        "kind": "refresh",
        "value": tokens["refresh_token"],
        "upn": "alice@contoso.test",
    } in issued
    assert issued[-1].keys() == {"kind", "value", "appId"}
    assert issued[-1]["appId"] == sandbox.client_id
