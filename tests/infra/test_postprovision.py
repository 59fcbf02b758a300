"""The post-provision hook creates absent key secrets with fresh random values, and only then."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path
from types import ModuleType

from cryptography.fernet import Fernet

from shared.config import load_settings
from tests.infra.conftest import INFRA


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "postprovision", INFRA / "hooks" / "postprovision.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeVault:
    def __init__(self, existing: dict[str, str] | None = None) -> None:
        self.secrets = dict(existing or {})

    def exists(self, name: str) -> bool:
        return name in self.secrets

    def create(self, name: str, value: str, content_type: str) -> None:
        assert name not in self.secrets, "an existing secret must never be overwritten"
        self.secrets[name] = value


def test_absent_secrets_are_created_in_the_formats_the_app_reads() -> None:
    hook = load_hook()
    vault = FakeVault()
    lines: list[str] = []

    created = hook.ensure_secrets(vault, lines.append)

    assert created == ["credential-aes-key", "credential-fernet-keys", "cursor-secret"]
    assert len(base64.b64decode(vault.secrets["credential-aes-key"], validate=True)) == 32
    for key in vault.secrets["credential-fernet-keys"].split(","):
        Fernet(key.encode())  # raises on a malformed key
    env = {
        "TENANT_ID": "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b",
        "CLIENT_ID": "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10",
        "STORAGE_TABLE_ENDPOINT": "https://st.table.core.windows.net/",
        "KEY_PROVIDER": "keyvault",
        "KEY_VAULT_URL": "https://kv.vault.azure.net/",
        "APP_ENV": "production",
        # Production's app credential (docs/credentials.md): the managed identity's.
        "MANAGED_IDENTITY_CLIENT_ID": "0f0e0d0c-0b0a-0908-0706-050403020100",
        "CURSOR_SECRET": vault.secrets["cursor-secret"],
    }
    assert load_settings(env).cursor_secret is not None
    # Values never reach the output, and no client secret is asked for: the app's credential
    # is a federated one (infra/modules/entra.bicep).
    output = "\n".join(lines)
    assert not any(value in output for value in vault.secrets.values())
    assert "client-secret" not in output
    assert set(vault.secrets) == set(created)


def test_existing_secrets_are_left_alone() -> None:
    hook = load_hook()
    vault = FakeVault({"credential-aes-key": "kept"})

    created = hook.ensure_secrets(vault, lambda _line: None)

    assert created == ["credential-fernet-keys", "cursor-secret"]
    assert vault.secrets["credential-aes-key"] == "kept"


def test_each_run_draws_fresh_randomness() -> None:
    hook = load_hook()
    first, second = FakeVault(), FakeVault()

    hook.ensure_secrets(first, lambda _line: None)
    hook.ensure_secrets(second, lambda _line: None)

    assert set(first.secrets.values()).isdisjoint(second.secrets.values())


def test_hook_has_no_dependency_outside_the_app_venv() -> None:
    text = Path(INFRA / "hooks" / "postprovision.py").read_text(encoding="utf-8")

    assert "subprocess" not in text  # no secret on a command line
    assert "print(value" not in text
