"""Caller routes for reading mail (bearer token; the connection must be the caller's)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import azure.functions as func
from pydantic import Field, field_validator

from shared.errors import (
    ConnectionNotFound,
    GraphError,
    GraphThrottled,
    GraphUnavailable,
    InvalidCursor,
    NotFound,
    ReauthRequired,
    StorageUnavailable,
    ValidationFailed,
)
from shared.graph.odata import ListQuery, MessageFilters
from shared.http.api import (
    ApiBlueprint,
    ApiRequest,
    ResponseSpec,
    json_response,
    passthrough_response,
)
from shared.http.downloads import content_disposition, download_media_type
from shared.http.models import ApiModel, MailboxQuery, mailbox_field
from shared.mail.models import AttachmentInfo, AttachmentList, FolderList, Message, MessageList

if TYPE_CHECKING:
    from shared.mail.service import MailReader

api = ApiBlueprint("mail")

_ERRORS = (
    ValidationFailed,
    InvalidCursor,
    ConnectionNotFound,
    NotFound,
    ReauthRequired,
    GraphThrottled,
    GraphError,
    GraphUnavailable,
    StorageUnavailable,
)


class MessageListQuery(ApiModel):
    folder: str = Field(
        default="inbox",
        max_length=512,
        description="Well-known folder name (inbox, drafts, sentitems, deleteditems, archive, "
        "junkemail) or a folder id; `all` lists every folder.",
    )
    top: int = Field(default=25, ge=1, le=1000)
    cursor: str | None = Field(default=None, max_length=8192)
    unread: bool | None = None
    flagged: bool | None = None
    from_: str | None = Field(default=None, alias="from", max_length=256)
    to: str | None = Field(default=None, max_length=256)
    subjectContains: str | None = Field(default=None, max_length=256)
    hasAttachments: bool | None = None
    importance: Literal["low", "normal", "high"] | None = None
    receivedAfter: datetime | None = None
    receivedBefore: datetime | None = None
    search: str | None = Field(
        default=None, max_length=1024, description="KQL; not combinable with filters."
    )
    select: str | None = Field(
        default=None, max_length=1024, description="Comma-separated message fields."
    )
    orderBy: Literal["receivedDateTime desc", "receivedDateTime asc"] | None = None
    mailbox: str | None = mailbox_field()

    @field_validator("receivedAfter", "receivedBefore")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone (e.g. 2026-01-31T00:00:00Z)")
        return value

    def list_query(self) -> ListQuery:
        return ListQuery(
            top=self.top,
            filters=MessageFilters(
                unread=self.unread,
                flagged=self.flagged,
                from_address=self.from_,
                to_address=self.to,
                subject_contains=self.subjectContains,
                has_attachments=self.hasAttachments,
                importance=self.importance,
                received_after=self.receivedAfter,
                received_before=self.receivedBefore,
            ),
            search=self.search,
            select=[f.strip() for f in self.select.split(",") if f.strip()]
            if self.select
            else None,
            order_by=self.orderBy,
        )


class MessageQuery(ApiModel):
    bodyType: Literal["html", "text"] = "html"
    includeAttachments: bool = False
    mailbox: str | None = mailbox_field()
    body: Literal["full", "unique"] = Field(
        default="full",
        description="unique: answer uniqueBody (the new text, without quoted history) "
        "instead of body.",
    )


class PageQuery(ApiModel):
    cursor: str | None = Field(default=None, max_length=8192)
    mailbox: str | None = mailbox_field()


def _reader(request: ApiRequest) -> MailReader:
    return request.services.mail_reader


def _page(request: ApiRequest, items: list[Any], cursor: str | None) -> func.HttpResponse:
    """A collection page: `nextCursor`, and `nextLink` = this request with `cursor` set (what
    Power Automate's x-ms-pageable follows)."""
    next_link = None
    if cursor:
        url = urlsplit(request.raw.url)
        query = [(k, v) for k, v in parse_qsl(url.query, keep_blank_values=True) if k != "cursor"]
        next_link = urlunsplit(url._replace(query=urlencode([*query, ("cursor", cursor)])))
    return passthrough_response({"value": items, "nextCursor": cursor, "nextLink": next_link})


@api.route(
    "connections/{connectionId}/messages",
    methods=("GET",),
    operation_id="messages_list",
    summary="List messages in a folder, filtered or searched, newest first, with a cursor.",
    query_model=MessageListQuery,
    responses={200: ResponseSpec("A page of messages", MessageList)},
    errors=_ERRORS,
)
async def messages_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MessageListQuery)
    page = await _reader(request).list_messages(
        request.caller,
        request.route("connectionId"),
        folder=query.folder,
        query=query.list_query(),
        cursor=query.cursor,
        mailbox=query.mailbox,
        correlation_id=request.correlation_id,
    )
    return _page(request, page.items, page.next_cursor)


