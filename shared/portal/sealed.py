"""Small values sealed for the browser (cookies, links) with the app's credential envelope.

The envelope's associated data binds each value to its purpose (a sign-in flow cookie cannot
be replayed as a session cookie, nor a session as an option link), and every value carries
its own expiry, checked on opening. Nothing is stored server-side.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from shared.crypto.envelope import CiphertextRejected, RowAddress
from shared.crypto.keyring import KeyRingCache

MAX_SEALED_CHARS = 3500  # cookies hold about 4 KiB with their name and attributes


class SealedValues:
    def __init__(self, keys: KeyRingCache, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._clock = clock

    @staticmethod
    def _address(purpose: str) -> RowAddress:
        return RowAddress("browser", purpose, "v1")

    async def seal(self, purpose: str, payload: dict[str, Any], ttl_seconds: float) -> str:
        plaintext = json.dumps(
            {"exp": self._clock() + ttl_seconds, "v": payload}, separators=(",", ":")
        ).encode()
        envelope = await self._keys.envelope()
        sealed = envelope.seal(plaintext, self._address(purpose), "S")
        if sealed["SParts"] != 1:
            raise ValueError("value too large to seal for a browser")
        wire = json.dumps(
            [
                sealed["SAesKey"],
                sealed["SFernetKey"],
                base64.urlsafe_b64encode(sealed["S0"]).decode(),
            ],
            separators=(",", ":"),
        )
        text = base64.urlsafe_b64encode(wire.encode()).decode().rstrip("=")
        if len(text) > MAX_SEALED_CHARS:
            raise ValueError("value too large to seal for a browser")
        return text

    async def open(self, purpose: str, text: str | None) -> dict[str, Any] | None:
        """The payload, or None when the value is missing, forged, for another purpose,
        sealed under a key this worker lacks, or expired."""
        if not text or len(text) > MAX_SEALED_CHARS:
            return None
        try:
            wire = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            aes, fernet, ciphertext = wire
            entity = {
                "SSchema": 1,
                "SParts": 1,
                "SAesKey": aes,
                "SFernetKey": fernet,
                "S0": base64.urlsafe_b64decode(ciphertext),
            }
            plaintext = await self._keys.open(entity, self._address(purpose), "S")
            data = json.loads(plaintext)
        except (CiphertextRejected, ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("v"), dict):
            return None
        expires = data.get("exp")
        if not isinstance(expires, int | float) or expires <= self._clock():
            return None
        payload: dict[str, Any] = data["v"]
        return payload
