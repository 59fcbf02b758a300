"""System endpoints: liveness, readiness and the API's own description."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import azure.functions as func

from shared.container import get_container
from shared.errors import DependencyUnavailable
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security, json_response
from shared.http.models import ApiModel

api = ApiBlueprint("system")


class Health(ApiModel):
    status: Literal["ok"] = "ok"


class ReadinessReport(ApiModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok"]]


class OpenApiDocument(ApiModel):
    """The OpenAPI 3.1 document of this API."""

    model_config = {"extra": "allow"}
    openapi: str


@api.route(
    "health",
    methods=("GET",),
    operation_id="health",
    summary="Liveness: the worker is up (no dependency is called).",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("Alive", Health)},
)
async def health(request: ApiRequest) -> func.HttpResponse:
    return json_response(Health())


@api.route(
    "health/ready",
    methods=("GET",),
    operation_id="health_ready",
    summary="Readiness: Table Storage, the key provider and the app credential work.",
    security=Security.FUNCTION_KEY,
    auth_level=func.AuthLevel.FUNCTION,
    responses={200: ResponseSpec("Ready", ReadinessReport)},
    errors=(DependencyUnavailable,),
)
async def health_ready(request: ApiRequest) -> func.HttpResponse:
    readiness = await get_container().health.readiness()
    return json_response(ReadinessReport(checks=readiness.checks))


# The document is assembled once per worker from every registered blueprint; the composition
# root hands over the source (see function_app.py), so this module imports no other area.
_openapi_source: Callable[[], dict[str, Any]] | None = None
_openapi_cache: dict[str, Any] | None = None


def publish_openapi(source: Callable[[], dict[str, Any]]) -> None:
    global _openapi_source, _openapi_cache
    _openapi_source, _openapi_cache = source, None


@api.route(
    "openapi.json",
    methods=("GET",),
    operation_id="openapi",
    summary="The OpenAPI 3.1 description of this API.",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("The OpenAPI document", OpenApiDocument)},
)
async def openapi(request: ApiRequest) -> func.HttpResponse:
    global _openapi_cache
    if _openapi_cache is None:
        assert _openapi_source is not None, "function_app.py publishes the document"
        _openapi_cache = _openapi_source()
    return json_response(_openapi_cache)
