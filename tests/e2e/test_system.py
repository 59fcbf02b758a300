"""The app over real HTTP (dev host + sandbox + Azurite): the system endpoints."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from tests.support.app import FUNCTION_KEY, AppServer, start_app
from tests.support.processes import free_port


def test_health_answers_200_over_http(app_server: AppServer) -> None:
    with app_server.client() as client:
        response = client.get("/api/health", headers={"x-correlation-id": "e2e-health-1"})

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-correlation-id"] == "e2e-health-1"


def test_readiness_needs_a_function_key(app_server: AppServer) -> None:
    with app_server.client() as client:
        anonymous = client.get("/api/health/ready")
        keyed = client.get("/api/health/ready", headers={"x-functions-key": FUNCTION_KEY})

    assert anonymous.status_code == 401
    assert keyed.status_code == 200
    assert keyed.json() == {
        "status": "ready",
        "checks": {"tableStorage": "ok", "keyProvider": "ok", "appCredential": "ok"},
    }


def test_openapi_document_is_served_and_valid(app_server: AppServer) -> None:
    with app_server.client() as client:
        response = client.get("/api/openapi.json")

    assert response.status_code == 200
    validate(response.json())
    assert "/health/ready" in response.json()["paths"]


def test_readiness_is_503_problem_json_when_table_storage_is_down(
    settings_env: dict[str, str], servers_dir: Path
) -> None:
    dead_port = free_port()  # nothing listens there: Table Storage is "down"
    settings = {
        **settings_env,
        "STORAGE_CONNECTION_STRING": re.sub(
            r"TableEndpoint=http://127\.0\.0\.1:\d+",
            f"TableEndpoint=http://127.0.0.1:{dead_port}",
            settings_env["STORAGE_CONNECTION_STRING"],
        ),
        "STORAGE_TIMEOUT_SECONDS": "2",
    }
    app = start_app(settings, servers_dir)
    try:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            response = client.get("/api/health/ready", params={"code": FUNCTION_KEY})
    finally:
        app.stop()

    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "dependency_unavailable"
    assert response.json()["unavailable"] == ["tableStorage"]
