"""Caller routes for connections: list, get, delete (bearer token required); create and
change application (app-only) connections (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import azure.functions as func
from pydantic import Field

from shared.connections.models import Connection
from shared.errors import (
    ConnectionNotFound,
    Forbidden,
    GraphThrottled,
    GraphUnavailable,
    MailboxOutOfScope,
    ReauthRequired,
    StorageUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.models import ApiModel

api = ApiBlueprint("connections")

_ERRORS = (Unauthorized, Forbidden, ConnectionNotFound, StorageUnavailable)
_ADMIN_ERRORS = (
    ValidationFailed,
    UnsupportedMediaType,
    MailboxOutOfScope,
    ReauthRequired,
    GraphThrottled,
    GraphUnavailable,
    *_ERRORS,
)


class ApplicationConnectionCreate(ApiModel):
    mode: Literal["application"] = Field(
        description="`application`: the app's own permissions, scoped by Exchange RBAC for "
        "Applications (people connect their own mailbox through /api/auth/login instead)."
    )
    mailbox: str = Field(
        min_length=3, max_length=320, description="The mailbox's UPN / address or object id."
    )
    displayName: str | None = Field(default=None, max_length=256)
    allowed: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Who may use it besides its creator: app ids, user object ids or UPNs.",
    )


class ApplicationConnectionPatch(ApiModel):
    allowed: list[str] = Field(
        max_length=50,
        description="Replaces the allow-list: app ids, user object ids or UPNs.",
    )


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
    mode: Literal["delegated", "application"] = Field(
        default="delegated",
        description="`delegated`: a person's grant; `application`: the app's own permissions.",
    )
    displayName: str | None = None
    allowed: list[str] | None = Field(
        default=None, description="Application connections: who may use it besides its creator."
    )

    @classmethod
    def of(cls, connection: Connection) -> ConnectionView:
        return cls(
            mode="application" if connection.is_application else "delegated",
            displayName=connection.display_name,
            allowed=list(connection.allowed) if connection.is_application else None,
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


@api.route(
    "connections",
    methods=("POST",),
    operation_id="connections_create",
    summary="Connect a shared mailbox (admin): an application connection, no person needed.",
    request_model=ApplicationConnectionCreate,
    responses={201: ResponseSpec("Connected (Location: the connection)", ConnectionView)},
    errors=_ADMIN_ERRORS,
)
async def connections_create(request: ApiRequest) -> func.HttpResponse:
    body = request.json(ApplicationConnectionCreate)
    connection = await request.services.application_connections.create(
        request.caller,
        body.mailbox,
        display_name=body.displayName,
        allowed=body.allowed,
        correlation_id=request.correlation_id,
    )
    base = str(request.services.settings.PUBLIC_BASE_URL).rstrip("/")
    return json_response(
        ConnectionView.of(connection),
        status=201,
        headers={"Location": f"{base}/api/connections/{connection.id}"},
    )


@api.route(
    "connections/{connectionId}",
    methods=("PATCH",),
    operation_id="connections_update",
    summary="Change who may use an application connection (admin).",
    request_model=ApplicationConnectionPatch,
    responses={200: ResponseSpec("The connection", ConnectionView)},
    errors=_ADMIN_ERRORS,
)
async def connections_update(request: ApiRequest) -> func.HttpResponse:
    body = request.json(ApplicationConnectionPatch)
    connection_id = request.route("connectionId")
    connection = await request.services.application_connections.update_allowed(
        request.caller, connection_id, body.allowed, request.correlation_id
    )
    request.services.connections.forget(connection_id)
    return json_response(ConnectionView.of(connection))
