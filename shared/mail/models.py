"""Mail resources as callers see them: Graph's own camelCase names (message, mailFolder,
attachment), so flow makers who know Outlook recognise them.

These models describe the responses in /api/openapi.json and the connector. The service
passes Graph's JSON through an allow-list of these fields rather than re-validating every
message on the hot path; a test checks that what the sandbox returns validates against them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GraphModel(BaseModel):
    # defer_build: validators are built on first use, not at `import function_app`.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class EmailAddress(GraphModel):
    name: str | None = None
    address: str | None = None


class Recipient(GraphModel):
    emailAddress: EmailAddress


class ItemBody(GraphModel):
    contentType: Literal["text", "html"]
    content: str


class DateTimeTimeZone(GraphModel):
    dateTime: str
    timeZone: str | None = None


class FollowupFlag(GraphModel):
    flagStatus: Literal["notFlagged", "complete", "flagged"]
    startDateTime: DateTimeTimeZone | None = None
    dueDateTime: DateTimeTimeZone | None = None
    completedDateTime: DateTimeTimeZone | None = None


class AttachmentInfo(GraphModel):
    id: str
    name: str | None = None
    contentType: str | None = None
    size: int | None = None
    isInline: bool | None = None
    lastModifiedDateTime: datetime | None = None
    odataType: str | None = Field(default=None, alias="@odata.type")


class Message(GraphModel):
    """A message; with `select`, only the chosen fields (and `id`) are present."""

    id: str
    subject: str | None = None
    bodyPreview: str | None = None
    body: ItemBody | None = None
    uniqueBody: ItemBody | None = None
    sender: Recipient | None = None
    from_: Recipient | None = Field(default=None, alias="from")
    toRecipients: list[Recipient] | None = None
    ccRecipients: list[Recipient] | None = None
    bccRecipients: list[Recipient] | None = None
    replyTo: list[Recipient] | None = None
    receivedDateTime: datetime | None = None
    sentDateTime: datetime | None = None
    createdDateTime: datetime | None = None
    lastModifiedDateTime: datetime | None = None
    hasAttachments: bool | None = None
    importance: Literal["low", "normal", "high"] | None = None
    isRead: bool | None = None
    isDraft: bool | None = None
    flag: FollowupFlag | None = None
    categories: list[str] | None = None
    conversationId: str | None = None
    conversationIndex: str | None = None
    internetMessageId: str | None = None
    parentFolderId: str | None = None
    webLink: str | None = None
    inferenceClassification: Literal["focused", "other"] | None = None
    isReadReceiptRequested: bool | None = None
    isDeliveryReceiptRequested: bool | None = None
    changeKey: str | None = None
    attachments: list[AttachmentInfo] | None = None


class MessageList(GraphModel):
    value: list[Message]
    nextCursor: str | None = None
    nextLink: str | None = Field(
        default=None, description="This same request with `cursor` set: the next page's URL."
    )


class MailFolder(GraphModel):
    id: str
    displayName: str | None = None
    parentFolderId: str | None = None
    childFolderCount: int | None = None
    unreadItemCount: int | None = None
    totalItemCount: int | None = None
    isHidden: bool | None = None


class FolderList(GraphModel):
    value: list[MailFolder]
    nextCursor: str | None = None
    nextLink: str | None = Field(
        default=None, description="This same request with `cursor` set: the next page's URL."
    )


class AttachmentList(GraphModel):
    value: list[AttachmentInfo]
    nextCursor: str | None = None
    nextLink: str | None = Field(
        default=None, description="This same request with `cursor` set: the next page's URL."
    )


def wire_fields(model: type[BaseModel]) -> frozenset[str]:
    """The JSON names a model allows (aliases where set)."""
    return frozenset(f.alias or name for name, f in model.model_fields.items())


MESSAGE_FIELDS = wire_fields(Message)
FOLDER_FIELDS = wire_fields(MailFolder)
ATTACHMENT_FIELDS = wire_fields(AttachmentInfo)


def only(item: Mapping[str, Any] | None, fields: frozenset[str]) -> dict[str, Any]:
    """Graph's JSON cut down to the documented fields: nothing undocumented reaches a caller."""
    return {k: v for k, v in (item or {}).items() if k in fields}


def cut_to(item: Any, fields: frozenset[str]) -> dict[str, Any]:
    """`only(item, fields)` for an item the caller owns (just parsed from Graph's answer):
    the fields outside the allow-list are deleted from it in place, the rest keep their
    order. Cheaper than a copy: Graph adds one or two fields (`@odata.etag`) to thirty."""
    if not isinstance(item, dict):
        return only(item, fields)
    for key in item.keys() - fields:
        del item[key]
    return item
