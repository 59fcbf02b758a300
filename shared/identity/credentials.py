"""The app's own credential at Entra ID's token endpoint, in the form MSAL takes it.

Three modes (APP_CREDENTIAL, docs/credentials.md):
- `secret`: the client secret string (local development and the sandbox);
- `certificate`: a private key and its certificate, from Key Vault (or a local PEM file);
  MSAL signs a fresh client assertion per token request, with the certificate's SHA-256
  thumbprint (`x5t#S256`) and chain (`x5c`) in its header;
- `managed_identity_federation`: no secret at all. The user-assigned managed identity's token
  for `api://AzureADTokenExchange` *is* the client assertion, matched by Entra against a
  federated identity credential on the app registration (issuer, subject, audience).

Why a callable for federation: MSAL calls it only when a token request goes on the wire (its
cache answers the rest), and the managed identity client caches its own token, so each
assertion is fresh without a call to the identity endpoint per request. Imported only from
shared/identity/msal_client.py, itself loaded lazily: nothing here costs cold start.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msal
import requests

from shared.config import AppCredentialKind, KeyProviderKind, Settings

logger = logging.getLogger(__name__)

# The audience of a managed identity's token used as a federated credential, per cloud
# (Entra's documented values); the public cloud's when the authority host is not listed.
_EXCHANGE_AUDIENCES = {
    "login.microsoftonline.us": "api://AzureADTokenExchangeUSGov",
    "login.chinacloudapi.cn": "api://AzureADTokenExchangeChina",
}
PUBLIC_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# A rotated Key Vault certificate is picked up within this long, without a restart.
CERTIFICATE_RELOAD_SECONDS = 3600.0


class AppCredentialError(Exception):
    """The app's own credential could not be produced or was refused.

    `reason` is a short code safe for readiness answers and logs (an OAuth error, an AADSTS
    number, or one of ours such as `managed_identity_unavailable`); never a secret.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AppCredential(Protocol):
    @property
    def kind(self) -> AppCredentialKind: ...

    def client_credential(self) -> str | dict[str, Any]:
        """What `msal.ConfidentialClientApplication(client_credential=...)` takes."""
        ...


@dataclass(frozen=True)
class SecretCredential:
    secret: str
    kind: AppCredentialKind = AppCredentialKind.SECRET

    def client_credential(self) -> str:
        return self.secret


@dataclass(frozen=True)
class CertificateMaterial:
    private_key_pem: str
    certificate_pem: str


class CertificateSource(Protocol):
    def load(self) -> CertificateMaterial: ...


