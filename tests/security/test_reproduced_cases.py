"""Findings of the API fuzzing (test_fuzz_api.py), each kept as a plain test over real HTTP so
that it stays fixed whatever the fuzzer happens to generate next time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.app import AppServer
from tests.support.browser import connect
from tests.support.sandbox import SandboxServer

CALLER = "bob@contoso.test"


@pytest.fixture(scope="module")
def document(app_server: AppServer) -> dict[str, Any]:
    with app_server.client() as client:
        return dict(client.get("/api/openapi.json").json())


@pytest.fixture(scope="module")
def mailbox(app_server: AppServer, sandbox_server: SandboxServer) -> Iterator[httpx.Client]:
    sandbox_server.reset()
    connection_id = connect(app_server, sandbox_server, CALLER)
    with httpx.Client(
        base_url=f"{app_server.url}/api/connections/{connection_id}",
        headers={"Authorization": f"Bearer {sandbox_server.user_token(CALLER)}"},
        timeout=60,
    ) as client:
        yield client
        client.delete("")


def test_sending_a_message_without_recipients_is_the_callers_400_not_a_502(
    mailbox: httpx.Client,
) -> None:
    # Was: 502 graph_error (Graph's ErrorInvalidRequest, blamed on us).
    response = mailbox.post("/messages/send", json={})

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed"


def test_callback_posted_without_a_form_is_a_documented_415(
    app_server: AppServer, document: dict[str, Any]
) -> None:
    with app_server.client() as client:
        response = client.post("/api/auth/callback")

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert "415" in document["paths"]["/auth/callback"]["post"]["responses"]


def test_callback_errors_as_html_pages_are_documented(
    app_server: AppServer, document: dict[str, Any]
) -> None:
    with app_server.client() as client:
        response = client.get("/api/auth/callback")

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    documented = document["paths"]["/auth/callback"]["get"]["responses"]["400"]["content"]
    assert set(documented) == {"application/problem+json", "text/html"}


def test_readiness_without_the_host_key_is_a_documented_401(
    app_server: AppServer, document: dict[str, Any]
) -> None:
    with app_server.client() as client:
        response = client.get("/api/health/ready")

    assert response.status_code == 401
    assert "401" in document["paths"]["/health/ready"]["get"]["responses"]
