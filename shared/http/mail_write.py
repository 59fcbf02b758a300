"""Caller routes for writing mail (bearer token; the connection must be the caller's).

Thin adapters: parse, hand to `MailWriter` / `BulkRunner`, answer. Every route honours an
`Idempotency-Key` header through `IdempotencyGuard` (replays answer the first response with
`Idempotent-Replayed: true`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import azure.functions as func
from pydantic import Field

from shared.errors import (
    ApiError,
    Conflict,
    ConnectionNotFound,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    PayloadTooLarge,
    ReauthRequired,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, HeaderParameter, ResponseSpec
from shared.http.models import ApiModel
from shared.http.problems import render_problem
from shared.mail.compose import (
    AttachmentIn,
    BulkBody,
    BulkResult,
    DeleteMode,
    DestinationBody,
    DraftCreateBody,
    DraftUpdateBody,
    FolderCreateBody,
    FolderRenameBody,
    MessagePatchBody,
    ReplyBody,
    SendMessageBody,
    SentMessage,
)
from shared.mail.models import AttachmentInfo, MailFolder, Message

# The writer, the bulk runner and the idempotency guard are imported where a request uses
# them: their modules load httpx, the Azure SDK and cryptography, which `import
# function_app` must not (cold start; tests/unit/test_cold_start.py).
if TYPE_CHECKING:
    from shared.mail.writer import WriteContext
    from shared.store.idempotency import StoredResponse

# The header's name as shared.mail.idempotency reads it (HEADER there).
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = HeaderParameter(
    IDEMPOTENCY_HEADER,
    "Any unique string (e.g. a GUID). Retrying with the same key and the same request within "
    "24 hours answers the first result and does not act twice (no second mail).",
)

api = ApiBlueprint("mail-write")

_ERRORS = (
    ValidationFailed,
    ConnectionNotFound,
    NotFound,
    Forbidden,
    Conflict,
    ReauthRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    GraphThrottled,
    GraphError,
    GraphUnavailable,
    StorageUnavailable,
)
_IDEMPOTENCY = (
    " Accepts an `Idempotency-Key` header: the same key and request within 24 h answers the "
    "first response and changes nothing; the same key with another request is 409 conflict."
)
_MAILBOX = Field(
    default=None,
    max_length=256,
    description="A shared mailbox (UPN or id) the connected user may access; default: their own.",
)


class MailboxQuery(ApiModel):
    mailbox: str | None = _MAILBOX


class DeleteQuery(ApiModel):
    mode: DeleteMode = Field(
        default="trash",
        description="trash: move to Deleted Items; soft: Graph DELETE (Recoverable Items); "
        "permanent: purge (permanentDelete).",
    )
    mailbox: str | None = _MAILBOX


def _ctx(request: ApiRequest, mailbox: str | None) -> WriteContext:
    from shared.mail.writer import WriteContext

    return WriteContext(
        request.caller, request.route("connectionId"), mailbox, request.correlation_id
    )


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> StoredResponse:
    from shared.store.idempotency import StoredResponse

    return StoredResponse(status, dict(headers or {}), json.dumps(payload).encode())


def _no_content() -> StoredResponse:
    from shared.store.idempotency import StoredResponse

    return StoredResponse(204, {}, b"")


def _location(request: ApiRequest, *segments: str) -> str:
    cid = quote(request.route("connectionId"), safe="")
    return "/api/connections/{}/{}".format(cid, "/".join(quote(s, safe="=") for s in segments))


async def _write(
    request: ApiRequest, mailbox: str | None, produce: Callable[[], Awaitable[StoredResponse]]
) -> func.HttpResponse:
    """Run `produce` under the request's Idempotency-Key (if any) and answer its response."""
    from shared.mail.idempotency import IdempotencyGuard, fingerprint
    from shared.store.idempotency import StoredResponse

    services = request.services
    key = request.raw.headers.get(IDEMPOTENCY_HEADER.lower())
    if key is not None:
        # Authorize before a replay: a key never reveals anything about another's connection.
        await services.mail_writer.authorize(_ctx(request, mailbox))
    raw = request.raw
    query = "&".join(f"{k}={v}" for k, v in sorted(dict(raw.params).items()))
    type_base = str(services.settings.PROBLEM_TYPE_BASE_URL)

    def render(error: ApiError) -> StoredResponse:
        rendered = render_problem(error, request.correlation_id, type_base)
        return StoredResponse(
            rendered.status_code,
            {k: v for k, v in error.headers.items()},
            rendered.get_body(),
            "application/problem+json",
        )

    stored = await IdempotencyGuard(services.idempotency).run(
        request.caller,
        request.route("connectionId"),
        key,
        fingerprint(raw.method, _path_of(raw.url), query, raw.get_body()),
        produce,
        render,
    )
    return func.HttpResponse(
        body=stored.body if stored.status != 204 else None,
        status_code=stored.status,
        headers=dict(stored.headers),
        mimetype=stored.media_type,
        charset="utf-8",
    )


