"""Declaring HTTP operations once: the Functions route, its OpenAPI description, and the
request plumbing every handler shares (correlation id, body and query parsing, errors).

A handler is `async def handler(request: ApiRequest) -> func.HttpResponse`; it parses with
`request.json(Model)` / `request.query(Model)`, calls one service method and returns
`json_response(...)`. Any `ApiError` it raises is rendered by the one renderer; anything
else becomes a 500 with nothing internal in it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.errors import (
    ApiError,
    FieldError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.correlation import HEADER as CORRELATION_HEADER
from shared.http.correlation import correlation_id_from
from shared.http.problems import DEFAULT_TYPE_BASE, render_problem, render_unexpected

M = TypeVar("M", bound=BaseModel)


class Security(StrEnum):
    ANONYMOUS = "anonymous"  # no credential (browser routes, liveness, the API description)
    BEARER = "bearer"  # an Entra ID access token for this API
    FUNCTION_KEY = "functionKey"  # a Functions host key (operators' endpoints)


@dataclass(frozen=True)
class ResponseSpec:
    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    """One HTTP operation as OpenAPI and the Functions host both see it."""

    operation_id: str
    route: str
    methods: tuple[str, ...]
    summary: str
    tag: str
    security: Security
    responses: dict[int, ResponseSpec]
    request_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    errors: tuple[type[ApiError], ...] = ()


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int
    problem_type_base: str


# Filled in by the composition root once settings are known; the defaults keep handlers
# usable in unit tests that build no container.
_limits = RequestLimits(max_body_bytes=50 * 1024 * 1024, problem_type_base=DEFAULT_TYPE_BASE)


def configure_requests(limits: RequestLimits) -> None:
    global _limits
    _limits = limits


@dataclass
class ApiRequest:
    """The incoming request plus what every handler needs from it."""

    raw: func.HttpRequest
    correlation_id: str
    limits: RequestLimits = field(default_factory=lambda: _limits)

    def route(self, name: str) -> str:
        return str(self.raw.route_params.get(name, ""))

    def json(self, model: type[M]) -> M:
        content_type = (self.raw.headers.get("content-type") or "").split(";")[0].strip().lower()
        if not (content_type == "application/json" or content_type.endswith("+json")):
            raise UnsupportedMediaType("Send the body as application/json.")
        body = self.raw.get_body()
        if len(body) > self.limits.max_body_bytes:
            raise PayloadTooLarge(f"The body is larger than {self.limits.max_body_bytes} bytes.")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed(
                "The body is not valid JSON.", errors=[FieldError(("body",), "invalid JSON")]
            ) from None
        return _validate(model, data, "body")

    def query(self, model: type[M]) -> M:
        return _validate(model, dict(self.raw.params), "query")


def _validate(model: type[M], data: Any, where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # include_input=False: a rejected value may be a secret or personal data.
        errors = [
            FieldError((where, *e["loc"]), e["msg"])
            for e in exc.errors(include_input=False, include_url=False)
        ]
        raise ValidationFailed(f"The request's {where} is not valid.", errors=errors) from None


def json_response(
    payload: BaseModel | dict[str, Any] | list[Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> func.HttpResponse:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(by_alias=True, exclude_none=False)
    else:
        body = json.dumps(payload)
    return func.HttpResponse(
        body=body,
        status_code=status,
        headers=headers or {},
        mimetype="application/json",
        charset="utf-8",
    )


Handler = Callable[[ApiRequest], Awaitable[func.HttpResponse]]


async def dispatch(handler: Handler, req: func.HttpRequest) -> func.HttpResponse:
    correlation_id = correlation_id_from(req.headers)
    type_base = _limits.problem_type_base
    try:
        response = await handler(ApiRequest(req, correlation_id))
    except ApiError as error:
        response = render_problem(error, correlation_id, type_base)
    except Exception as exc:  # the outermost edge: render, log, leak nothing
        response = render_unexpected(exc, correlation_id, type_base)
    response.headers[CORRELATION_HEADER] = correlation_id
    return response


class ApiBlueprint:
    """A `func.Blueprint` whose routes also describe themselves for OpenAPI."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
        self.operations: list[Operation] = []

    def route(
        self,
        route: str,
        *,
        methods: tuple[str, ...],
        operation_id: str,
        summary: str,
        responses: dict[int, ResponseSpec],
        security: Security = Security.BEARER,
        auth_level: func.AuthLevel = func.AuthLevel.ANONYMOUS,
        request_model: type[BaseModel] | None = None,
        query_model: type[BaseModel] | None = None,
        errors: tuple[type[ApiError], ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def function(req: func.HttpRequest) -> func.HttpResponse:
                return await dispatch(handler, req)

            # The Functions worker binds by parameter name and checks the annotations, so the
            # entry point gets its own concrete signature instead of functools.wraps'.
            function.__name__ = function.__qualname__ = operation_id
            function.__doc__ = summary
            function.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}
            self.blueprint.function_name(operation_id)(
                self.blueprint.route(route=route, methods=list(methods), auth_level=auth_level)(
                    function
                )
            )
            self.operations.append(
                Operation(
                    operation_id=operation_id,
                    route=route,
                    methods=methods,
                    summary=summary,
                    tag=self.tag,
                    security=security,
                    responses=responses,
                    request_model=request_model,
                    query_model=query_model,
                    errors=errors,
                )
            )
            return handler

        return register
