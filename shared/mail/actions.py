"""The one-purpose message actions flow makers look for (flag, mark read or unread, assign a
category), each a use of the writer's update-message service on an open mailbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from shared.mail.compose import FlagIn, MessagePatchBody

FlagStatus = Literal["flagged", "complete", "notFlagged"]

if TYPE_CHECKING:  # the writer imports httpx: not at cold start
    from shared.connections.mailbox import ConnectedMailbox
    from shared.mail.writer import MailWriter


async def flag(
    writer: MailWriter, mb: ConnectedMailbox, message_id: str, status: FlagStatus
) -> dict[str, Any]:
    body = MessagePatchBody(flag=FlagIn(flagStatus=status))
    return await writer.update_message(mb, message_id, body)


async def mark_read(
    writer: MailWriter, mb: ConnectedMailbox, message_id: str, is_read: bool
) -> dict[str, Any]:
    return await writer.update_message(mb, message_id, MessagePatchBody(isRead=is_read))


async def assign_category(
    writer: MailWriter, mb: ConnectedMailbox, message_id: str, category: str
) -> dict[str, Any]:
    """Add `category` to the message's categories, keeping the ones it has (Graph's PATCH
    replaces the whole list, so the current list is read first; a change made between the
    two calls by someone else can be lost, as in Outlook's own add-ins)."""
    from shared.graph import GraphRequest  # the Graph client imports httpx: not at cold start

    response = await mb.send(
        GraphRequest("GET", mb.path.message(message_id), params={"$select": "categories"})
    )
    current = [str(c) for c in (response.json() or {}).get("categories") or []]
    if any(c.lower() == category.lower() for c in current):
        merged = current  # Outlook matches category names without regard to case
    else:
        merged = [*current, category]
    return await writer.update_message(mb, message_id, MessagePatchBody(categories=merged))
