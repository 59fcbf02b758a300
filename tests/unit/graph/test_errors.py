"""Graph error answers → the API's typed errors, with Graph's code and nothing else of Graph's."""

from __future__ import annotations

import json

import pytest

from shared.errors import (
    ApiError,
    Conflict,
    Forbidden,
    GraphError,
    GraphFailure,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.graph.errors import (
    GraphConflict,
    GraphForbidden,
    GraphNotFound,
    GraphPayloadTooLarge,
    GraphUnauthorized,
    GraphValidationFailed,
    error_for,
    graph_code_of,
)


def body(code: str) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": "dave@northwind.test: Re: salary review"}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "code", "headers", "expected", "http_status"),
    [
        (400, "ErrorInvalidIdMalformed", {}, GraphValidationFailed, 400),
        (400, "ErrorInvalidRecipients", {}, GraphValidationFailed, 400),
        (400, "BadRequest", {}, GraphError, 502),
        (400, "InefficientFilter", {}, GraphError, 502),
        (401, "InvalidAuthenticationToken", {}, GraphUnauthorized, 502),
        (403, "ErrorAccessDenied", {}, GraphForbidden, 403),
        (404, "ErrorItemNotFound", {}, GraphNotFound, 404),
        (404, "ResourceNotFound", {}, GraphNotFound, 404),
        (404, "ErrorInvalidUser", {}, GraphNotFound, 404),
        (409, "ErrorFolderExists", {}, GraphConflict, 409),
        (413, "RequestEntityTooLarge", {}, GraphPayloadTooLarge, 413),
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
    assert isinstance(error, GraphFailure)  # whatever it answers as, it says it came from Graph
    assert error.http_status == http_status
    assert error.extensions["graphCode"] == code
    assert "dave" not in error.detail and "salary" not in error.detail


@pytest.mark.parametrize(
    ("status", "public", "code"),
    [
        (400, ValidationFailed, "validation_failed"),
        (403, Forbidden, "forbidden"),
        (404, NotFound, "not_found"),
        (409, Conflict, "conflict"),
        (413, PayloadTooLarge, "payload_too_large"),
    ],
)
def test_graphs_4xx_answer_as_the_public_error_with_its_code(
    status: int, public: type[ApiError], code: str
) -> None:
    error = error_for(status, {}, body("ErrorInvalidIdMalformed" if status == 400 else "X"))

    assert isinstance(error, public)
    assert error.code == code


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
