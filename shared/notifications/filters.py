"""The caller's filters, as the Outlook connector's "When a new email arrives" offers them,
applied to the message after Graph has notified (Graph's own subscription cannot filter)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from shared.models import ApiModel

# The message fields the filters and the event's `message` read (never the body).
MESSAGE_SELECT = (
    "id,subject,from,sender,toRecipients,ccRecipients,importance,hasAttachments,"
    "receivedDateTime,isRead,conversationId,parentFolderId,bodyPreview,internetMessageId"
)


class Filters(ApiModel):
    """All given filters must match. Address lists are `;`-separated, as in the connector."""

    fromAddress: str | None = Field(
        default=None,
        alias="from",
        max_length=1024,
        description="Sender address(es), `;`-separated.",
    )
    to: str | None = Field(
        default=None, max_length=1024, description="A To recipient, `;`-separated."
    )
    cc: str | None = Field(
        default=None, max_length=1024, description="A Cc recipient, `;`-separated."
    )
    importance: Literal["any", "low", "normal", "high"] = "any"
    hasAttachments: bool | None = None
    subjectContains: str | None = Field(default=None, max_length=255)


def _addresses(value: str | None) -> set[str]:
    return {a.strip().lower() for a in (value or "").split(";") if a.strip()}


def _recipients(message: dict[str, Any], name: str) -> set[str]:
    out: set[str] = set()
    for r in message.get(name) or []:
        address = ((r or {}).get("emailAddress") or {}).get("address")
        if isinstance(address, str):
            out.add(address.lower())
    return out


def matches(filters: Filters, message: dict[str, Any]) -> bool:
    wanted_from = _addresses(filters.fromAddress)
    if wanted_from:
        sender = ((message.get("from") or {}).get("emailAddress") or {}).get("address") or ""
        if str(sender).lower() not in wanted_from:
            return False
    wanted_to = _addresses(filters.to)
    if wanted_to and not wanted_to & _recipients(message, "toRecipients"):
        return False
    wanted_cc = _addresses(filters.cc)
    if wanted_cc and not wanted_cc & _recipients(message, "ccRecipients"):
        return False
    if (
        filters.importance != "any"
        and str(message.get("importance", "")).lower() != filters.importance
    ):
        return False
    if (
        filters.hasAttachments is not None
        and bool(message.get("hasAttachments")) != filters.hasAttachments
    ):
        return False
    subject = str(message.get("subject") or "").lower()
    return not filters.subjectContains or filters.subjectContains.lower() in subject
