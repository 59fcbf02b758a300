"""At most N Graph requests in flight per mailbox per worker (Outlook's MailboxConcurrency).

Outlook throttles more than 4 concurrent requests per app and mailbox with 429; queueing
them here is cheaper than provoking and retrying the 429s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0  # holders + waiters; the entry is dropped when it reaches 0
    active: int = 0  # holders


class MailboxLimiter:
    """A semaphore per mailbox key, created on first use and dropped when idle, so that the
    table holds only mailboxes with requests in flight or waiting (it cannot grow unbounded)."""

    def __init__(self, max_in_flight: int = 4) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.max_in_flight = max_in_flight
        self._slots: dict[str, _Slot] = {}

    @asynccontextmanager
    async def slot(self, mailbox_key: str) -> AsyncIterator[None]:
        """Hold one of the mailbox's slots for the body of the `async with`."""
        entry = self._slots.get(mailbox_key)
        if entry is None:
            entry = self._slots[mailbox_key] = _Slot(asyncio.Semaphore(self.max_in_flight))
        entry.users += 1
        try:
            async with entry.semaphore:
                entry.active += 1
                try:
                    yield
                finally:
                    entry.active -= 1
        finally:
            entry.users -= 1
            if entry.users == 0 and self._slots.get(mailbox_key) is entry:
                del self._slots[mailbox_key]

    def in_flight(self, mailbox_key: str) -> int:
        """Requests currently holding a slot of this mailbox (for tests and diagnostics)."""
        entry = self._slots.get(mailbox_key)
        return 0 if entry is None else entry.active

    @property
    def tracked_mailboxes(self) -> int:
        return len(self._slots)