@api.route(
    "connections/{connectionId}/messages/{messageId}",
    methods=("GET",),
    operation_id="messages_get",
    summary="Get one message (optionally with its attachments' metadata).",
    query_model=MessageQuery,
    responses={200: ResponseSpec("The message", Message)},
    errors=_ERRORS,
)
async def messages_get(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MessageQuery)
    message = await _reader(request).get_message(
        request.caller,
        request.route("connectionId"),
        request.route("messageId"),
        body_type=query.bodyType,
        include_attachments=query.includeAttachments,
        mailbox=query.mailbox,
        correlation_id=request.correlation_id,
        unique_body=query.body == "unique",
    )
    return passthrough_response(message)


@api.route(
    "connections/{connectionId}/messages/{messageId}/mime",
    methods=("GET",),
    operation_id="messages_mime",
    summary="Export a message as MIME (.eml).",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("The message as message/rfc822", media_type="message/rfc822")},
    errors=_ERRORS,
)
async def messages_mime(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    data = await _reader(request).get_mime(
        request.caller,
        request.route("connectionId"),
        request.route("messageId"),
        query.mailbox,
        request.correlation_id,
    )
    return func.HttpResponse(
        body=data,
        status_code=200,
        mimetype="message/rfc822",
        headers={"Content-Disposition": 'attachment; filename="message.eml"'},
    )


@api.route(
    "connections/{connectionId}/folders",
    methods=("GET",),
    operation_id="folders_list",
    summary="List the mailbox's top-level folders.",
    query_model=PageQuery,
    responses={200: ResponseSpec("Folders", FolderList)},
    errors=_ERRORS,
)
async def folders_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(PageQuery)
    page = await _reader(request).list_folders(
        request.caller,
        request.route("connectionId"),
        parent=None,
        cursor=query.cursor,
        mailbox=query.mailbox,
        correlation_id=request.correlation_id,
    )
    return _page(request, page.items, page.next_cursor)


@api.route(
    "connections/{connectionId}/folders/{folderId}/children",
    methods=("GET",),
    operation_id="folders_children",
    summary="List a folder's child folders.",
    query_model=PageQuery,
    responses={200: ResponseSpec("Folders", FolderList)},
    errors=_ERRORS,
)
async def folders_children(request: ApiRequest) -> func.HttpResponse:
    query = request.query(PageQuery)
    page = await _reader(request).list_folders(
        request.caller,
        request.route("connectionId"),
        parent=request.route("folderId"),
        cursor=query.cursor,
        mailbox=query.mailbox,
        correlation_id=request.correlation_id,
    )
    return _page(request, page.items, page.next_cursor)


@api.route(
    "connections/{connectionId}/messages/{messageId}/attachments",
    methods=("GET",),
    operation_id="attachments_list",
    summary="List a message's attachments (metadata only).",
    query_model=PageQuery,
    responses={200: ResponseSpec("Attachments", AttachmentList)},
    errors=_ERRORS,
)
async def attachments_list(request: ApiRequest) -> func.HttpResponse:
    query = request.query(PageQuery)
    page = await _reader(request).list_attachments(
        request.caller,
        request.route("connectionId"),
        request.route("messageId"),
        query.cursor,
        query.mailbox,
        request.correlation_id,
    )
    return _page(request, page.items, page.next_cursor)


@api.route(
    "connections/{connectionId}/messages/{messageId}/attachments/{attachmentId}",
    methods=("GET",),
    operation_id="attachments_get",
    summary="One attachment's metadata.",
    query_model=MailboxQuery,
    responses={200: ResponseSpec("The attachment", AttachmentInfo)},
    errors=_ERRORS,
)
async def attachments_get(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    info = await _reader(request).get_attachment(
        request.caller,
        request.route("connectionId"),
        request.route("messageId"),
        request.route("attachmentId"),
        query.mailbox,
        request.correlation_id,
    )
    return json_response(info)


@api.route(
    "connections/{connectionId}/messages/{messageId}/attachments/{attachmentId}/content",
    methods=("GET",),
    operation_id="attachments_content",
    summary="An attachment's bytes, with its content type.",
    query_model=MailboxQuery,
    responses={
        200: ResponseSpec("The attachment's content", media_type="application/octet-stream")
    },
    errors=_ERRORS,
)
async def attachments_content(request: ApiRequest) -> func.HttpResponse:
    query = request.query(MailboxQuery)
    content = await _reader(request).attachment_content(
        request.caller,
        request.route("connectionId"),
        request.route("messageId"),
        request.route("attachmentId"),
        query.mailbox,
        request.correlation_id,
    )
    return func.HttpResponse(
        body=content.data,
        status_code=200,
        headers={
            # Both from the sender's mail: sanitised so that no name or type breaks the headers.
            "Content-Type": download_media_type(content.content_type),
            "Content-Disposition": content_disposition(content.filename),
            "X-Content-Type-Options": "nosniff",
        },
    )
