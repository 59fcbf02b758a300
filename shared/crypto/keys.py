"""Key material for the credential envelope: a `KeyRing` loaded once per worker.

Two keys, two rotation paths (docs/security.md): an AES-256 key for the outer AES-GCM
layer and a list of Fernet keys for the inner layer. The newest version encrypts; every
loaded version decrypts. Locally the material comes from settings; in production from Key
Vault secrets (every enabled version), read with the managed identity.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shared.config import KeyProviderKind, Settings
from shared.errors import KeyProviderUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyRing:
    """Versions are opaque labels (Key Vault secret versions, or `local-N`)."""

    aes_keys: dict[str, bytes]  # version → 32-byte key
    aes_current: str
    fernet_keys: dict[str, list[bytes]]  # version → Fernet keys (newest first)
    fernet_current: str

    def __post_init__(self) -> None:
        # Checked once at load, so that a malformed secret stops the worker at start-up (a
        # readiness failure) rather than failing some later request. Messages name versions
        # only, never key material.
        if self.aes_current not in self.aes_keys:
            raise ValueError("the current AES key version is not loaded")
        if self.fernet_current not in self.fernet_keys:
            raise ValueError("the current Fernet key version is not loaded")
        # Versions are joined with "|" into the envelope's associated data (envelope.py).
        if any(not v or "|" in v for v in [*self.aes_keys, *self.fernet_keys]):
            raise ValueError("key versions must be non-empty and free of '|'")
        for version, key in self.aes_keys.items():
            if len(key) != 32:
                raise ValueError(f"AES key version {version!r} is not 32 bytes (AES-256)")
        from cryptography.fernet import Fernet  # here: keeps `import function_app` cheap

        for version, keys in self.fernet_keys.items():
            if not keys:
                raise ValueError(f"Fernet key version {version!r} holds no key")
            for key in keys:
                try:
                    Fernet(key)
                except (ValueError, TypeError):
                    raise ValueError(
                        f"Fernet key version {version!r} holds a malformed key"
                    ) from None


class KeyProvider(Protocol):
    name: str

    async def load(self) -> KeyRing: ...

    async def check(self) -> None: ...


class LocalKeyProvider:
    """Development only (settings refuse it in production): key material from settings, or
    from a git-ignored JSON file created with fresh random keys on first use.

    The file may hold several versions of each key (newest = current), so rotation can be
    exercised locally exactly as with Key Vault:
    `{"aes": {"local-1": "<b64>"}, "fernet": {"local-1": ["<key>", ...]},
      "current": {"aes": "local-1", "fernet": "local-1"}}`
    """

    name = "keyProvider"

    def __init__(
        self, aes_key_b64: str | None, fernet_keys_csv: str | None, key_file: Path
    ) -> None:
        self._aes_key_b64 = aes_key_b64
        self._fernet_keys_csv = fernet_keys_csv
        self._key_file = key_file

    async def load(self) -> KeyRing:
        try:
            if self._aes_key_b64 is not None and self._fernet_keys_csv is not None:
                return KeyRing(
                    aes_keys={"local-1": base64.b64decode(self._aes_key_b64)},
                    aes_current="local-1",
                    fernet_keys={"local-1": _split_fernet(self._fernet_keys_csv)},
                    fernet_current="local-1",
                )
            return _ring_from_file_data(read_or_create_key_file(self._key_file))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            # Never the exception text: it might quote key material.
            logger.warning("local key material unusable: %s", type(exc).__name__)
            raise KeyProviderUnavailable("The local key material is unusable.") from None

    async def check(self) -> None:
        await self.load()


def _split_fernet(csv: str) -> list[bytes]:
    return [k.strip().encode() for k in csv.split(",") if k.strip()]


def _ring_from_file_data(data: dict[str, Any]) -> KeyRing:
    return KeyRing(
        aes_keys={v: base64.b64decode(k, validate=True) for v, k in data["aes"].items()},
        aes_current=data["current"]["aes"],
        fernet_keys={v: [k.encode() for k in ks] for v, ks in data["fernet"].items()},
        fernet_current=data["current"]["fernet"],
    )


def _fresh_aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _fresh_fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def read_or_create_key_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = {
            "aes": {"local-1": _fresh_aes_key()},
            "fernet": {"local-1": [_fresh_fernet_key()]},
            "current": {"aes": "local-1", "fernet": "local-1"},
        }
        # Created owner-only and atomically: another worker may be starting at the same time.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        _write_owner_only(tmp, fresh)
        try:
            os.link(tmp, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def add_local_key_version(path: Path) -> tuple[str, str]:
    """Add a fresh AES and a fresh Fernet key version to the local key file (creating it if
    need be) and make both current; older versions stay, so old rows still open. Returns the
    new (AES, Fernet) version labels. `python -m shared.admin new-local-keys` calls this.

    The local counterpart of adding a secret version in Key Vault: running workers keep
    sealing under the old versions until their key ring is refreshed (`KeyRingCache`)."""
    data = read_or_create_key_file(path)
    aes_version = _next_label(data["aes"])
    fernet_version = _next_label(data["fernet"])
    data["aes"][aes_version] = _fresh_aes_key()
    data["fernet"][fernet_version] = [_fresh_fernet_key()]
    data["current"] = {"aes": aes_version, "fernet": fernet_version}
    _ring_from_file_data(data)  # refuse to write a file the provider could not load
    # Written beside the file then renamed over it: a reader never sees half a file, and a
    # crash leaves the old versions intact.
    tmp = path.with_suffix(f".{os.getpid()}.new")
    tmp.unlink(missing_ok=True)  # left over from an interrupted run of this same pid
    _write_owner_only(tmp, data)
    os.replace(tmp, path)
    return aes_version, fernet_version


def _next_label(versions: dict[str, Any]) -> str:
    numbers = [int(v.removeprefix("local-")) for v in versions if v.startswith("local-")]
    numbered = [n for n in numbers if n > 0]
    return f"local-{max(numbered, default=0) + 1}"


def _write_owner_only(path: Path, data: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)


class KeyVaultKeyProvider:
    """Reads every enabled version of the two secrets; the newest enabled one is current."""

    name = "keyProvider"

    def __init__(self, vault_url: str, aes_secret: str, fernet_secret: str) -> None:
        self._vault_url = vault_url
        self._aes_secret = aes_secret
        self._fernet_secret = fernet_secret

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        """The SecretClient, and its credential closed with it (tests replace this seam)."""
        from azure.identity.aio import DefaultAzureCredential
        from azure.keyvault.secrets.aio import SecretClient

        async with (
            DefaultAzureCredential() as credential,
            SecretClient(vault_url=self._vault_url, credential=credential) as client,
        ):
            yield client

    async def _versions(self, client: Any, name: str) -> tuple[dict[str, str], str]:
        """Every enabled version's value, and the newest enabled version (the current one)."""
        values: dict[str, str] = {}
        created: dict[str, datetime] = {}
        async for props in client.list_properties_of_secret_versions(name):
            if not props.enabled or props.version is None:
                continue
            secret = await client.get_secret(name, props.version)
            values[props.version] = secret.value or ""
            created[props.version] = props.created_on or datetime.min.replace(tzinfo=UTC)
        if not values:
            raise KeyProviderUnavailable(f"Key Vault secret {name!r} has no enabled version.")
        return values, max(created, key=created.__getitem__)

    async def load(self) -> KeyRing:
        from azure.core.exceptions import AzureError

        try:
            async with self._client() as client:
                aes, aes_current = await self._versions(client, self._aes_secret)
                fernet, fernet_current = await self._versions(client, self._fernet_secret)
        except AzureError as exc:
            logger.warning("key vault unreachable: %s", type(exc).__name__)
            raise KeyProviderUnavailable("Key Vault is unreachable.") from None
        try:
            return KeyRing(
                aes_keys={v: base64.b64decode(s, validate=True) for v, s in aes.items()},
                aes_current=aes_current,
                fernet_keys={v: _split_fernet(value) for v, value in fernet.items()},
                fernet_current=fernet_current,
            )
        except ValueError as exc:  # binascii.Error is a ValueError
            # KeyRing's own messages name a version and never key material; a base64
            # error's text is not trusted to be as careful.
            reason = str(exc) if not isinstance(exc, binascii.Error) else "not base64"
            logger.warning("key vault secret unusable: %s", reason)
            raise KeyProviderUnavailable(f"Key Vault key material is unusable: {reason}.") from None

    async def check(self) -> None:
        await self.load()


def build_key_provider(settings: Settings) -> KeyProvider:
    if settings.KEY_PROVIDER is KeyProviderKind.LOCAL:
        return LocalKeyProvider(
            settings.LOCAL_AES_KEY.get_secret_value() if settings.LOCAL_AES_KEY else None,
            settings.LOCAL_FERNET_KEYS.get_secret_value() if settings.LOCAL_FERNET_KEYS else None,
            settings.LOCAL_KEY_FILE,
        )
    return KeyVaultKeyProvider(
        str(settings.KEY_VAULT_URL),
        settings.KEY_VAULT_AES_SECRET_NAME,
        settings.KEY_VAULT_FERNET_SECRET_NAME,
    )
