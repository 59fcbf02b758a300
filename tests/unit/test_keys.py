"""Key material: local provider for development, every enabled Key Vault version in production."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.crypto.keys import KeyVaultKeyProvider, LocalKeyProvider
from shared.errors import KeyProviderUnavailable

AES = base64.b64encode(b"k" * 32).decode()
FERNET = base64.urlsafe_b64encode(b"f" * 32).decode()


async def test_local_provider_serves_the_settings_key_material(tmp_path: Path) -> None:
    ring = await LocalKeyProvider(AES, f"{FERNET}, {FERNET}", tmp_path / "unused.json").load()

    assert ring.aes_keys[ring.aes_current] == b"k" * 32
    assert ring.fernet_keys[ring.fernet_current] == [FERNET.encode(), FERNET.encode()]


async def test_local_key_file_is_created_once_owner_only_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / ".keys" / "dev-keys.json"

    first = await LocalKeyProvider(None, None, key_file).load()
    second = await LocalKeyProvider(None, None, key_file).load()

    assert first == second
    assert len(first.aes_keys[first.aes_current]) == 32
    assert key_file.stat().st_mode & 0o777 == 0o600


@dataclass
class FakeProps:
    version: str
    enabled: bool
    created_on: datetime


@dataclass
class FakeSecret:
    value: str


class FakeSecretClient:
    def __init__(self, secrets: dict[str, list[tuple[FakeProps, str]]]) -> None:
        self.secrets = secrets

    async def __aenter__(self) -> FakeSecretClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def list_properties_of_secret_versions(self, name: str) -> AsyncIterator[FakeProps]:
        for props, _ in self.secrets[name]:
            yield props

    async def get_secret(self, name: str, version: str) -> FakeSecret:
        return FakeSecret(next(v for p, v in self.secrets[name] if p.version == version))


def provider_with(secrets: dict[str, list[tuple[FakeProps, str]]]) -> KeyVaultKeyProvider:
    provider = KeyVaultKeyProvider("https://kv.vault.azure.net/", "aes", "fernet")
    provider._client = lambda: FakeSecretClient(secrets)  # type: ignore[method-assign]
    return provider


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


async def test_key_vault_loads_every_enabled_version_and_the_newest_encrypts() -> None:
    other = base64.b64encode(b"o" * 32).decode()
    secrets: dict[str, Any] = {
        "aes": [
            (FakeProps("v1", True, at(1)), AES),
            (FakeProps("v2", True, at(3)), other),
            (FakeProps("v0", False, at(5)), AES),  # disabled: neither loaded nor current
        ],
        "fernet": [(FakeProps("f1", True, at(2)), FERNET)],
    }

    ring = await provider_with(secrets).load()

    assert set(ring.aes_keys) == {"v1", "v2"}
    assert ring.aes_current == "v2"
    assert ring.fernet_current == "f1"


async def test_a_secret_without_enabled_versions_is_unavailable() -> None:
    secrets: dict[str, Any] = {"aes": [(FakeProps("v1", False, at(1)), AES)], "fernet": []}

    with pytest.raises(KeyProviderUnavailable):
        await provider_with(secrets).load()
