"""Key providers: new local key versions for rotation; Key Vault through a stand-in client.

Key Vault cannot be reached from the development machines, so its adapter is exercised at
the port boundary with the stand-in `SecretClient` from tests/unit/test_keys.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from shared.crypto.envelope import Envelope, RowAddress
from shared.crypto.keys import LocalKeyProvider, add_local_key_version
from shared.errors import KeyProviderUnavailable
from tests.unit.test_keys import AES, FERNET, FakeProps, at, provider_with

ROW = RowAddress("oiaconnections", "3f", "conn-abc")


async def test_a_new_local_version_becomes_current_and_old_rows_still_open(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "dev-keys.json"
    provider = LocalKeyProvider(None, None, key_file)
    sealed = Envelope(await provider.load()).seal(b"grant", ROW, "Grant")

    versions = add_local_key_version(key_file)
    ring = await provider.load()

    assert versions == ("local-2", "local-2")
    assert (ring.aes_current, ring.fernet_current) == versions
    assert set(ring.aes_keys) == {"local-1", "local-2"}
    assert Envelope(ring).open(sealed, ROW, "Grant") == b"grant"
    assert not Envelope(ring).is_current(sealed, "Grant")


def test_adding_a_version_creates_a_missing_key_file_owner_only(tmp_path: Path) -> None:
    key_file = tmp_path / ".keys" / "dev-keys.json"

    assert add_local_key_version(key_file) == ("local-2", "local-2")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["dev-keys.json"]


async def test_a_corrupt_local_key_file_is_unavailable_without_echoing_it(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "dev-keys.json"
    add_local_key_version(key_file)
    data = json.loads(key_file.read_text())
    data["aes"]["local-2"] = base64.b64encode(b"short").decode()
    key_file.write_text(json.dumps(data))

    with pytest.raises(KeyProviderUnavailable) as caught:
        await LocalKeyProvider(None, None, key_file).load()

    assert "short" not in str(caught.value)


async def test_key_vault_rows_sealed_under_an_older_version_still_open() -> None:
    newer_aes = base64.b64encode(b"n" * 32).decode()
    newer_fernet = base64.urlsafe_b64encode(b"g" * 32).decode()
    before: dict[str, Any] = {
        "aes": [(FakeProps("v1", True, at(1)), AES)],
        "fernet": [(FakeProps("f1", True, at(1)), FERNET)],
    }
    after: dict[str, Any] = {
        "aes": [*before["aes"], (FakeProps("v2", True, at(9)), newer_aes)],
        "fernet": [*before["fernet"], (FakeProps("f2", True, at(9)), newer_fernet)],
    }
    sealed = Envelope(await provider_with(before).load()).seal(b"grant", ROW, "Grant")

    rotated = Envelope(await provider_with(after).load())

    assert rotated.open(sealed, ROW, "Grant") == b"grant"
    assert not rotated.is_current(sealed, "Grant")
    assert rotated.seal(b"grant", ROW, "Grant")["GrantAesKey"] == "v2"


async def test_a_fernet_secret_may_hold_several_keys_newest_first() -> None:
    older = base64.urlsafe_b64encode(b"o" * 32).decode()
    secrets: dict[str, Any] = {
        "aes": [(FakeProps("v1", True, at(1)), AES)],
        "fernet": [(FakeProps("f1", True, at(1)), f"{FERNET},{older}")],
    }

    ring = await provider_with(secrets).load()

    assert ring.fernet_keys["f1"] == [FERNET.encode(), older.encode()]


@pytest.mark.parametrize(
    ("secret", "value"),
    [("aes", "not base64!"), ("aes", base64.b64encode(b"k" * 16).decode()), ("fernet", "junk")],
    ids=["aes-not-base64", "aes-128", "fernet-malformed"],
)
async def test_malformed_key_vault_secrets_are_unavailable_without_echoing_them(
    secret: str, value: str
) -> None:
    secrets: dict[str, Any] = {
        "aes": [(FakeProps("v1", True, at(1)), AES)],
        "fernet": [(FakeProps("f1", True, at(1)), FERNET)],
    }
    secrets[secret] = [(FakeProps("x1", True, at(2)), value)]

    with pytest.raises(KeyProviderUnavailable) as caught:
        await provider_with(secrets).load()

    assert value not in str(caught.value)
