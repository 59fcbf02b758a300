"""The two-layer credential envelope: seal a secret into Table Storage properties, open it.

Inner layer Fernet (AES-128-CBC + HMAC-SHA256, `MultiFernet` so one version may hold several
keys), outer layer AES-256-GCM whose associated data binds the ciphertext to its row and to
the key versions stored beside it. docs/security.md describes both honestly.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto.keys import KeyRing

SCHEMA_VERSION = 1
# Edm.Binary properties hold at most 64 KiB each, so a larger ciphertext is split across
# numbered properties.
PART_BYTES = 64 * 1024
# An entity holds at most 1 MiB in all; this leaves room for the row's metadata columns, the
# Fernet and GCM overheads and the property names.
MAX_PLAINTEXT_BYTES = 900 * 1024
MAX_PARTS = 16
NONCE_BYTES = 12  # 96 bits: the size AES-GCM is specified and analysed for
_GCM_TAG_BYTES = 16
_SEPARATOR = "|"


class CiphertextRejected(Exception):
    """A sealed value failed to open: tampered, copied from another row, relabelled, or under
    a key version this worker does not hold. An integrity failure of our own storage (not a
    caller's error), so deliberately not an ApiError. The message names the row's table,
    the property prefix and the reason — never key material or plaintext."""


class UnknownKeyVersion(CiphertextRejected):
    """The row names a key version this key ring lacks. Either the row was written by a
    worker with a newer ring (refresh the ring and try once more) or the label is forged."""


@dataclass(frozen=True)
class RowAddress:
    """Where a sealed value lives; bound into the outer layer's associated data."""

    table: str
    partition_key: str
    row_key: str

    def __post_init__(self) -> None:
        # The associated data joins its fields with "|": a field that itself held "|" could
        # make two different rows produce the same associated data (("a|b", "c") versus
        # ("a", "b|c")), so such addresses are refused outright.
        for name in ("table", "partition_key", "row_key"):
            value = getattr(self, name)
            if not value or _SEPARATOR in value:
                raise ValueError(f"RowAddress.{name} must be non-empty and free of '|'")


@dataclass(frozen=True)
class SealedTable:
    """A store's declaration of what it seals: `table` (the name after TABLE_PREFIX) holds
    values sealed under the property prefix `prefix`. Every store that seals declares one
    at module level; key rotation (shared/crypto/rotation.py) rewrites exactly the tables
    so declared (shared/store/sealed.py collects them), so none can be left behind."""

    table: str
    prefix: str

    def full_name(self, table_prefix: str) -> str:
        return f"{table_prefix}{self.table}"


class Envelope:
    """Seals and opens values with one `KeyRing`. Cheap to build; keep one per ring."""

    def __init__(self, keyring: KeyRing) -> None:
        self._ring = keyring
        self._fernets: dict[str, MultiFernet] = {}

    @property
    def keyring(self) -> KeyRing:
        return self._ring

    def seal(self, plaintext: bytes, row: RowAddress, prefix: str) -> dict[str, Any]:
        """Entity properties to merge into `row`: `{prefix}0`..`{prefix}{n-1}` (bytes, each at
        most 64 KiB), `{prefix}Parts`, `{prefix}AesKey`, `{prefix}FernetKey`, `{prefix}Schema`.

        Write the entity with `UpdateMode.REPLACE` (or create it): a MERGE would keep
        `{prefix}N` parts left over from an older, larger seal. `open` reads only parts
        `0..Parts-1`, so leftovers could never be mistaken for data, but REPLACE keeps no
        stale ciphertext lying around.
        """
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            raise ValueError(
                f"plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT_BYTES} bytes "
                "(a table entity holds at most 1 MiB)"
            )
        aes_version = self._ring.aes_current
        fernet_version = self._ring.fernet_current
        _check_label(aes_version)
        _check_label(fernet_version)
        # Fernet returns its token in base64; the raw token is stored instead, since base64
        # would inflate the ciphertext by a third against the 1 MiB entity limit. Nothing is
        # lost: `open` re-encodes it before Fernet verifies it.
        token = self._fernet(fernet_version).encrypt(plaintext)
        inner = base64.urlsafe_b64decode(token)
        # A fresh random nonce for every seal: GCM loses both confidentiality and integrity
        # if one (key, nonce) pair ever encrypts two messages. 96 random bits keep that
        # chance negligible for far more writes than a key version will ever see.
        nonce = os.urandom(NONCE_BYTES)
        aad = _associated_data(row, SCHEMA_VERSION, aes_version, fernet_version)
        outer = nonce + AESGCM(self._aes_key(aes_version)).encrypt(nonce, inner, aad)
        parts = [outer[i : i + PART_BYTES] for i in range(0, len(outer), PART_BYTES)]
        properties: dict[str, Any] = {f"{prefix}{i}": part for i, part in enumerate(parts)}
        properties[f"{prefix}Parts"] = len(parts)
        properties[f"{prefix}AesKey"] = aes_version
        properties[f"{prefix}FernetKey"] = fernet_version
        properties[f"{prefix}Schema"] = SCHEMA_VERSION
        return properties

    def open(self, entity: Mapping[str, Any], row: RowAddress, prefix: str) -> bytes:
        """The plaintext sealed in `entity` under `prefix` for `row`; `CiphertextRejected` (or
        its subclass `UnknownKeyVersion`) if it does not open exactly as sealed."""

        def reject(reason: str) -> CiphertextRejected:
            return CiphertextRejected(f"{row.table} {prefix}: {reason}")

        schema = _value(entity.get(f"{prefix}Schema"))
        if schema != SCHEMA_VERSION:
            raise reject("missing or unsupported schema version")
        count = _value(entity.get(f"{prefix}Parts"))
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PARTS:
            raise reject("missing or invalid part count")
        aes_version = _value(entity.get(f"{prefix}AesKey"))
        fernet_version = _value(entity.get(f"{prefix}FernetKey"))
        if not isinstance(aes_version, str) or not isinstance(fernet_version, str):
            raise reject("missing key versions")
        if aes_version not in self._ring.aes_keys:
            raise UnknownKeyVersion(f"{row.table} {prefix}: unknown AES key version")
        if fernet_version not in self._ring.fernet_keys:
            raise UnknownKeyVersion(f"{row.table} {prefix}: unknown Fernet key version")
        chunks: list[bytes] = []
        for i in range(count):
            part = _value(entity.get(f"{prefix}{i}"))
            if not isinstance(part, bytes | bytearray | memoryview):
                raise reject(f"part {i} missing or not binary")
            chunks.append(bytes(part))
        outer = b"".join(chunks)
        if len(outer) < NONCE_BYTES + _GCM_TAG_BYTES:
            raise reject("ciphertext too short")
        nonce, sealed = outer[:NONCE_BYTES], outer[NONCE_BYTES:]
        try:
            aad = _associated_data(row, SCHEMA_VERSION, aes_version, fernet_version)
        except ValueError:
            raise reject("malformed key version") from None
        try:
            inner = AESGCM(self._aes_key(aes_version)).decrypt(nonce, sealed, aad)
        except InvalidTag:
            # One message for every cause (tampered bytes, another row's ciphertext, relabelled
            # versions): GCM cannot tell them apart, and neither should an attacker.
            raise reject("outer layer failed authentication") from None
        try:
            return self._fernet(fernet_version).decrypt(base64.urlsafe_b64encode(inner))
        except InvalidToken:
            raise reject("inner layer failed authentication") from None

    def is_current(self, entity: Mapping[str, Any], prefix: str) -> bool:
        """Sealed under this ring's newest key versions and the current schema? Rotation
        rewrites the rows for which this is False."""
        labels = (
            _value(entity.get(f"{prefix}Schema")),
            _value(entity.get(f"{prefix}AesKey")),
            _value(entity.get(f"{prefix}FernetKey")),
        )
        return labels == (SCHEMA_VERSION, self._ring.aes_current, self._ring.fernet_current)

    def _aes_key(self, version: str) -> bytes:
        key = self._ring.aes_keys[version]
        # AESGCM would also take a 128- or 192-bit key; the outer layer is promised as AES-256.
        if len(key) != 32:
            raise ValueError("the AES key must be 32 bytes (AES-256)")
        return key

    def _fernet(self, version: str) -> MultiFernet:
        # MultiFernet encrypts with the first key of the version and decrypts with any, so a
        # version may carry older Fernet keys too.
        if version not in self._fernets:
            self._fernets[version] = MultiFernet(
                [Fernet(k) for k in self._ring.fernet_keys[version]]
            )
        return self._fernets[version]


def is_sealed(entity: Mapping[str, Any], prefix: str) -> bool:
    """Does the entity carry a sealed value under `prefix` at all (e.g. not yet revoked)?"""
    # `is not None` rather than `in`: Table Storage answers a $select of a property an
    # entity lacks with that property set to null.
    return entity.get(f"{prefix}Parts") is not None


def _value(raw: Any) -> Any:
    # azure-data-tables hands back most types plainly but wraps some (e.g. Int64) in an
    # EntityProperty(value, edm_type) named tuple.
    return getattr(raw, "value", raw)


def _check_label(version: str) -> None:
    if not version or _SEPARATOR in version:
        raise ValueError("key versions must be non-empty and free of '|'")


def _associated_data(row: RowAddress, schema: int, aes_version: str, fernet_version: str) -> bytes:
    # Binding the table, PartitionKey and RowKey means a ciphertext copied into another row
    # (even within one table) fails; binding the schema and both key versions means the
    # labels beside the ciphertext cannot be changed to steer decryption to another key.
    _check_label(aes_version)
    _check_label(fernet_version)
    fields = [row.table, row.partition_key, row.row_key, str(schema), aes_version, fernet_version]
    return _SEPARATOR.join(fields).encode()
