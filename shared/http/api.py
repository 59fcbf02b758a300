"""Declaring HTTP operations once: the Functions route, its OpenAPI description, and the
request plumbing every handler shares (correlation id, body and query parsing, errors).

A handler is `async def handler(request: ApiRequest) -> func.HttpResponse`; it parses with
`request.json(Model)` / `request.query(Model)`, calls one service method on
`request.services` and returns `json_response(...)`. Any `ApiError` it raises is rendered by
the one renderer; anything else becomes a 500 with nothing internal in it.

The composition root hands every blueprint what requests need (`ApiBlueprint.build`): a
resolver of the worker's services, called only when a handler first asks for them (so
`/health` builds nothing), and the request limits from settings.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.auth.caller import Caller, CallerAuthenticator
from shared.errors import (
    ApiError,
    FieldError,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.correlation import HEADER as CORRELATION_HEADER
from shared.http.correlation import correlation_id_from
from shared.http.problems import (
    DEFAULT_TYPE_BASE,
    PROBLEM_JSON,
    render_problem,
    render_unexpected,
)
from shared.http.services import Services
from shared.wirejson import dumps_compact

M = TypeVar("M", bound=BaseModel)


class Security(StrEnum):
    ANONYMOUS = "anonymous"  # no credential (browser routes, liveness, the API description)
    BEARER = "bearer"  # an Entra ID access token for this API
    FUNCTION_KEY = "functionKey"  # a Functions host key (operators' endpoints)


@dataclass(frozen=True)
class HeaderParameter:
    """A request header an operation reads (documented in OpenAPI and the connector)."""

    name: str
    description: str


@dataclass(frozen=True)
class ResponseSpec:
    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"


Handler = Callable[["ApiRequest"], Awaitable[func.HttpResponse]]


@dataclass(frozen=True)
class Operation:
    """One HTTP operation as OpenAPI and the Functions host both see it."""

    handler: Handler
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
    auth_level: func.AuthLevel = func.AuthLevel.ANONYMOUS
    headers: tuple[HeaderParameter, ...] = ()
    # Browser pages answer their errors as HTML pages too (unless the caller asks for JSON).
    error_media_types: tuple[str, ...] = (PROBLEM_JSON,)


@dataclass(frozen=True)
class RequestLimits:
    max_body_bytes: int
    problem_type_base: str


# What a request gets when the composition root passes no limits (unit tests of handlers).
DEFAULT_LIMITS = RequestLimits(max_body_bytes=50 * 1024 * 1024, problem_type_base=DEFAULT_TYPE_BASE)

ServicesResolver = Callable[[], Services]


def _no_services() -> Services:
    raise RuntimeError("this operation was dispatched without services (see ApiBlueprint.build)")


@dataclass
class ApiRequest:
    """The incoming request plus what every handler needs from it."""

    raw: func.HttpRequest
    correlation_id: str
    limits: RequestLimits = DEFAULT_LIMITS
    authenticated: Caller | None = None
    resolve: ServicesResolver = field(default=_no_services, repr=False)

    @property
    def services(self) -> Services:
        """The worker's services (built on the first request that needs them)."""
        return self.resolve()

    @property
    def caller(self) -> Caller:
        """The authenticated caller (operations declared with `Security.BEARER` only)."""
        if self.authenticated is None:
            raise Unauthorized("This operation needs a bearer token.")
        return self.authenticated

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

    def form(self, model: type[M]) -> M:
        """An `application/x-www-form-urlencoded` body (the identity provider's form_post)."""
        content_type = (self.raw.headers.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise UnsupportedMediaType("Send the body as application/x-www-form-urlencoded.")
        body = self.raw.get_body()
        if len(body) > 64 * 1024:
            raise PayloadTooLarge("The form is larger than 64 KiB.")
        try:
            fields = dict(parse_qsl(body.decode("ascii"), max_num_fields=32))
        except (UnicodeDecodeError, ValueError):
            raise ValidationFailed(
                "The form is not valid.", errors=[FieldError(("body",), "invalid form")]
            ) from None
        return _validate(model, fields, "body")

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


def passthrough_response(payload: dict[str, Any], status: int = 200) -> func.HttpResponse:
    """A body made of Graph's data passed on (a page of messages, a message): the JSON
    `json_response` would write, keys in the same order and non-ASCII escaped the same way,
    without spaces after `,` and `:`. Why: written by orjson (shared.wirejson), because on a
    page of 50 messages the standard library's writer cost more than the rest of the app's
    own work (benchmarks/README.md, "Request overhead")."""
    return func.HttpResponse(
        body=dumps_compact(payload),
        status_code=status,
        headers={},
        mimetype="application/json",
        charset="utf-8",
    )


async def dispatch(
    operation: Operation,
    req: func.HttpRequest,
    *,
    resolve: ServicesResolver = _no_services,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> func.HttpResponse:
    correlation_id = correlation_id_from(req.headers)
    type_base = limits.problem_type_base
    try:
        request = ApiRequest(req, correlation_id, limits, resolve=resolve)
        if operation.security is Security.BEARER:
            # The one place callers are authenticated: no route can forget it.
            authenticator: CallerAuthenticator = request.services.callers
            request.authenticated = await authenticator.authenticate(
                req.headers.get("authorization"), correlation_id=correlation_id
            )
        response = await operation.handler(request)
    except ApiError as error:
        response = render_problem(error, correlation_id, type_base)
    except Exception as exc:  # the outermost edge: render, log, leak nothing
        response = render_unexpected(exc, correlation_id, type_base)
    response.headers[CORRELATION_HEADER] = correlation_id
    return response


class ApiBlueprint:
    """HTTP operations of one area: described for OpenAPI at import, turned into a
    `func.Blueprint` by the composition root once settings are known (function keys)."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
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
        headers: tuple[HeaderParameter, ...] = (),
        error_media_types: tuple[str, ...] = (PROBLEM_JSON,),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    handler=handler,
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
                    auth_level=auth_level,
                    headers=headers,
                    error_media_types=error_media_types,
                )
            )
            return handler

        return register

    def build(
        self,
        resolve: ServicesResolver,
        limits: RequestLimits,
        *,
        function_keys_on_api: bool = False,
    ) -> func.Blueprint:
        """The Functions blueprint whose handlers reach `resolve()`'s services and honour
        `limits`. With `function_keys_on_api`, bearer-protected routes also need a function
        key (layered on top of the token check, never instead of it)."""
        blueprint = func.Blueprint()  # type: ignore[no-untyped-call]
        for operation in self.operations:
            level = operation.auth_level
            if function_keys_on_api and operation.security is Security.BEARER:
                level = func.AuthLevel.FUNCTION
            blueprint.function_name(operation.operation_id)(
                blueprint.route(
                    route=operation.route, methods=list(operation.methods), auth_level=level
                )(_entry_point(operation, resolve, limits))
            )
        return blueprint


def _entry_point(
    operation: Operation, resolve: ServicesResolver, limits: RequestLimits
) -> Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]:
    async def function(req: func.HttpRequest) -> func.HttpResponse:
        return await dispatch(operation, req, resolve=resolve, limits=limits)

    # The Functions worker binds by parameter name and checks the annotations, so the entry
    # point gets its own concrete signature instead of functools.wraps'.
    function.__name__ = function.__qualname__ = operation.operation_id
    function.__doc__ = operation.summary
    function.__annotations__ = {"req": func.HttpRequest, "return": func.HttpResponse}
    return function
