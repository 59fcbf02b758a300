"""The manifest seal: an HMAC-SHA256 chain over the manifest's entries, in RowKey order,
under a key derived from a key-ring version.

Why a chain and not one HMAC over a file: entries live as table rows, and the chain lets a
verifier walk them page by page in the same order with constant memory. Why a derived key:
the key ring's AES keys encrypt; using one directly for a MAC as well would mix purposes,
so the seal key is HMAC(aes_key, "export-manifest-seal/v1"). The key version is stored with
the seal, so rotation leaves old seals verifiable while the old version is in the ring.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.crypto.keys import KeyRing
    from shared.store.exports import ManifestEntry

_PURPOSE = b"export-manifest-seal/v1"


class UnknownSealKey(Exception):
    """The seal's key version is no longer in the key ring."""


def seal_key(ring: KeyRing, version: str | None = None) -> tuple[str, bytes]:
    version = version or ring.aes_current
    key = ring.aes_keys.get(version)
    if key is None:
        raise UnknownSealKey(version)
    return version, hmac.new(key, _PURPOSE, hashlib.sha256).digest()


def canonical(entry: ManifestEntry) -> bytes:
    return json.dumps(entry.public(), sort_keys=True, separators=(",", ":")).encode()


class Chain:
    """The chain built one entry at a time, so that a manifest is sealed as it is read
    page by page, never held whole."""

    def __init__(self, key: bytes, export_id: str) -> None:
        self._key = key
        self._digest = hmac.new(key, export_id.encode(), hashlib.sha256).digest()

    def add(self, entry: ManifestEntry) -> None:
        self._digest = hmac.new(self._key, self._digest + canonical(entry), hashlib.sha256).digest()

    def hexdigest(self) -> str:
        return self._digest.hex()


def chain(key: bytes, export_id: str, entries: Iterable[ManifestEntry]) -> str:
    """h0 = HMAC(k, exportId); h_i = HMAC(k, h_{i-1} || entry_i); the hex of the last h."""
    built = Chain(key, export_id)
    for entry in entries:
        built.add(entry)
    return built.hexdigest()
