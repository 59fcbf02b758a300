"""The control API's shapes, which tests across the project rely on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sandbox.identity.tokens import CALLER_APP_ID, unverified_claims
from tests.support.sandbox import SandboxServer

DISCOVERY = "/contoso.test/v2.0/.well-known/openid-configuration"


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with sandbox.client() as client:
        yield client


def test_health_answers_ok(client: httpx.Client) -> None:
    response = client.get("/_sandbox/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_reset_forgets_tokens_faults_and_switches(
    client: httpx.Client, sandbox: SandboxServer
) -> None:
    sandbox.user_token("alice@contoso.test")
    client.post("/_sandbox/faults", json={"pathRegex": ".", "status": 500})
    client.post("/_sandbox/identity/consent", json={"auto": False})
    client.post("/_sandbox/clock", json={"offsetSeconds": 100})

    assert client.post("/_sandbox/reset").status_code == 204

    assert client.get("/_sandbox/tokens").json() == []
    assert client.get("/_sandbox/faults").json() == []
    assert client.get("/_sandbox/clock").json()["offsetSeconds"] == 0
    assert client.get(DISCOVERY).status_code == 200


def test_adding_a_user_returns_it(client: httpx.Client) -> None:
    response = client.post(
        "/_sandbox/users",
        json={
            "upn": "Carol@contoso.test",
            "displayName": "Carol Example",
            "sharedMailboxAccess": ["support@contoso.test"],
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert body["upn"] == "carol@contoso.test"
    assert body["displayName"] == "Carol Example"
    assert body["sharedMailboxAccess"] == ["support@contoso.test"]
    assert body["sharedMailbox"] is False
    upns = [u["upn"] for u in client.get("/_sandbox/users").json()]
    assert "carol@contoso.test" in upns


def test_added_user_can_sign_in_and_get_a_token(
    client: httpx.Client, sandbox: SandboxServer
) -> None:
    client.post("/_sandbox/users", json={"upn": "dave@contoso.test"}).raise_for_status()

    claims = unverified_claims(sandbox.user_token("dave@contoso.test"))

    assert claims["preferred_username"] == "dave@contoso.test"
    assert claims["name"] == "Dave"


def test_adding_an_existing_user_is_409(client: httpx.Client) -> None:
    response = client.post("/_sandbox/users", json={"upn": "alice@contoso.test"})

    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"upn": "not-an-upn"},
        {"upn": "eve@fabrikam.test"},
        {"upn": "eve@contoso.test", "sharedMailboxAccess": ["nobody@contoso.test"]},
        {"upn": "eve@contoso.test", "unknownField": 1},
    ],
)
def test_invalid_user_is_400_with_a_message(client: httpx.Client, body: dict[str, object]) -> None:
    response = client.post("/_sandbox/users", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["message"]


def test_minted_user_token_is_a_v2_token_for_this_api(sandbox: SandboxServer) -> None:
    claims = unverified_claims(sandbox.user_token("alice@contoso.test"))

    assert claims["aud"] == sandbox.client_id
    assert claims["iss"] == f"{sandbox.authority}/v2.0"
    assert claims["ver"] == "2.0"
    assert claims["scp"] == "access_as_user"
    assert claims["azp"] == CALLER_APP_ID
    assert claims["preferred_username"] == "alice@contoso.test"
    assert claims["tid"] == sandbox.tenant_id
    assert claims["exp"] - claims["iat"] >= 3600


def test_minted_user_token_carries_requested_scopes(sandbox: SandboxServer) -> None:
    claims = unverified_claims(sandbox.user_token("bob@contoso.test", ["access_as_user", "x"]))

    assert claims["scp"] == "access_as_user x"


def test_minted_app_token_carries_roles(sandbox: SandboxServer) -> None:
    claims = unverified_claims(sandbox.app_token(["Connections.Read.All"]))

    assert claims["roles"] == ["Connections.Read.All"]
    assert claims["idtyp"] == "app"
    assert "scp" not in claims
    assert claims["aud"] == sandbox.client_id


def test_token_minting_answers_access_token_and_expiry(client: httpx.Client) -> None:
    response = client.post("/_sandbox/token", json={"user": "alice@contoso.test"})

    assert response.status_code == 200
    assert response.json().keys() == {"access_token", "expires_in"}
    assert response.json()["expires_in"] == 3600


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"user": "nobody@contoso.test"},
        {"user": "support@contoso.test"},
        {"user": "alice@contoso.test", "app": True},
        {"app": True, "scopes": ["x"]},
    ],
)
def test_invalid_token_request_is_400(client: httpx.Client, body: dict[str, object]) -> None:
    assert client.post("/_sandbox/token", json=body).status_code == 400


def test_minted_tokens_are_listed(client: httpx.Client, sandbox: SandboxServer) -> None:
    user_token = sandbox.user_token("alice@contoso.test")
    app_token = sandbox.app_token([])

    assert client.get("/_sandbox/tokens").json() == [
        {"kind": "access", "value": user_token, "upn": "alice@contoso.test"},
        {"kind": "access", "value": app_token, "appId": CALLER_APP_ID},
    ]


def test_request_log_redacts_credentials_and_keeps_json_bodies(client: httpx.Client) -> None:
    client.post(
        "/v1.0/me/sendMail?x=1",
        json={"message": {"subject": "hi"}},
        headers={"Authorization": "Bearer secret-token", "Cookie": "session=abc"},
    )

    [entry] = client.get("/_sandbox/requests").json()

    assert entry["method"] == "POST"
    assert entry["path"] == "/v1.0/me/sendMail"
    assert entry["query"] == "x=1"
    assert entry["headers"]["authorization"] == "<redacted>"
    assert entry["headers"]["cookie"] == "<redacted>"
    assert entry["body"] == {"message": {"subject": "hi"}}
    assert entry["time"].endswith("Z")


def test_request_log_does_not_parse_form_bodies(
    client: httpx.Client, sandbox: SandboxServer
) -> None:
    client.post(
        f"/{sandbox.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "refresh_token": "secret-refresh"},
    )

    [entry] = client.get("/_sandbox/requests").json()

    assert entry["body"] is None
    assert "secret-refresh" not in str(entry)


def test_request_log_skips_control_calls_and_can_be_cleared(client: httpx.Client) -> None:
    client.get(DISCOVERY)
    client.get("/_sandbox/tokens")

    assert [e["path"] for e in client.get("/_sandbox/requests").json()] == [DISCOVERY]
    assert client.delete("/_sandbox/requests").status_code == 204
    assert client.get("/_sandbox/requests").json() == []


def test_fault_answers_matching_requests_the_given_number_of_times(client: httpx.Client) -> None:
    created = client.post(
        "/_sandbox/faults",
        json={
            "method": "get",
            "pathRegex": "openid-configuration$",
            "status": 503,
            "headers": {"Retry-After": "7"},
            "body": {"error": "temporarily_unavailable"},
            "times": 2,
        },
    )
    assert created.status_code == 201
    assert created.json()["id"]

    answers = [client.get(DISCOVERY) for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "7"
    assert answers[0].json() == {"error": "temporarily_unavailable"}


def test_fault_matches_method(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"method": "POST", "pathRegex": ".", "status": 500})

    assert client.get(DISCOVERY).status_code == 200


def test_fault_with_text_body(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"pathRegex": ".", "status": 502, "body": "Bad Gateway"})

    response = client.get(DISCOVERY)

    assert response.status_code == 502
    assert response.text == "Bad Gateway"
    assert response.headers["content-type"].startswith("text/plain")


def test_faulted_requests_are_still_logged(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"pathRegex": "sendMail", "status": 429})

    client.post("/v1.0/me/sendMail", json={"message": {}})

    [entry] = client.get("/_sandbox/requests").json()
    assert entry["path"] == "/v1.0/me/sendMail"
    assert entry["body"] == {"message": {}}


def test_fault_fraction_answers_some_requests(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"pathRegex": ".", "status": 500, "fraction": 0.5})

    statuses = [client.get(DISCOVERY).status_code for _ in range(100)]

    assert 15 <= statuses.count(500) <= 85
    assert statuses.count(200) == 100 - statuses.count(500)


def test_fault_latency_delays_the_answer(client: httpx.Client) -> None:
    client.post("/_sandbox/faults", json={"pathRegex": ".", "status": 504, "latencyMs": 300})

    started = time.monotonic()
    response = client.get(DISCOVERY)

    assert response.status_code == 504
    assert time.monotonic() - started >= 0.3


def test_faults_can_be_cleared_one_or_all(client: httpx.Client) -> None:
    first = client.post("/_sandbox/faults", json={"pathRegex": "a", "status": 500}).json()["id"]
    client.post("/_sandbox/faults", json={"pathRegex": "b", "status": 500})

    assert client.delete(f"/_sandbox/faults/{first}").status_code == 204
    assert [f["pathRegex"] for f in client.get("/_sandbox/faults").json()] == ["b"]
    assert client.delete("/_sandbox/faults").status_code == 204
    assert client.get("/_sandbox/faults").json() == []
    assert client.delete(f"/_sandbox/faults/{first}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"pathRegex": "("},
        {"pathRegex": "."},
        {"pathRegex": ".", "status": 500, "fraction": 0},
        {"pathRegex": ".", "status": 500, "times": 0},
        {"pathRegex": ".", "status": 700},
    ],
)
def test_invalid_fault_is_400(client: httpx.Client, body: dict[str, object]) -> None:
    assert client.post("/_sandbox/faults", json=body).status_code == 400


def test_identity_latency_delays_identity_routes_only(client: httpx.Client) -> None:
    assert client.post("/_sandbox/latency", json={"identityMs": 300}).status_code == 204

    started = time.monotonic()
    client.get(DISCOVERY)
    identity_elapsed = time.monotonic() - started
    started = time.monotonic()
    client.get("/_sandbox/health")
    control_elapsed = time.monotonic() - started

    assert identity_elapsed >= 0.3
    assert control_elapsed < 0.3


def test_graph_latency_delays_graph_routes(client: httpx.Client) -> None:
    client.post("/_sandbox/latency", json={"graphMs": 300})

    started = time.monotonic()
    client.get("/v1.0/me")
    graph_elapsed = time.monotonic() - started
    started = time.monotonic()
    client.get(DISCOVERY)
    identity_elapsed = time.monotonic() - started

    assert graph_elapsed >= 0.3
    assert identity_elapsed < 0.3


def test_clock_offset_is_reported(client: httpx.Client) -> None:
    assert client.post("/_sandbox/clock", json={"offsetSeconds": 3600}).status_code == 204

    body = client.get("/_sandbox/clock").json()

    assert body["offsetSeconds"] == 3600
    assert body["now"].endswith("Z")


def test_clock_offset_moves_token_times(client: httpx.Client, sandbox: SandboxServer) -> None:
    before = unverified_claims(sandbox.user_token("alice@contoso.test"))["iat"]
    client.post("/_sandbox/clock", json={"offsetSeconds": 86400})

    after = unverified_claims(sandbox.user_token("alice@contoso.test"))["iat"]

    assert 86390 <= after - before <= 86410


def test_key_roll_answers_the_new_kid(client: httpx.Client) -> None:
    response = client.post("/_sandbox/keys/roll")

    assert response.status_code == 201
    assert response.json().keys() == {"kid"}


def test_switches_answer_204(client: httpx.Client) -> None:
    assert client.post("/_sandbox/identity/consent", json={"auto": True}).status_code == 204
    assert client.post("/_sandbox/identity/refresh-mode", json={"strict": False}).status_code == 204
    assert client.delete("/_sandbox/identity/authorize-error").status_code == 204
    assert client.delete("/_sandbox/identity/refresh-error").status_code == 204


def test_refresh_error_control_echoes_what_it_will_answer(client: httpx.Client) -> None:
    response = client.post(
        "/_sandbox/identity/refresh-error", json={"code": "AADSTS50173", "times": 3}
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["error"], body["code"], body["times"]) == ("invalid_grant", "AADSTS50173", 3)
    assert body["description"]