def _path_of(url: str) -> str:
    return urlsplit(url).path


# --- send, drafts -------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/send",
    methods=("POST",),
    operation_id="messages_send",
    summary="Send a message (attachments over 3 MB in all go draft + upload session + send)."
    + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=SendMessageBody,
    responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_send(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(SendMessageBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        sent = await request.services.mail_writer.send(ctx, body)
        return _json(202, sent.as_json())

    return await _write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts",
    methods=("POST",),
    operation_id="drafts_create",
    summary="Create a draft (with attachments)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=DraftCreateBody,
    responses={201: ResponseSpec("The draft", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_create(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(DraftCreateBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        draft = await request.services.mail_writer.create_draft(ctx, body)
        location = _location(request, "messages", str(draft.get("id", "")))
        return _json(201, draft, {"Location": location})

    return await _write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts/{draftId}",
    methods=("PATCH",),
    operation_id="drafts_update",
    summary="Change a draft's fields (only those sent)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=DraftUpdateBody,
    responses={200: ResponseSpec("The updated draft", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_update(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(DraftUpdateBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        writer = request.services.mail_writer
        return _json(200, await writer.update_draft(ctx, request.route("draftId"), body))

    return await _write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts/{draftId}/send",
    methods=("POST",),
    operation_id="drafts_send",
    summary="Send a draft (it keeps its immutable id in Sent Items)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_send(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        sent = await request.services.mail_writer.send_draft(ctx, request.route("draftId"))
        return _json(202, sent.as_json())

    return await _write(request, query.mailbox, produce)


# --- reply, replyAll, forward -------------------------------------------------------------
def _respond_route(action: str) -> None:
    @api.route(
        f"connections/{{connectionId}}/messages/{{messageId}}/{action}",
        methods=("POST",),
        operation_id=f"messages_{action}",
        summary=f"{action} (comment or body, extra recipients; with attachments a draft is "
        "created, filled and sent)." + _IDEMPOTENCY,
        query_model=MailboxQuery,
        request_model=ReplyBody,
        responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
        headers=(IDEMPOTENCY_KEY,),
        errors=_ERRORS,
    )
    async def handler(request: ApiRequest) -> func.HttpResponse:
        query = request.query(MailboxQuery)
        body = request.json(ReplyBody)
        ctx = _ctx(request, query.mailbox)

        async def produce() -> StoredResponse:
            writer = request.services.mail_writer
            sent = await writer.respond(ctx, request.route("messageId"), action, body)
            return _json(202, sent.as_json())

        return await _write(request, query.mailbox, produce)


for _action in ("reply", "replyAll", "forward"):
    _respond_route(_action)


# --- update, move, copy, delete -----------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/{messageId}",
    methods=("PATCH",),
    operation_id="messages_update",
    summary="Set isRead, flag, categories or importance." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=MessagePatchBody,
    responses={200: ResponseSpec("The updated message", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_update(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(MessagePatchBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        writer = request.services.mail_writer
        return _json(200, await writer.update_message(ctx, request.route("messageId"), body))

    return await _write(request, query.mailbox, produce)


def _move_route(action: str) -> None:
    @api.route(
        f"connections/{{connectionId}}/messages/{{messageId}}/{action}",
        methods=("POST",),
        operation_id=f"messages_{action}",
        summary=f"{action.capitalize()} a message to a folder (well-known name or id); answers "
        "the message in its destination." + _IDEMPOTENCY,
        query_model=MailboxQuery,
        request_model=DestinationBody,
        responses={200: ResponseSpec("The message in its destination", Message)},
        headers=(IDEMPOTENCY_KEY,),
        errors=_ERRORS,
    )
    async def handler(request: ApiRequest) -> func.HttpResponse:
        query = request.query(MailboxQuery)
        body = request.json(DestinationBody)
        ctx = _ctx(request, query.mailbox)

        async def produce() -> StoredResponse:
            writer = request.services.mail_writer
            moved = await writer.move(
                ctx, request.route("messageId"), body.destinationFolder, copy=action == "copy"
            )
            return _json(200, moved)

        return await _write(request, query.mailbox, produce)


for _action in ("move", "copy"):
    _move_route(_action)


@api.route(
    "connections/{connectionId}/messages/{messageId}",
    methods=("DELETE",),
    operation_id="messages_delete",
    summary="Delete a message: mode trash (default), soft or permanent." + _IDEMPOTENCY,
    query_model=DeleteQuery,
    responses={204: ResponseSpec("Deleted")},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_delete(request: ApiRequest) -> func.HttpResponse:
    query = request.query(DeleteQuery)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        await request.services.mail_writer.delete(ctx, request.route("messageId"), query.mode)
        return _no_content()

    return await _write(request, query.mailbox, produce)


# --- bulk ---------------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/bulk",
    methods=("POST",),
    operation_id="messages_bulk",
    summary="One action on up to 1,000 messages via Graph $batch; a result per id "
    "(partial failure is reported, never hidden)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=BulkBody,
    responses={200: ResponseSpec("A result per id", BulkResult)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_bulk(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(BulkBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        from shared.mail.bulk import BulkRunner

        return _json(200, await BulkRunner(request.services.mail_writer).run(ctx, body))

    return await _write(request, query.mailbox, produce)


# --- attachments --------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/{messageId}/attachments",
    methods=("POST",),
    operation_id="attachments_add",
    summary="Add a file attachment to a draft (upload session above 3 MB, 4 MB chunks)."
    + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=AttachmentIn,
    responses={201: ResponseSpec("The attachment", AttachmentInfo)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def attachments_add(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(AttachmentIn)
    ctx = _ctx(request, query.mailbox)
    message_id = request.route("messageId")

    async def produce() -> StoredResponse:
        info = await request.services.mail_writer.add_attachment(ctx, message_id, body)
        headers = {}
        if info.get("id"):
            headers["Location"] = _location(
                request, "messages", message_id, "attachments", str(info["id"])
            )
        return _json(201, info, headers)

    return await _write(request, query.mailbox, produce)


# --- folders ------------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/folders",
    methods=("POST",),
    operation_id="folders_create",
    summary="Create a folder (top level, or under parentFolder)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=FolderCreateBody,
    responses={201: ResponseSpec("The folder", MailFolder)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_create(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(FolderCreateBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        folder = await request.services.mail_writer.create_folder(ctx, body)
        location = _location(request, "folders", str(folder.get("id", "")))
        return _json(201, folder, {"Location": location})

    return await _write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/folders/{folderId}",
    methods=("PATCH",),
    operation_id="folders_rename",
    summary="Rename a folder (well-known folders cannot be renamed)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    request_model=FolderRenameBody,
    responses={200: ResponseSpec("The folder", MailFolder)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_rename(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(FolderRenameBody)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        writer = request.services.mail_writer
        folder = await writer.rename_folder(ctx, request.route("folderId"), body.displayName)
        return _json(200, folder)

    return await _write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/folders/{folderId}",
    methods=("DELETE",),
    operation_id="folders_delete",
    summary="Delete a folder (it moves to Deleted Items, as in Outlook)." + _IDEMPOTENCY,
    query_model=MailboxQuery,
    responses={204: ResponseSpec("Deleted")},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_delete(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    ctx = _ctx(request, query.mailbox)

    async def produce() -> StoredResponse:
        await request.services.mail_writer.delete_folder(ctx, request.route("folderId"))
        return _no_content()

    return await _write(request, query.mailbox, produce)
