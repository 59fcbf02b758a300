"""The API's own description: valid OpenAPI 3.1, covering exactly the HTTP functions."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import azure.functions as func
from openapi_spec_validator import validate

from shared.http.openapi import openapi_path
from tests.support.functions import app_functions


def fetch_document() -> dict[str, Any]:
    handler = app_functions()["openapi"].get_user_function()
    request = func.HttpRequest("GET", "http://127.0.0.1/api/openapi.json", body=b"")
    response = asyncio.run(handler(request))
    assert response.status_code == 200
    return dict(json.loads(response.get_body()))


def test_document_is_valid_openapi_3_1() -> None:
    document = fetch_document()

    validate(document)  # raises on any violation
    assert document["openapi"] == "3.1.0"


def test_every_http_function_is_described_and_nothing_else() -> None:
    document = fetch_document()
    described = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    registered = {
        (openapi_path(fn.get_trigger().route), str(m.value if hasattr(m, "value") else m))
        for fn in app_functions().values()
        if fn.is_http_function()
        for m in fn.get_trigger().methods
    }

    assert described == registered


def test_errors_are_problem_json_and_protected_routes_declare_security() -> None:
    document = fetch_document()
    ready = document["paths"]["/health/ready"]["get"]
    health = document["paths"]["/health"]["get"]

    assert "application/problem+json" in ready["responses"]["503"]["content"]
    assert ready["security"] == [{"functionKey": []}]
    assert health["security"] == []


def test_host_key_operations_document_the_hosts_401() -> None:
    # Found by tests/security/test_fuzz_api.py: the host answers 401 without the key.
    document = fetch_document()

    ready = document["paths"]["/health/ready"]["get"]

    assert "401" in ready["responses"]


def test_path_templates_become_openapi_paths() -> None:
    assert openapi_path("connections/{connectionId}") == "/connections/{connectionId}"
    assert openapi_path("files/{*rest}") == "/files/{rest}"
    assert openapi_path("items/{id:int}/{tail?}") == "/items/{id}/{tail}"
