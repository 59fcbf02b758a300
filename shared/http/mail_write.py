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
from shared.http.mailboxes import open_mailbox
from shared.http.models import ApiModel, MailboxQuery, mailbox_field
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

# The guard, the bulk runner and the stored-response type are imported where a request uses
# them: their modules load httpx, the Azure SDK and cryptography, which `import
# function_app` must not (cold start; tests/unit/test_cold_start.py).
if TYPE_CHECKING:
    from shared.connections.mailbox import ConnectedMailbox
    from shared.store.idempotency import StoredResponse

# The header's name as shared.mail.idempotency reads it (HEADER there; a unit test pins both).
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = HeaderParameter(
    IDEMPOTENCY_HEADER,
    "Any unique string, such as the flow run's name. A retry with the same key and request "
    "within 24 hours answers the first result and does not act twice (no second mail); the "
    "same key with another request is 409 conflict.",
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


class DeleteQuery(ApiModel):
    mode: DeleteMode = Field(
        default="trash",
        description="trash: move to Deleted Items; soft: Graph DELETE (Recoverable Items); "
        "permanent: purge (permanentDelete).",
    )
    mailbox: str | None = mailbox_field()


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> StoredResponse:
    from shared.store.idempotency import StoredResponse

    return StoredResponse(status, dict(headers or {}), json.dumps(payload).encode())


def _no_content() -> StoredResponse:
    from shared.store.idempotency import StoredResponse

    return StoredResponse(204, {}, b"")


def _location(request: ApiRequest, *segments: str) -> str:
    cid = quote(request.route("connectionId"), safe="")
    return "/api/connections/{}/{}".format(cid, "/".join(quote(s, safe="=") for s in segments))


Produce = Callable[["ConnectedMailbox"], Awaitable["StoredResponse"]]


async def idempotent_write(
    request: ApiRequest, mailbox: str | None, produce: Produce
) -> func.HttpResponse:
    """Open the connection for writing (the one authorization of the request), then run
    `produce` on it under the request's Idempotency-Key (if any) and answer its response."""
    from shared.mail.idempotency import IdempotencyGuard
    from shared.store.idempotency import StoredResponse

    container = request.services
    # Before a replay too: a key never reveals anything about another's connection.
    mb = await open_mailbox(request, mailbox, write=True)
    key = request.raw.headers.get(IDEMPOTENCY_HEADER.lower())
    raw = request.raw

    def render(error: ApiError) -> StoredResponse:
        type_base = str(container.settings.PROBLEM_TYPE_BASE_URL)
        rendered = render_problem(error, request.correlation_id, type_base)
        return StoredResponse(
            rendered.status_code,
            {k: v for k, v in error.headers.items()},
            rendered.get_body(),
            "application/problem+json",
        )

    stored = await IdempotencyGuard(container.idempotency).run(
        request.caller,
        request.route("connectionId"),
        key,
        # Only a request with a key is ever compared with another one.
        _fingerprint(raw) if key is not None else "",
        lambda: produce(mb),
        render,
    )
    return func.HttpResponse(
        body=stored.body if stored.status != 204 else None,
        status_code=stored.status,
        headers=dict(stored.headers),
        mimetype=stored.media_type,
        charset="utf-8",
    )


def _fingerprint(raw: func.HttpRequest) -> str:
    from shared.mail.idempotency import fingerprint

    query = "&".join(f"{k}={v}" for k, v in sorted(dict(raw.params).items()))
    return fingerprint(raw.method, _path_of(raw.url), query, raw.get_body())


def _path_of(url: str) -> str:
    return urlsplit(url).path


# --- send, drafts -------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/send",
    methods=("POST",),
    operation_id="messages_send",
    summary="Send a message; attachments over 3 MB in all go through a draft and an upload "
    "session.",
    query_model=MailboxQuery,
    request_model=SendMessageBody,
    responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_send(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(SendMessageBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        sent = await request.services.mail_writer.send(mb, body)
        return _json(202, sent.as_json())

    return await idempotent_write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts",
    methods=("POST",),
    operation_id="drafts_create",
    summary="Create a draft (with attachments).",
    query_model=MailboxQuery,
    request_model=DraftCreateBody,
    responses={201: ResponseSpec("The draft", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_create(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(DraftCreateBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        draft = await request.services.mail_writer.create_draft(mb, body)
        location = _location(request, "messages", str(draft.get("id", "")))
        return _json(201, draft, {"Location": location})

    return await idempotent_write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts/{draftId}",
    methods=("PATCH",),
    operation_id="drafts_update",
    summary="Change a draft's fields (only those sent).",
    query_model=MailboxQuery,
    request_model=DraftUpdateBody,
    responses={200: ResponseSpec("The updated draft", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_update(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(DraftUpdateBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        writer = request.services.mail_writer
        return _json(200, await writer.update_draft(mb, request.route("draftId"), body))

    return await idempotent_write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/drafts/{draftId}/send",
    methods=("POST",),
    operation_id="drafts_send",
    summary="Send a draft (it keeps its immutable id in Sent Items).",
    query_model=MailboxQuery,
    responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def drafts_send(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        sent = await request.services.mail_writer.send_draft(mb, request.route("draftId"))
        return _json(202, sent.as_json())

    return await idempotent_write(request, query.mailbox, produce)


# --- reply, replyAll, forward -------------------------------------------------------------
_RESPOND_SENTENCES = {
    "reply": "Reply to the sender of a message",
    "replyAll": "Reply to the sender and all recipients of a message",
    "forward": "Forward a message",
}


def _respond_route(action: str) -> None:
    @api.route(
        f"connections/{{connectionId}}/messages/{{messageId}}/{action}",
        methods=("POST",),
        operation_id=f"messages_{action}",
        summary=f"{_RESPOND_SENTENCES[action]}, with a comment or a new body, extra recipients "
        "and attachments.",
        query_model=MailboxQuery,
        request_model=ReplyBody,
        responses={202: ResponseSpec("Accepted for delivery", SentMessage)},
        headers=(IDEMPOTENCY_KEY,),
        errors=_ERRORS,
    )
    async def handler(request: ApiRequest) -> func.HttpResponse:
        query = request.query(MailboxQuery)
        body = request.json(ReplyBody)

        async def produce(mb: ConnectedMailbox) -> StoredResponse:
            writer = request.services.mail_writer
            sent = await writer.respond(mb, request.route("messageId"), action, body)
            return _json(202, sent.as_json())

        return await idempotent_write(request, query.mailbox, produce)


for _action in ("reply", "replyAll", "forward"):
    _respond_route(_action)


# --- update, move, copy, delete -----------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/{messageId}",
    methods=("PATCH",),
    operation_id="messages_update",
    summary="Set isRead, flag, categories or importance.",
    query_model=MailboxQuery,
    request_model=MessagePatchBody,
    responses={200: ResponseSpec("The updated message", Message)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_update(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(MessagePatchBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        writer = request.services.mail_writer
        return _json(200, await writer.update_message(mb, request.route("messageId"), body))

    return await idempotent_write(request, query.mailbox, produce)


def _move_route(action: str) -> None:
    @api.route(
        f"connections/{{connectionId}}/messages/{{messageId}}/{action}",
        methods=("POST",),
        operation_id=f"messages_{action}",
        summary=f"{action.capitalize()} a message to a folder (well-known name or id); answers "
        "the message in its destination.",
        query_model=MailboxQuery,
        request_model=DestinationBody,
        responses={200: ResponseSpec("The message in its destination", Message)},
        headers=(IDEMPOTENCY_KEY,),
        errors=_ERRORS,
    )
    async def handler(request: ApiRequest) -> func.HttpResponse:
        query = request.query(MailboxQuery)
        body = request.json(DestinationBody)

        async def produce(mb: ConnectedMailbox) -> StoredResponse:
            writer = request.services.mail_writer
            moved = await writer.move(
                mb, request.route("messageId"), body.destinationFolder, copy=action == "copy"
            )
            return _json(200, moved)

        return await idempotent_write(request, query.mailbox, produce)


for _action in ("move", "copy"):
    _move_route(_action)


@api.route(
    "connections/{connectionId}/messages/{messageId}",
    methods=("DELETE",),
    operation_id="messages_delete",
    summary="Delete a message: mode trash (default), soft or permanent.",
    query_model=DeleteQuery,
    responses={204: ResponseSpec("Deleted")},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_delete(request: ApiRequest) -> func.HttpResponse:
    query = request.query(DeleteQuery)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        await request.services.mail_writer.delete(mb, request.route("messageId"), query.mode)
        return _no_content()

    return await idempotent_write(request, query.mailbox, produce)


# --- bulk ---------------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/bulk",
    methods=("POST",),
    operation_id="messages_bulk",
    summary="One action on up to 1,000 messages via Graph $batch; a result per id "
    "(partial failure is reported, never hidden).",
    query_model=MailboxQuery,
    request_model=BulkBody,
    responses={200: ResponseSpec("A result per id", BulkResult)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def messages_bulk(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(BulkBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        from shared.mail.bulk import BulkRunner

        return _json(200, await BulkRunner(request.services.mail_writer).run(mb, body))

    return await idempotent_write(request, query.mailbox, produce)


# --- attachments --------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/messages/{messageId}/attachments",
    methods=("POST",),
    operation_id="attachments_add",
    summary="Add a file attachment to a draft (upload session above 3 MB, 4 MB chunks).",
    query_model=MailboxQuery,
    request_model=AttachmentIn,
    responses={201: ResponseSpec("The attachment", AttachmentInfo)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def attachments_add(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(AttachmentIn)
    message_id = request.route("messageId")

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        info = await request.services.mail_writer.add_attachment(mb, message_id, body)
        headers = {}
        if info.get("id"):
            headers["Location"] = _location(
                request, "messages", message_id, "attachments", str(info["id"])
            )
        return _json(201, info, headers)

    return await idempotent_write(request, query.mailbox, produce)


# --- folders ------------------------------------------------------------------------------
@api.route(
    "connections/{connectionId}/folders",
    methods=("POST",),
    operation_id="folders_create",
    summary="Create a folder (top level, or under parentFolder).",
    query_model=MailboxQuery,
    request_model=FolderCreateBody,
    responses={201: ResponseSpec("The folder", MailFolder)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_create(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(FolderCreateBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        folder = await request.services.mail_writer.create_folder(mb, body)
        location = _location(request, "folders", str(folder.get("id", "")))
        return _json(201, folder, {"Location": location})

    return await idempotent_write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/folders/{folderId}",
    methods=("PATCH",),
    operation_id="folders_rename",
    summary="Rename a folder (well-known folders cannot be renamed).",
    query_model=MailboxQuery,
    request_model=FolderRenameBody,
    responses={200: ResponseSpec("The folder", MailFolder)},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_rename(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(FolderRenameBody)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        writer = request.services.mail_writer
        folder = await writer.rename_folder(mb, request.route("folderId"), body.displayName)
        return _json(200, folder)

    return await idempotent_write(request, query.mailbox, produce)


@api.route(
    "connections/{connectionId}/folders/{folderId}",
    methods=("DELETE",),
    operation_id="folders_delete",
    summary="Delete a folder (it moves to Deleted Items, as in Outlook).",
    query_model=MailboxQuery,
    responses={204: ResponseSpec("Deleted")},
    headers=(IDEMPOTENCY_KEY,),
    errors=_ERRORS,
)
async def folders_delete(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)

    async def produce(mb: ConnectedMailbox) -> StoredResponse:
        await request.services.mail_writer.delete_folder(mb, request.route("folderId"))
        return _no_content()

    return await idempotent_write(request, query.mailbox, produce)
