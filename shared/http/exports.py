"""Caller routes for archiving: export jobs, their manifest and items (docs/archiving.md).

Authorized like mail reads (the connection must be the caller's; `mailbox` names a shared
mailbox). The work itself runs on the exports queue (shared/functions/exports.py).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import azure.functions as func
from pydantic import Field, field_validator

from shared.errors import (
    ConnectionNotFound,
    ExportItemNotFound,
    ExportNotCompleted,
    ExportNotFound,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    InvalidCursor,
    NotFound,
    ReauthRequired,
    StorageUnavailable,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.models import ApiModel, MailboxQuery, mailbox_field

if TYPE_CHECKING:
    from shared.export.service import ExportService

api = ApiBlueprint("archiving")

_ERRORS = (
    ValidationFailed,
    ConnectionNotFound,
    ExportNotFound,
    ReauthRequired,
    GraphThrottled,
    GraphError,
    GraphUnavailable,
    StorageUnavailable,
)


class ExportCreate(ApiModel):
    folders: list[str] | Literal["all"] = Field(
        default="all",
        description='Folder ids or well-known names, or "all" (every folder).',
    )
    format: Literal["mime", "json"] = "mime"
    since: str | None = Field(
        default=None,
        max_length=64,
        description="A completed export of this connection: only what changed since it.",
    )
    receivedAfter: datetime | None = None

    @field_validator("folders")
    @classmethod
    def _folders(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            if not 1 <= len(value) <= 100:
                raise ValueError("name 1 to 100 folders, or 'all'")
            if any(not f or len(f) > 512 for f in value):
                raise ValueError("folder names are 1 to 512 characters")
        return value

    @field_validator("receivedAfter")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone (e.g. 2026-01-31T00:00:00Z)")
        return value


class ExportCounts(ApiModel):
    messages: int
    removed: int
    bytes: int
    failed: int


class ExportStatus(ApiModel):
    id: str
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    folders: list[str]
    format: str
    since: str | None = None
    counts: ExportCounts
    createdAt: str
    startedAt: str | None = None
    completedAt: str | None = None
    error: str | None = None


class ExportList(ApiModel):
    value: list[ExportStatus]


class ManifestEntryModel(ApiModel):
    messageId: str
    internetMessageId: str | None = None
    folderId: str
    receivedDateTime: str | None = None
    size: int
    sha256: str | None = None
    removed: bool | None = None


class Manifest(ApiModel):
    value: list[ManifestEntryModel]
    nextCursor: str | None = None


class ManifestVerification(ApiModel):
    id: str
    valid: bool
    sealValid: bool
    checked: int
    mismatched: list[str]
    missing: list[str]


class ManifestQuery(ApiModel):
    cursor: str | None = Field(default=None, max_length=1024)
    mailbox: str | None = mailbox_field()


def _exports(request: ApiRequest) -> ExportService:
    return request.services.exports


def _location(connection_id: str, export_id: str) -> str:
    return f"/api/connections/{connection_id}/exports/{export_id}"


@api.route(
    "connections/{connectionId}/exports",
    methods=("POST",),
    operation_id="exports_start",
    summary="Start an export of folders (or the whole mailbox) as MIME or JSON into Blob "
    "Storage; `since` exports only what changed after an earlier export.",
    request_model=ExportCreate,
    query_model=MailboxQuery,
    responses={202: ResponseSpec("The export, queued", ExportStatus)},
    errors=(*_ERRORS, NotFound, ExportNotCompleted),
)
async def exports_start(request: ApiRequest) -> func.HttpResponse:
    from shared.export.service import ExportRequest, job_json

    body = request.json(ExportCreate)
    query = request.query(MailboxQuery)
    connection_id = request.route("connectionId")
    job = await _exports(request).start(
        request.caller,
        connection_id,
        ExportRequest(
            folders=None if body.folders == "all" else list(body.folders),
            format=body.format,
            since=body.since,
            received_after=body.receivedAfter,
        ),
        query.mailbox,
        request.correlation_id,
    )
    return json_response(
        job_json(job), status=202, headers={"Location": _location(connection_id, job.id)}
    )


@api.route(
    "connections/{connectionId}/exports",
    methods=("GET",),
    operation_id="exports_list",
    summary="The connection's exports, newest first.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("Exports", ExportList)},
    errors=_ERRORS,
)
async def exports_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    jobs = await _exports(request).list_exports(
        request.caller, request.route("connectionId"), query.mailbox, request.correlation_id
    )
    return json_response({"value": jobs})


@api.route(
    "connections/{connectionId}/exports/{exportId}",
    methods=("GET",),
    operation_id="exports_get",
    summary="An export's status and counts.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("The export", ExportStatus)},
    errors=_ERRORS,
)
async def exports_get(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    job = await _exports(request).get(
        request.caller,
        request.route("connectionId"),
        request.route("exportId"),
        query.mailbox,
        request.correlation_id,
    )
    return json_response(job)


@api.route(
    "connections/{connectionId}/exports/{exportId}",
    methods=("DELETE",),
    operation_id="exports_delete",
    summary="Cancel a running export (202), or delete a finished one with its items (204).",
    query_model=MailboxQuery,
    responses={202: ResponseSpec("Cancelled"), 204: ResponseSpec("Deleted")},
    errors=_ERRORS,
)
async def exports_delete(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    done = await _exports(request).cancel_or_delete(
        request.caller,
        request.route("connectionId"),
        request.route("exportId"),
        query.mailbox,
        request.correlation_id,
    )
    if done == "cancelled":
        return json_response({"id": request.route("exportId"), "status": "cancelled"}, 202)
    return func.HttpResponse(status_code=204)


@api.route(
    "connections/{connectionId}/exports/{exportId}/manifest",
    methods=("GET",),
    operation_id="exports_manifest",
    summary="The export's manifest, a page at a time (one entry per message id).",
    query_model=ManifestQuery,
    responses={200: ResponseSpec("A page of the manifest", Manifest)},
    errors=(*_ERRORS, InvalidCursor),
)
async def exports_manifest(request: ApiRequest) -> func.HttpResponse:
    query = request.query(ManifestQuery)
    entries, cursor = await _exports(request).manifest(
        request.caller,
        request.route("connectionId"),
        request.route("exportId"),
        query.cursor,
        query.mailbox,
        request.correlation_id,
    )
    return json_response({"value": entries, "nextCursor": cursor})


@api.route(
    "connections/{connectionId}/exports/{exportId}/manifest/verify",
    methods=("GET",),
    operation_id="exports_verify",
    summary="Check the manifest's seal and every stored item's SHA-256 against it.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("The verification", ManifestVerification)},
    errors=(*_ERRORS, ExportNotCompleted),
)
async def exports_verify(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    result = await _exports(request).verify(
        request.caller,
        request.route("connectionId"),
        request.route("exportId"),
        query.mailbox,
        request.correlation_id,
    )
    return json_response(result.public())


@api.route(
    "connections/{connectionId}/exports/{exportId}/items/{messageId}",
    methods=("GET",),
    operation_id="exports_item",
    summary="One exported item's bytes (MIME or JSON), with its SHA-256 digest headers.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("The item", media_type="application/octet-stream")},
    errors=(*_ERRORS, ExportItemNotFound),
)
async def exports_item(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    item = await _exports(request).item(
        request.caller,
        request.route("connectionId"),
        request.route("exportId"),
        request.route("messageId"),
        query.mailbox,
        request.correlation_id,
    )
    digest = base64.b64encode(bytes.fromhex(item.sha256)).decode()
    headers: dict[str, Any] = {
        "Content-Type": item.content_type,
        # RFC 3230 (`Digest`) for older clients, RFC 9530 (`Content-Digest`) for newer ones.
        "Digest": f"SHA-256={digest}",
        "Content-Digest": f"sha-256=:{digest}:",
        "X-Content-Type-Options": "nosniff",
    }
    return func.HttpResponse(body=item.data, status_code=200, headers=headers)
