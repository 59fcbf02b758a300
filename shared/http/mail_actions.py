"""Caller routes for the simple message actions (bearer token; the connection must be the
caller's): flag, mark as read or unread, assign a category — the Office 365 Outlook actions
flow makers search for, each its own operation over the update-message service.

Setting a flag, a read state or a category twice leaves the message as once, so these take
no `Idempotency-Key`: a retry is already safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func
from pydantic import Field

from shared.errors import (
    ConnectionNotFound,
    Forbidden,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    ReauthRequired,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, json_response
from shared.http.mailboxes import open_mailbox
from shared.http.models import ApiModel, MailboxQuery
from shared.mail import actions
from shared.mail.actions import FlagStatus
from shared.mail.models import Message

if TYPE_CHECKING:
    pass

api = ApiBlueprint("mail-actions")

_ERRORS = (
    ValidationFailed,
    ConnectionNotFound,
    NotFound,
    Forbidden,
    ReauthRequired,
    UnsupportedMediaType,
    GraphThrottled,
    GraphError,
    GraphUnavailable,
    StorageUnavailable,
)


class FlagBody(ApiModel):
    flagStatus: FlagStatus = Field(
        default="flagged", description="flagged, complete (done) or notFlagged (clear)."
    )


class MarkReadBody(ApiModel):
    isRead: bool = Field(default=True, description="true: mark as read; false: as unread.")


class AssignCategoryBody(ApiModel):
    category: str = Field(
        min_length=1,
        max_length=255,
        description="The category's name, as in the mailbox's category list.",
    )


@api.route(
    "connections/{connectionId}/messages/{messageId}/flag",
    methods=("POST",),
    operation_id="messages_flag",
    summary="Flag a message for follow-up, mark the flag complete, or clear it.",
    query_model=MailboxQuery,
    request_model=FlagBody,
    responses={200: ResponseSpec("The message", Message)},
    errors=_ERRORS,
)
async def messages_flag(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(FlagBody)
    writer = request.services.mail_writer
    message = await actions.flag(
        writer,
        await open_mailbox(request, query.mailbox, write=True),
        request.route("messageId"),
        body.flagStatus,
    )
    return json_response(message)


@api.route(
    "connections/{connectionId}/messages/{messageId}/markRead",
    methods=("POST",),
    operation_id="messages_mark_read",
    summary="Mark a message as read or unread.",
    query_model=MailboxQuery,
    request_model=MarkReadBody,
    responses={200: ResponseSpec("The message", Message)},
    errors=_ERRORS,
)
async def messages_mark_read(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(MarkReadBody)
    writer = request.services.mail_writer
    message = await actions.mark_read(
        writer,
        await open_mailbox(request, query.mailbox, write=True),
        request.route("messageId"),
        body.isRead,
    )
    return json_response(message)


@api.route(
    "connections/{connectionId}/messages/{messageId}/assignCategory",
    methods=("POST",),
    operation_id="messages_assign_category",
    summary="Add a category to a message, keeping the ones it has.",
    query_model=MailboxQuery,
    request_model=AssignCategoryBody,
    responses={200: ResponseSpec("The message", Message)},
    errors=_ERRORS,
)
async def messages_assign_category(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    body = request.json(AssignCategoryBody)
    writer = request.services.mail_writer
    message = await actions.assign_category(
        writer,
        await open_mailbox(request, query.mailbox, write=True),
        request.route("messageId"),
        body.category,
    )
    return json_response(message)
