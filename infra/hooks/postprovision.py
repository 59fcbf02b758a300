"""azd postprovision hook: create the app's Key Vault secrets, with random values, when absent.

Why here and not in Bicep: Bicep has no cryptographic random source (`newGuid()` is a GUID
whose generator ARM does not document as a CSPRNG, and 122 bits in a fixed text form are not
a 256-bit key), and a deployment script would need a storage account with shared keys, which
this template forbids. So the deploying machine generates the keys from the operating
system's CSPRNG (`os.urandom`) and writes them to Key Vault over TLS with the deployer's Entra
token (Key Vault Secrets Officer, granted by main.bicep). Values are never printed, logged,
written to disk or put on a command line.

An existing secret is never touched (re-running `azd provision` is safe); new key versions
are added on purpose, for rotation (docs/deploy.md). There is no client secret: the app signs
in to Entra ID with a federated credential of its managed identity (infra/modules/entra.bicep).

    python infra/hooks/postprovision.py --vault-url https://kv....vault.azure.net/
    (azd passes AZURE_KEY_VAULT_URL, an output of main.bicep, in the environment)
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from collections.abc import Callable
from typing import Protocol


def aes_key() -> str:
    """The outer layer's AES-256 key: base64 of 32 random bytes (as KeyVaultKeyProvider reads)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


def fernet_keys() -> str:
    """The inner layer's Fernet keys (comma-separated, newest first): one fresh key."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def cursor_secret() -> str:
    """CURSOR_SECRET (via a Key Vault reference): base64 of 32 random bytes."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


GENERATED: dict[str, Callable[[], str]] = {
    "credential-aes-key": aes_key,
    "credential-fernet-keys": fernet_keys,
    "cursor-secret": cursor_secret,
}


class SecretStore(Protocol):
    """The part of azure.keyvault.secrets.SecretClient this hook uses."""

    def exists(self, name: str) -> bool: ...

    def create(self, name: str, value: str, content_type: str) -> None: ...


class KeyVaultStore:
    def __init__(self, vault_url: str) -> None:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        self._client = SecretClient(vault_url=vault_url, credential=credential)

    def exists(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            # Any version, enabled or not, counts: a disabled one is an operator's decision.
            next(iter(self._client.list_properties_of_secret_versions(name)))
        except (ResourceNotFoundError, StopIteration):
            return False
        return True

    def create(self, name: str, value: str, content_type: str) -> None:
        self._client.set_secret(name, value, content_type=content_type)


def ensure_secrets(store: SecretStore, out: Callable[[str], None] = print) -> list[str]:
    """Create each generated secret that is absent; return the names created."""
    created: list[str] = []
    for name, generate in GENERATED.items():
        if store.exists(name):
            out(f"postprovision: {name} exists, left as is")
            continue
        store.create(name, generate(), content_type="text/plain; generated=os.urandom")
        created.append(name)
        out(f"postprovision: {name} created")
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vault-url", default=os.environ.get("AZURE_KEY_VAULT_URL"))
    args = parser.parse_args(argv)
    if not args.vault_url:
        print("postprovision: no --vault-url and no AZURE_KEY_VAULT_URL", file=sys.stderr)
        return 2
    ensure_secrets(KeyVaultStore(args.vault_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
