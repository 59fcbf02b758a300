"""`GET /api/me`: who the API thinks the caller is — for integrators debugging their tokens."""

from __future__ import annotations

from typing import Literal

import azure.functions as func

from shared.errors import AuthorityUnavailable, Forbidden, Unauthorized
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security, json_response
from shared.http.models import ApiModel

api = ApiBlueprint("system")


class Identity(ApiModel):
    """The validated identity of the caller's token (claims this API uses, nothing else)."""

    kind: Literal["user", "app"]
    tenantId: str
    oid: str
    appId: str
    scopes: list[str]
    roles: list[str]


@api.route(
    "me",
    methods=("GET",),
    operation_id="whoami",
    summary="The caller's identity as this API sees it (kind, tenant, object id, app id, "
    "scopes, roles).",
    security=Security.BEARER,
    responses={200: ResponseSpec("The caller", Identity)},
    errors=(Unauthorized, Forbidden, AuthorityUnavailable),
)
async def whoami(request: ApiRequest) -> func.HttpResponse:
    caller = request.caller
    return json_response(
        Identity(
            kind=caller.kind,
            tenantId=caller.tenant_id,
            oid=caller.oid,
            appId=caller.app_id,
            scopes=sorted(caller.scopes),
            roles=sorted(caller.roles),
        )
    )
