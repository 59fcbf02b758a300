"""Graph error answers → the API's typed errors, with Graph's code and nothing else of Graph's."""

from __future__ import annotations

import json

import pytest

from shared.errors import (
    ApiError,
    Conflict,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.graph.errors import GraphUnauthorized, error_for, graph_code_of


def body(code: str) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": "dave@northwind.test: Re: salary review"}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "code", "headers", "expected", "http_status"),
    [
        (400, "ErrorInvalidIdMalformed", {}, ValidationFailed, 400),
        (400, "ErrorInvalidRecipients", {}, ValidationFailed, 400),
        (400, "BadRequest", {}, GraphError, 502),
        (400, "InefficientFilter", {}, GraphError, 502),
        (401, "InvalidAuthenticationToken", {}, GraphUnauthorized, 502),
        (403, "ErrorAccessDenied", {}, Forbidden, 403),
        (404, "ErrorItemNotFound", {}, NotFound, 404),
        (404, "ResourceNotFound", {}, NotFound, 404),
        (404, "ErrorInvalidUser", {}, NotFound, 404),
        (409, "ErrorFolderExists", {}, Conflict, 409),
        (413, "RequestEntityTooLarge", {}, PayloadTooLarge, 413),
        (429, "ApplicationThrottled", {"retry-after": "7"}, GraphThrottled, 429),
        (503, "ServiceUnavailable", {"retry-after": "5"}, GraphThrottled, 503),
        (504, "GatewayTimeout", {"retry-after": "5"}, GraphThrottled, 503),
        (503, "ServiceUnavailable", {}, GraphUnavailable, 503),
        (504, "GatewayTimeout", {}, GraphUnavailable, 503),
        (502, "BadGateway", {}, GraphUnavailable, 503),
        (500, "InternalServerError", {}, GraphError, 502),
        (405, "MethodNotAllowed", {}, GraphError, 502),
        (412, "ErrorIrresolvableConflict", {}, GraphError, 502),
    ],
)
def test_mapping_table(
    status: int,
    code: str,
    headers: dict[str, str],
    expected: type[ApiError],
    http_status: int,
) -> None:
    error = error_for(status, headers, body(code))

    assert type(error) is expected
    assert error.http_status == http_status
    assert error.extensions["graphCode"] == code
    assert "dave" not in error.detail and "salary" not in error.detail


def test_throttled_keeps_graphs_retry_after() -> None:
    error = error_for(429, {"retry-after": "7"}, body("ApplicationThrottled"))

    assert error.headers["Retry-After"] == "7"


def test_a_body_that_is_not_graphs_error_json_gives_the_http_status_as_code() -> None:
    error = error_for(500, {}, b"<html>oops</html>")

    assert isinstance(error, GraphError)
    assert error.extensions["graphCode"] == "HTTP500"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"error": "x"}',
        b'{"error": {"code": 5}}',
        b'{"error": {"code": "a\\nb"}}',
        json.dumps({"error": {"code": "x" * 500}}).encode(),
    ],
)
def test_odd_bodies_never_leak_into_graph_code(raw: bytes) -> None:
    assert graph_code_of(raw) is None
