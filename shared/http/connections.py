"""Caller routes for connections: list, get, delete (bearer token required)."""

from __future__ import annotations

from datetime import datetime

import azure.functions as func

from shared.connections.models import Connection
from shared.errors import ConnectionNotFound, Forbidden, StorageUnavailable, Unauthorized
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.models import ApiModel

api = ApiBlueprint("connections")

_ERRORS = (Unauthorized, Forbidden, ConnectionNotFound, StorageUnavailable)


class ConnectionView(ApiModel):
    id: str
    mailbox: str
    ownerOid: str
    tenantId: str
    status: str
    scopes: list[str]
    createdAt: datetime
    lastUsedAt: datetime | None
    lastRefreshedAt: datetime | None

    @classmethod
    def of(cls, connection: Connection) -> ConnectionView:
        return cls(
            id=connection.id,
            mailbox=connection.mailbox,
            ownerOid=connection.owner_oid,
            tenantId=connection.owner_tid,
            status=str(connection.status),
            scopes=connection.scopes,
            createdAt=connection.created_at,
            lastUsedAt=connection.last_used_at,
            lastRefreshedAt=connection.last_refreshed_at,
        )


class ConnectionList(ApiModel):
    value: list[ConnectionView]
    nextCursor: str | None = None


@api.route(
    "connections",
    methods=("GET",),
    operation_id="connections_list",
    summary="The caller's connections (every connection for an app with a Connections role).",
    responses={200: ResponseSpec("Connections", ConnectionList)},
    errors=_ERRORS,
)
async def connections_list(request: ApiRequest) -> func.HttpResponse:
    found = await request.services.connections.list(request.caller)
    return json_response(ConnectionList(value=[ConnectionView.of(c) for c in found]))


@api.route(
    "connections/{connectionId}",
    methods=("GET",),
    operation_id="connections_get",
    summary="One connection.",
    responses={200: ResponseSpec("The connection", ConnectionView)},
    errors=_ERRORS,
)
async def connections_get(request: ApiRequest) -> func.HttpResponse:
    connection = await request.services.connections.get(
        request.caller, request.route("connectionId")
    )
    return json_response(ConnectionView.of(connection))


@api.route(
    "connections/{connectionId}",
    methods=("DELETE",),
    operation_id="connections_delete",
    summary="Remove the connection: its encrypted grant is deleted (audited).",
    responses={204: ResponseSpec("Removed")},
    errors=_ERRORS,
)
async def connections_delete(request: ApiRequest) -> func.HttpResponse:
    await request.services.connections.delete(
        request.caller, request.route("connectionId"), request.correlation_id
    )
    return func.HttpResponse(status_code=204)
