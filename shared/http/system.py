"""System endpoints: liveness, readiness and the API's own description."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import azure.functions as func

from shared.errors import DependencyUnavailable
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security, json_response
from shared.http.models import ApiModel
from shared.http.openapi import build_openapi

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
    readiness = await request.services.health.readiness()
    return json_response(ReadinessReport(checks=readiness.checks))


def described(areas: Sequence[ApiBlueprint]) -> ApiBlueprint:
    """The blueprint serving `/openapi.json`: the document of `areas` and of itself.

    The composition root hands over the areas, so this module imports no other area; the
    document is assembled on the first request and kept for the life of the worker."""
    description = ApiBlueprint("system")
    document: dict[str, Any] | None = None

    @description.route(
        "openapi.json",
        methods=("GET",),
        operation_id="openapi",
        summary="The OpenAPI 3.1 description of this API.",
        security=Security.ANONYMOUS,
        responses={200: ResponseSpec("The OpenAPI document", OpenApiDocument)},
    )
    async def openapi(request: ApiRequest) -> func.HttpResponse:
        nonlocal document
        if document is None:
            document = build_openapi(op for area in (*areas, description) for op in area.operations)
        return json_response(document)

    return description
