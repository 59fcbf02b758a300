"""The authorize endpoint: what it refuses on a page, what it sends back to the app, and the
consent page when auto-consent is off.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from sandbox.directory import DEFAULT_REDIRECT_URI
from tests.sandbox.identity.flows import authorize, authorize_params, pkce_pair
from tests.support.sandbox import SandboxServer


def test_sign_in_with_login_hint_redirects_back_with_code_and_state(
    sandbox: SandboxServer,
) -> None:
    sign_in = authorize(sandbox)

    assert sign_in.response.status_code == 302
    assert sign_in.response.headers["location"].startswith(DEFAULT_REDIRECT_URI + "?")
    assert sign_in.params["state"] == sign_in.state
    assert sign_in.params["code"]


def test_unregistered_redirect_uri_shows_an_error_page_instead_of_redirecting(
    sandbox: SandboxServer,
) -> None:
    sign_in = authorize(sandbox, redirect_uri="http://127.0.0.1:7071/api/auth/callback/")

    assert sign_in.response.status_code == 400
    assert "location" not in sign_in.response.headers
    assert "AADSTS50011" in sign_in.response.text


def test_unknown_client_id_shows_an_error_page(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, client_id="00000000-0000-0000-0000-000000000001")

    assert sign_in.response.status_code == 400
    assert "AADSTS700016" in sign_in.response.text


def test_missing_pkce_challenge_is_sent_back_as_invalid_request(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, code_challenge=None, code_challenge_method=None)

    assert sign_in.params["error"] == "invalid_request"
    assert sign_in.params["state"] == sign_in.state
    assert "code" not in sign_in.params


def test_plain_pkce_method_is_refused(sandbox: SandboxServer) -> None:
    verifier, _ = pkce_pair()

    sign_in = authorize(sandbox, code_challenge=verifier[:43], code_challenge_method="plain")

    assert sign_in.params["error"] == "invalid_request"
    assert "S256" in sign_in.params["error_description"]


def test_challenge_of_the_wrong_size_is_refused(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, code_challenge="too-short")

    assert sign_in.params["error"] == "invalid_request"
    assert sign_in.params["error_description"].startswith("AADSTS501491")


def test_unknown_graph_permission_is_invalid_scope(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, scope="openid Mail.Everything")

    assert sign_in.params["error"] == "invalid_scope"
    assert sign_in.params["error_description"].startswith("AADSTS70011")


def test_unknown_resource_is_invalid_resource(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, scope="openid api://unknown-app/read")

    assert sign_in.params["error"] == "invalid_resource"


def test_response_type_token_is_refused(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, response_type="token")

    assert sign_in.params["error"] == "unsupported_response_type"


def test_form_post_response_mode_answers_with_an_auto_submitting_form(
    sandbox: SandboxServer,
) -> None:
    sign_in = authorize(sandbox, response_mode="form_post")

    assert sign_in.response.status_code == 200
    page = sign_in.response.text
    assert f"action='{DEFAULT_REDIRECT_URI}'" in page
    assert "document.forms[0].submit()" in page
    assert re.search(r"name='code' value='[^']+'", page)
    assert f"name='state' value='{sign_in.state}'" in page


def test_prompt_none_without_a_user_is_login_required(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, prompt="none", login_hint=None)

    assert sign_in.params["error"] == "login_required"


def test_shared_mailbox_cannot_sign_in(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, login_hint="support@contoso.test")

    assert sign_in.response.status_code == 200
    assert "AADSTS50034" in sign_in.response.text
    assert "location" not in sign_in.response.headers


def test_injected_authorize_error_is_sent_back_then_cleared(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        created = client.post("/_sandbox/identity/authorize-error", json={"error": "access_denied"})
    assert created.status_code == 201

    refused = authorize(sandbox)
    allowed = authorize(sandbox)

    assert refused.params["error"] == "access_denied"
    assert refused.params["error_description"].startswith("AADSTS65004")
    assert refused.params["state"] == refused.state
    assert "code" in allowed.params


def test_injected_authorize_error_can_target_one_user_and_repeat(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        client.post(
            "/_sandbox/identity/authorize-error",
            json={"error": "interaction_required", "upn": "bob@contoso.test", "times": 2},
        ).raise_for_status()

    alice = authorize(sandbox)
    bob = [authorize(sandbox, login_hint="bob@contoso.test") for _ in range(3)]

    assert "code" in alice.params
    assert [b.params.get("error") for b in bob] == [
        "interaction_required",
        "interaction_required",
        None,
    ]


def _consent_off(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        assert client.post("/_sandbox/identity/consent", json={"auto": False}).status_code == 204


def _hidden_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r"<input type='hidden' name='([^']+)' value='([^']*)'/>", page))


def test_consent_page_lists_users_when_auto_consent_is_off(sandbox: SandboxServer) -> None:
    _consent_off(sandbox)

    sign_in = authorize(sandbox)

    assert sign_in.response.status_code == 200
    assert "bob@contoso.test" in sign_in.response.text
    assert "value='accept'" in sign_in.response.text
    assert "support@contoso.test" not in sign_in.response.text


def test_accepting_on_the_consent_page_redirects_with_a_code(sandbox: SandboxServer) -> None:
    _consent_off(sandbox)
    sign_in = authorize(sandbox)
    form = {
        **_hidden_fields(sign_in.response.text),
        "sandbox_user": "bob@contoso.test",
        "sandbox_consent": "accept",
    }

    with sandbox.client() as client:
        response = client.post(f"/{sandbox.tenant_id}/oauth2/v2.0/authorize", data=form)

    assert response.status_code == 302
    params = {k: v[0] for k, v in parse_qs(urlparse(response.headers["location"]).query).items()}
    assert params["state"] == sign_in.state
    with sandbox.client() as client:
        codes = [t for t in client.get("/_sandbox/tokens").json() if t["kind"] == "code"]
    assert codes == [{"kind": "code", "value": params["code"], "upn": "bob@contoso.test"}]


def test_declining_on_the_consent_page_is_access_denied(sandbox: SandboxServer) -> None:
    _consent_off(sandbox)
    sign_in = authorize(sandbox)
    form = {**_hidden_fields(sign_in.response.text), "sandbox_consent": "deny"}

    with sandbox.client() as client:
        response = client.post(f"/{sandbox.tenant_id}/oauth2/v2.0/authorize", data=form)

    params = parse_qs(urlparse(response.headers["location"]).query)
    assert params["error"] == ["access_denied"]


def test_prompt_none_needing_consent_is_consent_required(sandbox: SandboxServer) -> None:
    _consent_off(sandbox)

    sign_in = authorize(sandbox, prompt="none")

    assert sign_in.params["error"] == "consent_required"


def test_authorize_accepts_post(sandbox: SandboxServer) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(sandbox, code_challenge=challenge)

    with sandbox.client() as client:
        response = client.post(f"/{sandbox.tenant_id}/oauth2/v2.0/authorize", data=params)

    assert response.status_code == 302
    assert "code=" in response.headers["location"]


def test_fragment_response_mode_puts_the_code_in_the_fragment(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, response_mode="fragment")

    location = sign_in.response.headers["location"]
    assert location.startswith(DEFAULT_REDIRECT_URI + "#")
    assert "code" in parse_qs(urlparse(location).fragment)


def test_unknown_response_mode_shows_an_error_page(sandbox: SandboxServer) -> None:
    sign_in = authorize(sandbox, response_mode="web_message")

    assert sign_in.response.status_code == 400
    assert "location" not in sign_in.response.headers


def test_logout_returns_to_a_registered_uri_only(sandbox: SandboxServer) -> None:
    path = f"/{sandbox.tenant_id}/oauth2/v2.0/logout"
    with sandbox.client() as client:
        registered = client.get(path, params={"post_logout_redirect_uri": DEFAULT_REDIRECT_URI})
        foreign = client.get(path, params={"post_logout_redirect_uri": "https://evil.test/"})

    assert registered.status_code == 302
    assert registered.headers["location"] == DEFAULT_REDIRECT_URI
    assert foreign.status_code == 200
    assert "location" not in foreign.headers
