"""Continuous Access Evaluation over real HTTP (dev host + sandbox + Azurite): a Graph claims
challenge is answered with exactly one claims-carrying refresh and one retry; when Entra wants
the person, the connection answers 409 reauth_required with a loginUrl that carries the
claims, and signing in through it satisfies them."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.app import AppServer
from tests.support.browser import browser
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
INBOX = "/v1.0/me/mailFolders/inbox/messages"


@pytest.fixture
def alice(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, ALICE)


def _demand(sandbox: SandboxServer, mode: str) -> None:
    with sandbox.client() as control:
        response = control.post("/_sandbox/claims-challenge", json={"user": ALICE, "mode": mode})
    assert response.status_code == 201, response.text


def _demands(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        return list(control.get("/_sandbox/claims-challenge").json())


def _inbox_requests(sandbox: SandboxServer) -> int:
    with sandbox.client() as control:
        return sum(1 for r in control.get("/_sandbox/requests").json() if r["path"] == INBOX)


def _clear_requests(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()


def test_a_refresh_challenge_is_answered_with_one_refresh_and_one_retry(
    alice: Caller, sandbox: SandboxServer
) -> None:
    assert alice.get("/messages", top=1).status_code == 200  # a CAE-capable token is cached
    _demand(sandbox, "refresh")
    _clear_requests(sandbox)

    response = alice.get("/messages", top=1)

    assert response.status_code == 200, response.text
    demand = _demands(sandbox)[0]
    assert demand["challenged"] == 1
    assert demand["claimsRefreshes"] == 1
    assert demand["satisfied"] is True
    assert _inbox_requests(sandbox) == 2  # the challenged request and its one retry


def test_an_interaction_challenge_needs_the_person_and_the_login_url_carries_the_claims(
    alice: Caller, sandbox: SandboxServer, app_server: AppServer
) -> None:
    assert alice.get("/messages", top=1).status_code == 200
    _demand(sandbox, "interaction")
    _clear_requests(sandbox)

    refused = alice.get("/messages", top=1)
    again = alice.get("/messages", top=1)

    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "reauth_required"
    demand = _demands(sandbox)[0]
    assert demand["challenged"] == 1
    assert demand["claimsRefreshes"] == 1  # one refresh with the claims; no loop
    assert _inbox_requests(sandbox) == 1  # nothing to retry with
    # The connection stays reauth_required and keeps the claims for later callers too.
    assert again.status_code == 409
    assert again.json()["loginUrl"] == refused.json()["loginUrl"]
    login = urlsplit(refused.json()["loginUrl"])
    query = parse_qs(login.query)
    assert query["loginHint"] == [ALICE]
    encoded = query["claims"][0]
    claims = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert claims == demand["claims"]


def test_signing_in_through_the_login_url_satisfies_the_claims(
    alice: Caller, sandbox: SandboxServer, app_server: AppServer
) -> None:
    assert alice.get("/messages", top=1).status_code == 200
    _demand(sandbox, "interaction")
    login_url = alice.get("/messages", top=1).json()["loginUrl"]

    with browser(sandbox) as person:
        login = person.get(login_url, follow_redirects=False)
        authorize = urlsplit(login.headers["location"])
        page = person.get(login.headers["location"])
    after = alice.get("/messages", top=1)

    assert json.loads(parse_qs(authorize.query)["claims"][0])["access_token"]["acrs"] == {
        "essential": True,
        "value": "c1",
    }
    assert page.status_code == 200, page.text
    assert _demands(sandbox)[0]["satisfied"] is True
    assert after.status_code == 200, after.text


def test_a_malformed_claims_parameter_on_login_is_refused(app_server: AppServer) -> None:
    with app_server.client() as client:
        response = client.get(
            "/api/auth/login", params={"loginHint": ALICE, "claims": "not-base64-json!"}
        )

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
