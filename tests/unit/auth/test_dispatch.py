"""The one helper: every bearer operation gets its caller from the dispatcher."""

from __future__ import annotations

from types import SimpleNamespace

import azure.functions as func
import pytest

from shared.auth.caller import Caller
from shared.errors import Unauthorized
from shared.http.api import (
    ApiRequest,
    Operation,
    RequestLimits,
    Security,
    dispatch,
    json_response,
)
from shared.http.problems import DEFAULT_TYPE_BASE

ALICE = Caller("user", "tid", "alice-oid", "app", frozenset({"access_as_user"}), frozenset())


class RecordingAuthenticator:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, str | None]] = []

    async def authenticate(
        self, authorization: str | None, *, correlation_id: str | None = None
    ) -> Caller:
        self.calls.append((authorization, correlation_id))
        if authorization != "Bearer good":
            raise Unauthorized("The token is not a well-formed JWT.")
        return ALICE


@pytest.fixture
def authenticator() -> RecordingAuthenticator:
    return RecordingAuthenticator()


async def call(
    operation: Operation, req: func.HttpRequest, authenticator: RecordingAuthenticator
) -> func.HttpResponse:
    """Dispatch as a built blueprint does: the services come from the resolver it was given."""
    services = SimpleNamespace(callers=authenticator)
    return await dispatch(
        operation,
        req,
        resolve=lambda: services,  # type: ignore[arg-type,return-value]
        limits=RequestLimits(1024, DEFAULT_TYPE_BASE),
    )


async def whoami(request: ApiRequest) -> func.HttpResponse:
    return json_response({"oid": request.caller.oid})


def operation(security: Security) -> Operation:
    return Operation(whoami, "whoami", "me", ("GET",), "test", "system", security, {})


def get(authorization: str | None) -> func.HttpRequest:
    headers = {"x-correlation-id": "corr-7"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return func.HttpRequest("GET", "http://localhost/api/me", headers=headers, body=b"")


async def test_a_bearer_operation_hands_the_caller_to_its_handler(
    authenticator: RecordingAuthenticator,
) -> None:
    response = await call(operation(Security.BEARER), get("Bearer good"), authenticator)

    assert response.status_code == 200
    assert response.get_body() == b'{"oid": "alice-oid"}'
    assert authenticator.calls == [("Bearer good", "corr-7")]


async def test_a_refused_token_never_reaches_the_handler(
    authenticator: RecordingAuthenticator,
) -> None:
    response = await call(operation(Security.BEARER), get("Bearer bad"), authenticator)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


async def test_an_anonymous_operation_authenticates_nobody(
    authenticator: RecordingAuthenticator,
) -> None:
    response = await call(operation(Security.ANONYMOUS), get(None), authenticator)

    assert response.status_code == 401  # the handler asked for a caller it cannot have
    assert authenticator.calls == []
