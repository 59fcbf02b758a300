"""Errors: every failure is problem+json with a stable code and the correlation id."""

from __future__ import annotations

import json
import logging
import uuid

import azure.functions as func
import pytest
from pydantic import Field

from shared.errors import (
    ConnectionNotFound,
    GraphError,
    GraphThrottled,
    MethodNotAllowed,
    ReauthRequired,
    ValidationFailed,
    all_error_types,
)
from shared.http.api import (
    DEFAULT_LIMITS,
    ApiRequest,
    Handler,
    Operation,
    RequestLimits,
    Security,
)
from shared.http.api import dispatch as dispatch_operation
from shared.http.correlation import correlation_id_from
from shared.http.models import ApiModel
from shared.http.problems import DEFAULT_TYPE_BASE


def make_request(
    body: bytes = b"", headers: dict[str, str] | None = None, method: str = "POST"
) -> func.HttpRequest:
    return func.HttpRequest(method, "http://127.0.0.1/api/x", body=body, headers=headers or {})


async def dispatch(
    handler: Handler, req: func.HttpRequest, limits: RequestLimits = DEFAULT_LIMITS
) -> func.HttpResponse:
    operation = Operation(handler, "op", "x", ("POST",), "test", "test", Security.ANONYMOUS, {})
    return await dispatch_operation(operation, req, limits=limits)


class Draft(ApiModel):
    subject: str = Field(max_length=10)
    importance: int = 1


async def test_domain_error_renders_problem_json() -> None:
    async def handler(request: ApiRequest) -> func.HttpResponse:
        raise ConnectionNotFound("No such connection.")

    response = await dispatch(handler, make_request(headers={"x-correlation-id": "abc-123"}))

    body = json.loads(response.get_body())
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.headers["x-correlation-id"] == "abc-123"
    assert body["code"] == "connection_not_found"
    assert body["status"] == 404
    assert body["correlationId"] == "abc-123"
    assert body["type"].endswith("#connection_not_found")
    assert body["detail"] == "No such connection."


async def test_unexpected_exception_is_500_with_nothing_internal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = "eyJhbGciOi" + ".secret"  # built at run time: the traceback shows source lines

    async def handler(request: ApiRequest) -> func.HttpResponse:
        raise RuntimeError(f"token={token} at /srv/app/shared/x.py")

    with caplog.at_level(logging.ERROR):
        response = await dispatch(handler, make_request())

    body = json.loads(response.get_body())
    assert response.status_code == 500
    assert body["code"] == "internal_error"
    assert "eyJhbGciOi" not in response.get_body().decode()
    assert "x.py" not in response.get_body().decode()
    # Logged with the correlation id the caller saw, but without the exception's message.
    assert body["correlationId"] in caplog.text
    assert "eyJhbGciOi" not in caplog.text


@pytest.mark.parametrize(
    ("header", "value", "kept"),
    [
        ("x-correlation-id", "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10", True),
        ("client-request-id", "flow-run.42:step_7", True),
        ("x-correlation-id", "bad value\r\nSet-Cookie: x=1", False),
        ("x-correlation-id", "x" * 65, False),
        ("x-correlation-id", "", False),
    ],
)
def test_correlation_id_is_kept_only_when_sane(header: str, value: str, kept: bool) -> None:
    result = correlation_id_from({header: value})

    if kept:
        assert result == value
    else:
        assert result != value
        uuid.UUID(result)


async def test_every_response_carries_a_correlation_id() -> None:
    async def handler(request: ApiRequest) -> func.HttpResponse:
        return func.HttpResponse("ok")

    response = await dispatch(handler, make_request())

    uuid.UUID(response.headers["x-correlation-id"])


async def test_body_validation_lists_field_errors_without_values() -> None:
    async def handler(request: ApiRequest) -> func.HttpResponse:
        request.json(Draft)
        return func.HttpResponse("unreachable")

    payload = {"subject": "private subject line", "importance": "high", "unknown": 1}
    response = await dispatch(
        handler,
        make_request(json.dumps(payload).encode(), {"content-type": "application/json"}),
    )

    body = json.loads(response.get_body())
    assert response.status_code == 400
    assert body["code"] == "validation_failed"
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert locs == {("body", "subject"), ("body", "importance"), ("body", "unknown")}
    assert "private subject line" not in response.get_body().decode()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b'{"subject": "x"', "application/json", 400, "validation_failed"),
        (b"\xff\xfe", "application/json", 400, "validation_failed"),
        (b'{"subject": "x"}', "text/plain", 415, "unsupported_media_type"),
        (b'{"subject": "x"}', "", 415, "unsupported_media_type"),
        (b'{"subject": "' + b"x" * 100 + b'"}', "application/json", 413, "payload_too_large"),
    ],
)
async def test_malformed_bodies_get_clear_codes(
    body: bytes, content_type: str, status: int, code: str
) -> None:
    async def handler(request: ApiRequest) -> func.HttpResponse:
        request.json(Draft)
        return func.HttpResponse("unreachable")

    response = await dispatch(
        handler,
        make_request(body, {"content-type": content_type}),
        RequestLimits(64, DEFAULT_TYPE_BASE),
    )

    assert response.status_code == status
    assert json.loads(response.get_body())["code"] == code


def test_errors_carry_their_extensions_and_headers() -> None:
    from shared.http.problems import problem_body

    reauth = problem_body(ReauthRequired("https://app/api/auth/login"), "c", "t#")
    graph = problem_body(GraphError("ErrorItemNotFound"), "c", "t#")
    throttled = GraphThrottled(30)
    not_allowed = MethodNotAllowed(["GET", "POST"])

    assert reauth["loginUrl"] == "https://app/api/auth/login"
    assert reauth["status"] == 409
    assert graph["graphCode"] == "ErrorItemNotFound"
    assert graph["status"] == 502
    assert throttled.headers["Retry-After"] == "30"
    assert not_allowed.headers["Allow"] == "GET, POST"


def test_error_codes_are_the_documented_ones() -> None:
    codes = {cls.code: cls.status for cls in all_error_types()}

    assert {
        "validation_failed": 400,
        "invalid_cursor": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "not_found": 404,
        "connection_not_found": 404,
        "method_not_allowed": 405,
        "conflict": 409,
        "reauth_required": 409,
        "payload_too_large": 413,
        "unsupported_media_type": 415,
        "graph_throttled": 429,
        "graph_error": 502,
        "graph_unavailable": 503,
        "storage_unavailable": 503,
        "internal_error": 500,
    }.items() <= codes.items()
    assert ValidationFailed.code == "validation_failed"


def test_every_error_code_is_documented() -> None:
    from tests.support.processes import ROOT

    catalogue = (ROOT / "docs" / "errors.md").read_text()

    missing = [cls.code for cls in all_error_types() if f'id="{cls.code}"' not in catalogue]
    assert missing == []
