"""Request bodies of the write routes, in Graph's own camelCase, and how each becomes the
Graph JSON it stands for.

Recipients are Graph `recipient` objects (`{"emailAddress": {"address", "name"?}}`), the
shape Outlook users and Graph's docs show, or one `;`-separated string (shared.mail.recipients);
attachments are Graph file attachments with base64 `contentBytes`. These models are the HTTP
edge (OpenAPI and the connector are generated from them); the writer turns them into Graph
bodies with only properties the v1.0 CSDL defines.
"""

from __future__ import annotations

import binascii
from typing import Any, Literal

from pydantic import Field, field_validator

from shared.mail.recipients import EmailAddressIn, RecipientIn, Recipients
from shared.models import ApiModel

__all__ = ["EmailAddressIn", "RecipientIn"]  # re-exported: callers import them from here

MAX_ATTACHMENTS = 250


class BodyIn(ApiModel):
    contentType: Literal["html", "text"] = "html"
    content: str = Field(default="")


class AttachmentIn(ApiModel):
    """A file attachment; `contentBytes` is base64 (standard alphabet, padded)."""

    name: str = Field(min_length=1, max_length=255)
    contentType: str = Field(default="application/octet-stream", max_length=255)
    contentBytes: str = Field(description="The file's bytes, base64-encoded.")
    isInline: bool = False
    contentId: str | None = Field(default=None, max_length=255)

    @field_validator("contentBytes")
    @classmethod
    def _base64(cls, value: str) -> str:
        # Shape only (length and alphabet of the tail): decoding waits until it is needed, so
        # a 35 MB attachment is decoded once, into the buffer that is uploaded.
        if len(value) % 4 != 0 or (value and not value[-4:].rstrip("=").isascii()):
            raise ValueError("must be base64 (padded)")
        return value

    @property
    def size(self) -> int:
        """Decoded size in bytes, computed from the base64 length (no decoding, no copy)."""
        value = self.contentBytes
        padding = 2 if value.endswith("==") else 1 if value.endswith("=") else 0
        return len(value) // 4 * 3 - padding

    def decoded(self) -> bytes:
        # binascii reads an ASCII str in place; base64.b64decode would first copy it into
        # bytes (another 47 MB for a 35 MB attachment).
        try:
            return binascii.a2b_base64(self.contentBytes, strict_mode=True)
        except (binascii.Error, ValueError):
            raise ValueError("contentBytes is not valid base64") from None


class FlagIn(ApiModel):
    flagStatus: Literal["notFlagged", "complete", "flagged"]


Importance = Literal["low", "normal", "high"]


class MessageFields(ApiModel):
    """The draft-able fields of a message (send, draft create/update)."""

    subject: str | None = Field(default=None, max_length=255)
    body: BodyIn | None = None
    toRecipients: Recipients = Field(default_factory=list)
    ccRecipients: Recipients = Field(default_factory=list)
    bccRecipients: Recipients = Field(default_factory=list)
    replyTo: Recipients = Field(default_factory=list)
    importance: Importance | None = None
    isReadReceiptRequested: bool | None = None
    isDeliveryReceiptRequested: bool | None = None
    categories: list[str] | None = Field(default=None, max_length=50)

    def graph_message(self, *, partial: bool = False) -> dict[str, Any]:
        """The Graph `message` properties set by this body (recipients always, unless
        `partial`: then only fields the caller sent, for PATCH)."""
        out: dict[str, Any] = {}
        sent = self.model_fields_set
        for name in ("subject", "importance", "isReadReceiptRequested", "categories"):
            if name in sent or (not partial and getattr(self, name) is not None):
                out[name] = getattr(self, name)
        if "isDeliveryReceiptRequested" in sent:
            out["isDeliveryReceiptRequested"] = self.isDeliveryReceiptRequested
        if self.body is not None:
            out["body"] = self.body.model_dump()
        for name in ("toRecipients", "ccRecipients", "bccRecipients", "replyTo"):
            if name in sent or (not partial and getattr(self, name)):
                out[name] = [recipient_json(r) for r in getattr(self, name)]
        return {k: v for k, v in out.items() if v is not None or partial}

    def recipient_count(self) -> int:
        return len(self.toRecipients) + len(self.ccRecipients) + len(self.bccRecipients)


def recipient_json(recipient: RecipientIn) -> dict[str, Any]:
    return {"emailAddress": recipient.emailAddress.model_dump(exclude_none=True)}


class SendMessageBody(MessageFields):
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    saveToSentItems: bool = True


class DraftCreateBody(MessageFields):
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)


class DraftUpdateBody(MessageFields):
    """Only the fields sent change (attachments: POST .../attachments)."""


class ReplyBody(ApiModel):
    """reply / replyAll / forward: a `comment` (placed above the quoted original) or a full
    `body`, not both; extra recipients; attachments (then a draft is created, filled and
    sent, since the direct actions take no attachments)."""

    comment: str | None = None
    body: BodyIn | None = None
    toRecipients: Recipients = Field(default_factory=list)
    ccRecipients: Recipients = Field(default_factory=list)
    bccRecipients: Recipients = Field(default_factory=list)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)

    def recipient_count(self) -> int:
        return len(self.toRecipients) + len(self.ccRecipients) + len(self.bccRecipients)


class MessagePatchBody(ApiModel):
    isRead: bool | None = None
    flag: FlagIn | None = None
    categories: list[str] | None = Field(default=None, max_length=50)
    importance: Importance | None = None

    def graph_patch(self) -> dict[str, Any]:
        return {
            name: (value.model_dump() if isinstance(value, ApiModel) else value)
            for name in self.model_fields_set
            if (value := getattr(self, name)) is not None
        }


class DestinationBody(ApiModel):
    destinationFolder: str = Field(
        min_length=1, max_length=512, description="Well-known folder name or a folder id."
    )


class FolderCreateBody(ApiModel):
    displayName: str = Field(min_length=1, max_length=255)
    parentFolder: str | None = Field(
        default=None,
        max_length=512,
        description="Create under this folder (well-known name or id); default: top level.",
    )
    isHidden: bool = False


class FolderRenameBody(ApiModel):
    displayName: str = Field(min_length=1, max_length=255)


BulkAction = Literal["markRead", "markUnread", "flag", "unflag", "categorize", "move", "delete"]
DeleteMode = Literal["trash", "soft", "permanent"]


class BulkBody(ApiModel):
    ids: list[str] = Field(min_length=1, max_length=1000)
    action: BulkAction
    categories: list[str] | None = Field(
        default=None, max_length=50, description="categorize: the categories to set."
    )
    destinationFolder: str | None = Field(
        default=None, max_length=512, description="move: well-known folder name or id."
    )
    mode: DeleteMode = Field(default="trash", description="delete: as DELETE's `mode`.")


class SentMessage(ApiModel):
    """202 answer of send, draft send, reply and forward."""

    id: str | None = Field(
        default=None, description="The sent message's immutable id, when Graph gives one."
    )
    internetMessageId: str | None = None


class BulkItemResult(ApiModel):
    id: str
    status: int = Field(description="The HTTP status Graph answered for this item.")
    code: str | None = Field(default=None, description="Stable error code when it failed.")


class BulkResult(ApiModel):
    action: str
    succeeded: int
    failed: int
    value: list[BulkItemResult]
