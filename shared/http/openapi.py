"""OpenAPI 3.1, assembled from the operations the blueprints declare and their pydantic models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from shared.errors import (
    ApiError,
    AuthorityUnavailable,
    Forbidden,
    InternalError,
    Unauthorized,
    all_error_types,
)
from shared.http.api import Operation, Security
from shared.http.models import Problem
from shared.http.problems import PROBLEM_JSON

_PARAM = re.compile(r"\{\*?([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?\??\}")
_REF = "#/components/schemas/{model}"

API_VERSION = "1.0.0"


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        name = model.__name__
        if name not in self.components:
            schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
            for def_name, definition in schema.pop("$defs", {}).items():
                self.components.setdefault(def_name, definition)
            self.components[name] = schema
        return {"$ref": _REF.format(model=name)}


def openapi_path(route: str) -> str:
    """`connections/{connectionId}` → `/connections/{connectionId}` (optional and catch-all
    markers dropped: OpenAPI has one kind of path parameter)."""
    return "/" + _PARAM.sub(lambda m: "{" + m.group(1) + "}", route).strip("/")


def build_openapi(operations: Iterable[Operation], server_url: str = "/api") -> dict[str, Any]:
    schemas = _Schemas()
    problem_ref = schemas.ref(Problem, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item = paths.setdefault(openapi_path(op.route), {})
        for method in op.methods:
            item[method.lower()] = _operation(op, method, schemas, problem_ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Outlook Integration API",
            "version": API_VERSION,
            "description": (
                "Connect an Outlook mailbox once; then use it from Power Automate, Logic Apps "
                "or any HTTPS caller through Microsoft Graph. Errors are RFC 9457 problem+json "
                "with stable codes: " + ", ".join(sorted({e.code for e in all_error_types()}))
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                Security.BEARER.value: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An Entra ID access token whose audience is this API.",
                },
                Security.FUNCTION_KEY.value: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                },
            },
        },
    }


def _operation(
    op: Operation, method: str, schemas: _Schemas, problem_ref: dict[str, Any]
) -> dict[str, Any]:
    path_params = _PARAM.findall(op.route)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in path_params
    ]
    if op.query_model is not None:
        query_schema = op.query_model.model_json_schema(ref_template=_REF)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": prop}
            )
    for header in op.headers:
        parameters.append(
            {
                "name": header.name,
                "in": "header",
                "required": False,
                "description": header.description,
                "schema": {"type": "string", "maxLength": 255, "description": header.description},
            }
        )
    responses: dict[str, Any] = {}
    for status, spec in sorted(op.responses.items()):
        response: dict[str, Any] = {"description": spec.description}
        if spec.model is not None:
            response["content"] = {
                spec.media_type: {"schema": schemas.ref(spec.model, "serialization")}
            }
        responses[str(status)] = response
    error_types: list[type[ApiError]] = [*op.errors, InternalError]
    if op.security is Security.BEARER:
        # The dispatcher authenticates every bearer operation: these answers are always possible.
        error_types += [Unauthorized, Forbidden, AuthorityUnavailable]
    error_content: dict[str, Any] = {
        media_type: {"schema": problem_ref if media_type == PROBLEM_JSON else {"type": "string"}}
        for media_type in op.error_media_types
    }
    for error in error_types:
        responses.setdefault(
            str(error.status), {"description": error.title, "content": error_content}
        )
    if op.security is Security.FUNCTION_KEY:
        # The Functions host itself refuses a missing or wrong key, before the app runs.
        responses.setdefault(
            "401", {"description": "Missing or wrong host key (answered by the host, no body)."}
        )
    body: dict[str, Any] = {
        "operationId": op.operation_id
        if len(op.methods) == 1
        else f"{op.operation_id}_{method.lower()}",
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": responses,
        "security": [] if op.security is Security.ANONYMOUS else [{op.security.value: []}],
    }
    if op.request_model is not None:
        body["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": schemas.ref(op.request_model, "validation")}
            },
        }
    return body
