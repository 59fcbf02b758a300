"""Opening the caller's connected mailbox from a request: the route's `connectionId`, the
caller, the correlation id. Every route that acts on a connection opens it here, once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.http.api import ApiRequest

if TYPE_CHECKING:
    from shared.connections.mailbox import ConnectedMailbox


async def open_mailbox(
    request: ApiRequest, mailbox: str | None = None, *, write: bool = False
) -> ConnectedMailbox:
    """The caller's connection (and `mailbox`, a shared one, if named), authorized once for
    reading or, with `write`, for writing; someone else's connection answers 404."""
    return await request.services.mailboxes.open(
        request.caller,
        request.route("connectionId"),
        mailbox,
        write=write,
        correlation_id=request.correlation_id,
    )
