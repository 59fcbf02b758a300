"""A sealed value as one short URL-safe string, for a value that lives in a cookie rather than
in a table row: the same two-layer envelope, bound to a `RowAddress` that names what the value
belongs to (a sign-in's `state`, say) instead of a row.

Form: `<schema>.<AES key version>.<Fernet key version>.<base64url of the outer ciphertext>`.
The labels are bound into the associated data exactly as for a row, so none can be changed.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from shared.crypto.envelope import CiphertextRejected, Envelope, RowAddress
from shared.crypto.keyring import KeyRingCache

MAX_SEALED_CHARS = 3500  # cookies hold about 4 KiB with their name and attributes
_PREFIX = "V"  # the property prefix the envelope works with; never stored anywhere
_SEPARATOR = "."


def seal_text(envelope: Envelope, plaintext: bytes, bound_to: RowAddress) -> str:
    """`plaintext` sealed for `bound_to`, as `<schema>.<aes>.<fernet>.<ciphertext>`."""
    properties = envelope.seal(plaintext, bound_to, _PREFIX)
    if properties[f"{_PREFIX}Parts"] != 1:
        raise ValueError("a sealed text holds at most one part (64 KiB)")
    labels = [str(properties[f"{_PREFIX}{n}"]) for n in ("Schema", "AesKey", "FernetKey")]
    if any(_SEPARATOR in label for label in labels):
        raise ValueError("key versions sealed into a text must be free of '.'")
    outer = base64.urlsafe_b64encode(properties[f"{_PREFIX}0"]).rstrip(b"=").decode()
    return _SEPARATOR.join([*labels, outer])


async def open_text(keys: KeyRingCache, text: str, bound_to: RowAddress) -> bytes:
    """The plaintext of `seal_text(…, bound_to)`; `CiphertextRejected` for anything else
    (malformed, tampered, sealed for another address, or under a key version no longer held)."""
    entity = _as_entity(text)
    return await keys.open(entity, bound_to, _PREFIX)


def _as_entity(text: str) -> dict[str, Any]:
    parts = text.split(_SEPARATOR)
    if (
        len(parts) != 4
        or not all(parts)
        or not parts[0].isascii()
        or not parts[0].isdigit()
        or len(parts[0]) > 3
    ):
        raise CiphertextRejected("sealed text: malformed")
    schema, aes_version, fernet_version, outer = parts
    try:
        ciphertext = base64.urlsafe_b64decode(outer + "=" * (-len(outer) % 4))
    except (binascii.Error, ValueError):
        raise CiphertextRejected("sealed text: malformed") from None
    return {
        f"{_PREFIX}Schema": int(schema),
        f"{_PREFIX}AesKey": aes_version,
        f"{_PREFIX}FernetKey": fernet_version,
        f"{_PREFIX}Parts": 1,
        f"{_PREFIX}0": ciphertext,
    }


class SealedValues:
    """Small values sealed for the browser (cookies, links), each bound to its purpose (a
    sign-in flow cookie cannot be replayed as a session cookie, nor a session as an option
    link) and carrying its own expiry, checked on opening. Nothing is stored server-side, so
    nothing here is for key rotation to rewrite: a value sealed under a retired key version
    simply no longer opens."""

    def __init__(self, keys: KeyRingCache, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._clock = clock

    @staticmethod
    def _address(purpose: str) -> RowAddress:
        return RowAddress("browser", purpose, "v1")

    async def wrap(self, purpose: str, payload: dict[str, Any], ttl_seconds: float) -> str:
        plaintext = json.dumps(
            {"exp": self._clock() + ttl_seconds, "v": payload}, separators=(",", ":")
        ).encode()
        text = seal_text(await self._keys.envelope(), plaintext, self._address(purpose))
        if len(text) > MAX_SEALED_CHARS:
            raise ValueError("value too large to seal for a browser")
        return text

    async def unwrap(self, purpose: str, text: str | None) -> dict[str, Any] | None:
        """The payload, or None when the value is missing, forged, for another purpose,
        sealed under a key this worker lacks, or expired."""
        if not text or len(text) > MAX_SEALED_CHARS:
            return None
        try:
            data = json.loads(await open_text(self._keys, text, self._address(purpose)))
        except (CiphertextRejected, ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("v"), dict):
            return None
        expires = data.get("exp")
        if not isinstance(expires, int | float) or expires <= self._clock():
            return None
        payload: dict[str, Any] = data["v"]
        return payload
