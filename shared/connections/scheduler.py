"""Keeping connections armed for the lifecycle timer: the decisions, made in one place.

The rules of *when* are pure (shared/connections/schedule.py); this service applies them and
writes the due-index hint (shared/store/due.py) *before* the connection row points at it, so
a row only ever names a hint that exists. The stores persist what they are given and decide
nothing. Without an index (tests, tools) nothing is armed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import Due, access_token_expiry, grant_basis, next_due

if TYPE_CHECKING:
    from shared.store.connections import ConnectionStore, SealedCache
    from shared.store.due import DueIndex


class DueScheduler:
    def __init__(
        self, index: DueIndex | None, idle: timedelta, store: ConnectionStore | None = None
    ) -> None:
        self._index = index
        self._store = store
        self.idle = idle

    @property
    def index(self) -> DueIndex | None:
        return self._index

    def plan(self, connection: Connection, cache: bytes, now: datetime) -> Due | None:
        """When the connection next needs the timer (None: never, it is not active)."""
        if self._index is None or connection.status is not ConnectionStatus.ACTIVE:
            return None
        return next_due(
            grant_basis(connection),
            self.idle,
            now=now,
            last_used=connection.last_used_at,
            access_expires=lambda: access_token_expiry(cache),
        )

    async def arm(
        self, connection: Connection, cache: bytes, now: datetime, armed: Due | None = None
    ) -> Connection:
        """`connection` pointing at a hint that reaches it by its next due time: `armed` (a
        hint the caller already wrote, e.g. the lifecycle worker's one for its batch), else
        the one it has when that is still ahead and not too late, else a new one."""
        due = self.plan(connection, cache, now)
        if self._index is None or due is None:
            return connection
        if armed is not None and armed.at <= due.at:
            return replace(connection, due_at=armed.at)
        if connection.due_at is not None and now < connection.due_at <= due.at:
            return connection  # the current hint fires early; the worker then plans the real time
        await self._index.add([connection.id], due)
        return replace(connection, due_at=due.at)

    async def sooner(self, connection: Connection, access: Due) -> datetime | None:
        """For a connection in use: the row's new pointer when `access` (its access token's
        refresh time) comes before its current hint, with that hint written; else None.

        Moving the pointer earlier needs no ETag condition: a hint at the new time exists,
        and hints at later times stay valid (the worker drops only hints earlier than it)."""
        if self._index is None:
            return None
        if connection.due_at is not None and access.at >= connection.due_at:
            return None
        await self._index.add([connection.id], access)
        return access.at

    async def reschedule(self, sealed: SealedCache, due: Due) -> None:
        """Arm the connection with a hint at `due` (its hint fired before it was due). Lost
        to a concurrent write of the row, only the hint stays: that write armed it itself."""
        if self._index is None or self._store is None:
            return
        await self._index.add([sealed.connection.id], due)
        await self._store.point_at(sealed, due.at)

    async def hint(self, connection_ids: Sequence[str], due: Due, attempts: int = 0) -> None:
        """A hint naming `connection_ids` at `due` (a batch's keep-alive, or a retry)."""
        if self._index is not None:
            await self._index.add(connection_ids, due, attempts)
