"""Paging cursors: Graph's `@odata.nextLink`, signed, expiring and bound to a connection.

A cursor is `base64url(version, flag, expiry, link) "." base64url(HMAC-SHA256[:16])`, where
link is the nextLink *relative to GRAPH_BASE_URL* (zlib'd when that is shorter). The
connection id is not stored but mixed into the MAC, so a cursor is worthless on another
connection and reveals nothing about it. Decoding checks size, MAC (constant time), expiry,
and that the rebuilt URL is still on GRAPH_BASE_URL before anyone may request it: the
service never calls a URL a caller wrote.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from shared.errors import InvalidCursor
from shared.graph.paths import is_within_base

if TYPE_CHECKING:
    from shared.config import Settings

_VERSION = 1
_PLAIN, _ZLIB = 0, 1
_HEADER = struct.Struct(">BBQ")  # version, compression flag, expiry (Unix seconds)
_MAC_BYTES = 16  # 128-bit tag: forgery stays out of reach, the cursor stays short
MAX_CURSOR_LENGTH = 8192

_process_secret: bytes | None = None
_process_secret_lock = threading.Lock()


def process_local_secret() -> bytes:
    """A random key for this worker process, used when CURSOR_SECRET is unset (local only;
    production requires the setting, see shared.config). Cursors then die with the process."""
    global _process_secret
    with _process_secret_lock:
        if _process_secret is None:
            _process_secret = secrets.token_bytes(32)
        return _process_secret


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encodes nextLinks into cursors and back. `clock` returns Unix seconds (injectable)."""

    def __init__(
        self,
        secret: bytes,
        base_url: str,
        *,
        ttl_seconds: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the cursor secret must be at least 32 bytes")
        # Why a derived key: the configured secret may serve other purposes later; this one
        # is only ever used for cursors.
        self._key = hmac.new(secret, b"oia-cursor-key-v1", hashlib.sha256).digest()
        self._base = base_url.rstrip("/")
        self._ttl = ttl_seconds
        self._clock = clock

    def encode(self, next_link: str, connection_id: str) -> str:
        """The cursor for `next_link`, valid for this connection until the TTL passes.

        Raises ValueError if the link is not on GRAPH_BASE_URL (Graph never sends such a link;
        refusing it here keeps a poisoned link from ever becoming a signed cursor)."""
        if not is_within_base(next_link, self._base):
            raise ValueError("nextLink is not on the configured Graph base URL")
        suffix = next_link[len(self._base) :].encode()
        packed = zlib.compress(suffix, 9)
        # zlib only when it pays: short links stay plain.
        flag, data = (_ZLIB, packed) if len(packed) < len(suffix) else (_PLAIN, suffix)
        header = _HEADER.pack(_VERSION, flag, int(self._clock()) + self._ttl)
        body = _b64encode(header + data)
        return f"{body}.{_b64encode(self._mac(body, connection_id))}"

    def decode(self, cursor: str, connection_id: str) -> str:
        """The nextLink inside `cursor`; InvalidCursor if it was altered, expired, belongs to
        another connection, or does not lead to GRAPH_BASE_URL."""
        if not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_LENGTH:
            raise InvalidCursor()
        body, dot, tag = cursor.partition(".")
        if not dot or not body or not tag:
            raise InvalidCursor()
        # The MAC is checked before the payload is even decoded: nothing a caller crafted is
        # parsed. Comparing canonical text (not decoded bytes) also refuses the variants that
        # unpadded base64 accepts for one tag (unused low bits in its last character).
        if not hmac.compare_digest(tag, _b64encode(self._mac(body, connection_id))):
            raise InvalidCursor()
        try:
            raw = _b64decode(body)
            version, flag, expires = _HEADER.unpack_from(raw)
            data = raw[_HEADER.size :]
            suffix = (zlib.decompress(data) if flag == _ZLIB else data).decode()
        except (binascii.Error, ValueError, zlib.error, struct.error):
            raise InvalidCursor() from None
        if version != _VERSION or flag not in (_PLAIN, _ZLIB):
            raise InvalidCursor()
        if self._clock() >= expires:
            raise InvalidCursor("The cursor has expired")
        next_link = self._base + suffix
        if not is_within_base(next_link, self._base):
            raise InvalidCursor()
        return next_link

    def _mac(self, body: str, connection_id: str) -> bytes:
        message = f"{_VERSION}\x00{connection_id}\x00{body}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def cursor_codec_from_settings(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> CursorCodec:
    """The codec configured by CURSOR_SECRET / CURSOR_TTL_SECONDS / GRAPH_BASE_URL."""
    return CursorCodec(
        settings.cursor_secret or process_local_secret(),
        settings.graph_base_url,
        ttl_seconds=settings.CURSOR_TTL_SECONDS,
        clock=clock,
    )
