"""The worker's key ring, loaded once and refreshed now and then, so requests make no Key
Vault call: `KeyRingCache.get()` for the ring, `envelope()` for an `Envelope` over it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from shared.crypto.envelope import Envelope, RowAddress, UnknownKeyVersion
from shared.crypto.keys import KeyProvider, KeyRing
from shared.errors import KeyProviderUnavailable

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 600.0
# After a failed refresh, or a refresh forced by an unknown key version, wait at least this
# long before asking the provider again: a forged version label in a row must not become a
# way to hammer Key Vault.
MIN_REFRESH_INTERVAL_SECONDS = 30.0


class KeyRingCache:
    """Holds the ring for `ttl_seconds`, then reloads it on the next `get()`. A new key
    version therefore starts sealing within one TTL on every worker; run rotation after that
    (docs/security.md, "Rotating keys")."""

    def __init__(
        self,
        provider: KeyProvider,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = provider
        self._ttl = ttl_seconds
        self._clock = clock
        self._ring: KeyRing | None = None
        self._envelope: Envelope | None = None
        self._next_load = 0.0
        self._last_attempt: float | None = None

    async def get(self) -> KeyRing:
        if self._ring is None or self._clock() >= self._next_load:
            await self._load()
        assert self._ring is not None
        return self._ring

    async def envelope(self) -> Envelope:
        ring = await self.get()
        if self._envelope is None or self._envelope.keyring is not ring:
            self._envelope = Envelope(ring)
        return self._envelope

    async def refresh(self) -> KeyRing:
        """Reload now, unless a load was attempted within the last 30 seconds."""
        now = self._clock()
        if self._last_attempt is None or now - self._last_attempt >= MIN_REFRESH_INTERVAL_SECONDS:
            await self._load()
        return await self.get()

    async def open(self, entity: Mapping[str, Any], row: RowAddress, prefix: str) -> bytes:
        """`Envelope.open`, refreshing the ring once if the row names a key version this
        worker has not loaded yet (another worker already sealed under a newer version)."""
        try:
            return (await self.envelope()).open(entity, row, prefix)
        except UnknownKeyVersion:
            await self.refresh()
            return (await self.envelope()).open(entity, row, prefix)

    async def _load(self) -> None:
        # Two concurrent first loads may both reach the provider; that costs one extra read
        # and is harmless (the rings are equal), so no lock ties this to one event loop.
        self._last_attempt = self._clock()
        try:
            ring = await self._provider.load()
        except KeyProviderUnavailable:
            if self._ring is None:
                raise
            # Keep sealing and opening with the ring we have rather than failing every
            # request during a Key Vault blip; try again shortly.
            logger.warning("key ring refresh failed; keeping the loaded ring")
            self._next_load = self._clock() + min(self._ttl, MIN_REFRESH_INTERVAL_SECONDS)
            return
        self._ring = ring
        self._next_load = self._clock() + self._ttl