class LocalCertificateFile:
    """A PEM file with the private key and the certificate (development and tests)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def load(self) -> CertificateMaterial:
        try:
            return material_from_pem(self._path.read_bytes())
        except (OSError, ValueError):
            raise AppCredentialError("certificate_unusable") from None


class KeyVaultCertificate:
    """A Key Vault certificate: its private key is readable as the secret of the same name
    (PEM or PKCS#12, per the certificate policy's content type), read with the managed
    identity."""

    def __init__(self, vault_url: str, name: str, identity_client_id: str | None = None) -> None:
        self._vault_url = vault_url
        self._name = name
        self._identity_client_id = identity_client_id

    def load(self) -> CertificateMaterial:
        from azure.core.exceptions import AzureError
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        # The user-assigned identity, when named: a host may carry several identities.
        options = (
            {"managed_identity_client_id": self._identity_client_id}
            if self._identity_client_id
            else {}
        )
        try:
            with (
                DefaultAzureCredential(**options) as credential,
                SecretClient(self._vault_url, credential) as client,
            ):
                secret = client.get_secret(self._name)
        except AzureError as exc:
            logger.warning("key vault certificate unreadable: %s", type(exc).__name__)
            raise AppCredentialError("certificate_unavailable") from None
        try:
            if secret.properties.content_type == "application/x-pkcs12":
                return material_from_pkcs12(base64.b64decode(secret.value or ""))
            return material_from_pem((secret.value or "").encode())
        except ValueError:
            raise AppCredentialError("certificate_unusable") from None


def material_from_pem(data: bytes) -> CertificateMaterial:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(data, password=None)
    certificates = x509.load_pem_x509_certificates(data)
    if not certificates:
        raise ValueError("no certificate in the PEM data")
    return _material(key, certificates[0])


def material_from_pkcs12(data: bytes) -> CertificateMaterial:
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, certificate, _ = pkcs12.load_key_and_certificates(data, None)
    if key is None or certificate is None:
        raise ValueError("the PKCS#12 data lacks the key or the certificate")
    return _material(key, certificate)


def _material(key: Any, certificate: Any) -> CertificateMaterial:
    from cryptography.hazmat.primitives import serialization

    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return CertificateMaterial(private, public)


class CertificateCredential:
    """Loads the certificate once, and again after `reload_seconds` (rotation)."""

    kind = AppCredentialKind.CERTIFICATE

    def __init__(
        self,
        source: CertificateSource,
        reload_seconds: float = CERTIFICATE_RELOAD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._reload = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._material: CertificateMaterial | None = None
        self._loaded_at = 0.0

    def client_credential(self) -> dict[str, Any]:
        with self._lock:
            if self._material is None or self._clock() - self._loaded_at >= self._reload:
                try:
                    self._material = self._source.load()
                    self._loaded_at = self._clock()
                except AppCredentialError:
                    if self._material is None:
                        raise
                    # Keep signing with the loaded certificate: it stays valid in Entra
                    # until it expires or is removed, which Key Vault hiccups don't do.
                    logger.warning("certificate reload failed; keeping the loaded one")
            material = self._material
        # The certificate (not a thumbprint) lets MSAL send x5t#S256 and x5c.
        return {
            "private_key": material.private_key_pem,
            "public_certificate": material.certificate_pem,
        }


class ManagedIdentityFederation:
    """The user-assigned managed identity's token for the token-exchange audience, as the
    client assertion. MSAL's ManagedIdentityClient finds the endpoint the host provides
    (App Service / Functions: IDENTITY_ENDPOINT + IDENTITY_HEADER) and caches its token."""

    kind = AppCredentialKind.MANAGED_IDENTITY_FEDERATION

    def __init__(self, client_id: str, audience: str, http_client: requests.Session) -> None:
        self._audience = audience
        self._client = msal.ManagedIdentityClient(
            msal.UserAssignedManagedIdentity(client_id=client_id), http_client=http_client
        )

    def assertion(self) -> str:
        try:
            result = self._client.acquire_token_for_client(resource=self._audience)
        except (requests.RequestException, msal.ManagedIdentityError, ValueError) as exc:
            logger.warning("managed identity endpoint failed: %s", type(exc).__name__)
            raise AppCredentialError("managed_identity_unavailable") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            # The endpoint's error code only (e.g. invalid_scope), never its message.
            error = result.get("error") if isinstance(result, dict) else None
            logger.warning("managed identity refused a token: %s", error or "no token")
            raise AppCredentialError("managed_identity_unavailable")
        return str(token)

    def client_credential(self) -> dict[str, Any]:
        return {"client_assertion": self.assertion}


def exchange_audience(settings: Settings) -> str:
    host = settings.AUTHORITY_HOST.host or ""
    return _EXCHANGE_AUDIENCES.get(host, PUBLIC_EXCHANGE_AUDIENCE)


def build_app_credential(settings: Settings, http_client: requests.Session) -> AppCredential:
    mode = settings.app_credential
    if mode is AppCredentialKind.MANAGED_IDENTITY_FEDERATION:
        assert settings.MANAGED_IDENTITY_CLIENT_ID is not None  # checked by Settings
        return ManagedIdentityFederation(
            str(settings.MANAGED_IDENTITY_CLIENT_ID), exchange_audience(settings), http_client
        )
    if mode is AppCredentialKind.CERTIFICATE:
        source: CertificateSource
        if settings.KEY_PROVIDER is KeyProviderKind.KEYVAULT:
            assert settings.KEY_VAULT_URL is not None and settings.CERTIFICATE_NAME is not None
            identity = settings.MANAGED_IDENTITY_CLIENT_ID
            source = KeyVaultCertificate(
                str(settings.KEY_VAULT_URL),
                settings.CERTIFICATE_NAME,
                str(identity) if identity else None,
            )
        else:
            assert settings.LOCAL_CERTIFICATE_FILE is not None
            source = LocalCertificateFile(settings.LOCAL_CERTIFICATE_FILE)
        return CertificateCredential(source)
    assert settings.CLIENT_SECRET is not None
    return SecretCredential(settings.CLIENT_SECRET.get_secret_value())
