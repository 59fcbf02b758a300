"""Callers of the bearer tokens this worker has already validated, until each token's `exp`:
a caller who sends the same token again is not checked again (signature, claims, policy).

Why this is safe (docs/security.md, "Validated tokens are remembered until they expire"):
- The key is the SHA-256 of the whole token, never the token: the memory of a worker holds
  nothing a caller could replay. Any change to the token (header, claims, signature) is
  another key, so a tampered token is never found here and goes through every check.
- Only accepted tokens are remembered; every refusal (and its audit event) happens on the
  full path each time.
- An entry lives until the token's `exp` and never past it; from then on the full path
  decides (with its clock skew) and answers `token_expired` as before.
- An entry is dropped as soon as this worker no longer knows the signing key (`kid`) that
  verified it: when a key rollover removes it from the worker's key set.
- Bounded: at most `max_entries`, the least recently used goes first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from shared.auth.caller import Caller

# A worker sees a few callers at a time; a few thousand tokens of ~1 KB of claims each.
MAX_ENTRIES = 2048


@dataclass(frozen=True)
class VerifiedToken:
    caller: Caller
    expires_at: float  # the token's `exp`
    kid: str  # the signing key that verified it


class VerifiedTokens:
    """A bounded, per-worker map from SHA-256(token) to the token's validated caller."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._entries: OrderedDict[bytes, VerifiedToken] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, key: bytes, now: float) -> VerifiedToken | None:
        """The entry for `key` while its token has not expired at `now`."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: bytes, entry: VerifiedToken, now: float) -> None:
        if now >= entry.expires_at or self._max <= 0:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)
