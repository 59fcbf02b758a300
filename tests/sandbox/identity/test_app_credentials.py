"""The app's credentials besides a secret: the managed identity endpoint (App Service's
shape), federated client assertions checked against registered records with Entra's error
codes, and certificate assertions — driven with MSAL Python, unmodified, where it applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests

from tests.support.certificates import self_signed
from tests.support.sandbox import SandboxServer


@pytest.fixture
def session(sandbox: SandboxServer) -> Iterator[requests.Session]:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override `verify` (sandbox.md)
    session.verify = str(sandbox.ca_bundle_path)
    yield session
    session.close()


def _control(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with sandbox.client() as client:
        response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _identity(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A user-assigned identity, with the environment the Functions host would provide."""
    identity = _control(sandbox, "/_sandbox/managed-identity", {})
    monkeypatch.setenv("IDENTITY_ENDPOINT", identity["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", identity["identityHeader"])
    monkeypatch.delenv("IMDS_ENDPOINT", raising=False)
    monkeypatch.delenv("MSI_ENDPOINT", raising=False)
    return identity


def _federated_app(
    sandbox: SandboxServer, session: requests.Session, client_id: str
) -> msal.ConfidentialClientApplication:
    mi = msal.ManagedIdentityClient(
        msal.UserAssignedManagedIdentity(client_id=client_id), http_client=session
    )

    def assertion() -> str:
        result = mi.acquire_token_for_client(resource="api://AzureADTokenExchange")
        return str(result["access_token"])

    return msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential={"client_assertion": assertion},
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=session,
    )


def test_identity_endpoint_answers_as_app_service_does(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = _identity(sandbox, monkeypatch)
    with sandbox.client() as client:
        response = client.get(
            "/msi/token",
            params={
                "resource": "api://AzureADTokenExchange",
                "api-version": "2019-08-01",
                "client_id": identity["clientId"],
            },
            headers={"X-IDENTITY-HEADER": identity["identityHeader"]},
        )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert isinstance(body["expires_on"], str) and body["expires_on"].isdigit()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "api://AzureADTokenExchange"
    assert claims["iss"] == identity["issuer"]
    assert claims["sub"] == identity["principalId"]


@pytest.mark.parametrize(
    ("header", "client_id", "status"),
    [("wrong-header", None, 401), (None, "0f0e0d0c-0b0a-0908-0706-050403020100", 400)],
)
def test_identity_endpoint_refuses_a_wrong_header_or_an_unknown_identity(
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    header: str | None,
    client_id: str | None,
    status: int,
) -> None:
    identity = _identity(sandbox, monkeypatch)
    with sandbox.client() as client:
        response = client.get(
            "/msi/token",
            params={
                "resource": "api://AzureADTokenExchange",
                "api-version": "2019-08-01",
                "client_id": client_id or identity["clientId"],
            },
            headers={"X-IDENTITY-HEADER": header or identity["identityHeader"]},
        )

    assert response.status_code == status
    assert response.json()["statusCode"] == status
    assert "access_token" not in response.json()


def test_msal_exchanges_the_managed_identity_token_for_an_app_token(
    sandbox: SandboxServer, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = _identity(sandbox, monkeypatch)
    _control(
        sandbox,
        "/_sandbox/identity/federated-credentials",
        {"issuer": identity["issuer"], "subject": identity["subject"]},
    )
    app = _federated_app(sandbox, session, identity["clientId"])

    result = app.acquire_token_for_client([f"{sandbox.client_id}/.default"])

    assert "access_token" in result, result.get("error_description")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("issuer", "https://issuer.example/", 700211),
        ("subject", "00000000-0000-0000-0000-000000000001", 700213),
        ("audiences", ["api://SomethingElse"], 700212),
    ],
)
def test_a_federated_record_that_does_not_match_is_refused_with_entras_code(
    sandbox: SandboxServer,
    session: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: Any,
    code: int,
) -> None:
    identity = _identity(sandbox, monkeypatch)
    record: dict[str, Any] = {"issuer": identity["issuer"], "subject": identity["subject"]}
    record[field] = value
    _control(sandbox, "/_sandbox/identity/federated-credentials", record)
    app = _federated_app(sandbox, session, identity["clientId"])

    result = app.acquire_token_for_client([f"{sandbox.client_id}/.default"])

    assert "access_token" not in result
    assert result["error_codes"] == [code]
    assert f"AADSTS{code}: No matching federated identity record" in result["error_description"]


def test_msal_certificate_assertion_is_accepted_for_a_registered_certificate(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    private_key, certificate = self_signed()
    registered = _control(sandbox, "/_sandbox/identity/certificates", {"certificate": certificate})
    app = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential={"private_key": private_key, "public_certificate": certificate},
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=session,
    )

    result = app.acquire_token_for_client([f"{sandbox.client_id}/.default"])

    assert "access_token" in result, result.get("error_description")
    assert set(registered) == {"x5t", "x5t#S256"}


def test_an_unregistered_certificate_is_refused_with_700027(
    sandbox: SandboxServer, session: requests.Session
) -> None:
    _, registered = self_signed()
    _control(sandbox, "/_sandbox/identity/certificates", {"certificate": registered})
    private_key, other = self_signed()
    app = msal.ConfidentialClientApplication(
        sandbox.client_id,
        client_credential={"private_key": private_key, "public_certificate": other},
        authority=sandbox.authority,
        instance_discovery=False,
        http_client=session,
    )

    result = app.acquire_token_for_client([f"{sandbox.client_id}/.default"])

    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


def test_a_reset_forgets_credentials_and_identities(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = _identity(sandbox, monkeypatch)
    _control(
        sandbox,
        "/_sandbox/identity/federated-credentials",
        {"issuer": identity["issuer"], "subject": identity["subject"]},
    )

    sandbox.reset()

    with sandbox.client() as client:
        records = client.get("/_sandbox/identity/federated-credentials").json()
        token = client.get(
            "/msi/token",
            params={
                "resource": "api://AzureADTokenExchange",
                "api-version": "2019-08-01",
                "client_id": identity["clientId"],
            },
            headers={"X-IDENTITY-HEADER": identity["identityHeader"]},
        )
    assert records == []
    assert token.status_code == 400


def test_control_calls_refuse_what_is_not_a_certificate_or_a_record(
    sandbox: SandboxServer,
) -> None:
    with sandbox.client() as client:
        not_pem = client.post(
            "/_sandbox/identity/certificates", json={"certificate": "-----BEGIN nothing"}
        )
        no_subject = client.post(
            "/_sandbox/identity/federated-credentials", json={"issuer": "https://i.example/"}
        )
        bad_identity = client.post("/_sandbox/managed-identity", json={"clientId": "nope"})

    assert not_pem.status_code == 400
    assert no_subject.status_code == 400
    assert bad_identity.status_code == 400
