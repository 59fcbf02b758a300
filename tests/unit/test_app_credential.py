"""The app credential: settings per mode (a missing one is named, never its value), the
certificate loaded once and reloaded for rotation, and readiness reporting its reason."""

from __future__ import annotations

import pytest

from shared.config import AppCredentialKind, SettingsError, load_settings
from shared.errors import DependencyUnavailable
from shared.health.service import HealthService
from shared.identity.credentials import (
    AppCredentialError,
    CertificateCredential,
    CertificateMaterial,
    material_from_pem,
    material_from_pkcs12,
)
from tests.support.app import sample_settings
from tests.support.certificates import self_signed


@pytest.fixture
def env() -> dict[str, str]:
    values = sample_settings()
    values["CA_BUNDLE"] = ""
    return values


PRODUCTION = {
    "APP_ENV": "production",
    "KEY_PROVIDER": "keyvault",
    "KEY_VAULT_URL": "https://vault.example/",
    "CURSOR_SECRET": "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
}
IDENTITY = "0f0e0d0c-0b0a-0908-0706-050403020100"


def test_unset_mode_follows_the_credential_setting_present(env: dict[str, str]) -> None:
    del env["APP_CREDENTIAL"]
    federated = {**env, **PRODUCTION, "CLIENT_SECRET": "", "MANAGED_IDENTITY_CLIENT_ID": IDENTITY}
    upgraded = {**env, **PRODUCTION}  # predates APP_CREDENTIAL: only a client secret

    assert load_settings(env).app_credential is AppCredentialKind.SECRET
    assert load_settings(federated).app_credential is (
        AppCredentialKind.MANAGED_IDENTITY_FEDERATION
    )
    assert load_settings(upgraded).app_credential is AppCredentialKind.SECRET


def test_production_without_any_credential_asks_for_the_managed_identity(
    env: dict[str, str],
) -> None:
    del env["APP_CREDENTIAL"]
    env.update({**PRODUCTION, "CLIENT_SECRET": ""})

    with pytest.raises(SettingsError, match="MANAGED_IDENTITY_CLIENT_ID: required"):
        load_settings(env)


@pytest.mark.parametrize(
    ("mode", "extra", "named"),
    [
        ("managed_identity_federation", {}, "MANAGED_IDENTITY_CLIENT_ID: required"),
        ("certificate", {}, "LOCAL_CERTIFICATE_FILE: required"),
        (
            "certificate",
            {"KEY_PROVIDER": "keyvault", "KEY_VAULT_URL": "https://vault.example/"},
            "CERTIFICATE_NAME: required",
        ),
        ("certificate", {"LOCAL_CERTIFICATE_FILE": "/nonexistent.pem"}, "file does not exist"),
        ("secret", {"CLIENT_SECRET": ""}, "CLIENT_SECRET: required"),
    ],
)
def test_each_mode_names_the_setting_it_misses(
    env: dict[str, str], mode: str, extra: dict[str, str], named: str
) -> None:
    env.update({"APP_CREDENTIAL": mode, **extra})

    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    assert named in str(caught.value)
    assert "sandbox-secret" not in str(caught.value)


def test_an_unknown_mode_is_refused(env: dict[str, str]) -> None:
    env["APP_CREDENTIAL"] = "password"

    with pytest.raises(SettingsError, match="APP_CREDENTIAL"):
        load_settings(env)


class Source:
    def __init__(self, material: CertificateMaterial) -> None:
        self.material = material
        self.loads = 0
        self.fail = False

    def load(self) -> CertificateMaterial:
        self.loads += 1
        if self.fail:
            raise AppCredentialError("certificate_unavailable")
        return self.material


def test_the_certificate_is_loaded_once_and_again_after_the_reload_period() -> None:
    key, cert = self_signed()
    source, now = Source(material_from_pem((key + cert).encode())), [0.0]
    credential = CertificateCredential(source, reload_seconds=60, clock=lambda: now[0])

    first = credential.client_credential()
    credential.client_credential()
    now[0] = 61
    credential.client_credential()

    assert source.loads == 2
    assert set(first) == {"private_key", "public_certificate"}  # MSAL sends x5t#S256 + x5c


def test_a_failed_reload_keeps_signing_with_the_loaded_certificate() -> None:
    key, cert = self_signed()
    source, now = Source(material_from_pem((key + cert).encode())), [0.0]
    credential = CertificateCredential(source, reload_seconds=60, clock=lambda: now[0])
    first = credential.client_credential()

    source.fail, now[0] = True, 61

    assert credential.client_credential() == first


def test_a_certificate_that_never_loaded_is_an_error_with_a_reason() -> None:
    source = Source(CertificateMaterial("", ""))
    source.fail = True

    with pytest.raises(AppCredentialError) as caught:
        CertificateCredential(source).client_credential()

    assert caught.value.reason == "certificate_unavailable"


class Probe:
    def __init__(self, name: str, error: Exception | None) -> None:
        self.name = name
        self.error = error

    async def check(self) -> None:
        if self.error is not None:
            raise self.error


async def test_readiness_reports_a_probes_reason_code_but_never_its_message() -> None:
    health = HealthService(
        [
            Probe("tableStorage", None),
            Probe("appCredential", AppCredentialError("AADSTS700213")),
            Probe("keyProvider", RuntimeError("secret material quoted here")),
        ],
        timeout_seconds=1,
    )

    with pytest.raises(DependencyUnavailable) as caught:
        await health.readiness()

    assert caught.value.extensions["unavailable"] == ["appCredential", "keyProvider"]
    assert caught.value.extensions["reasons"] == {"appCredential": "AADSTS700213"}
    assert "secret material" not in str(caught.value.extensions)


def test_key_vaults_pkcs12_and_pem_forms_give_the_same_material() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    key_pem, cert_pem = self_signed()
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    pfx = pkcs12.serialize_key_and_certificates(
        b"app",
        key,
        cert,
        None,
        serialization.NoEncryption(),  # type: ignore[arg-type]
    )

    assert material_from_pkcs12(pfx) == material_from_pem((key_pem + cert_pem).encode())


def test_pem_without_a_certificate_is_refused() -> None:
    key_pem, _ = self_signed()

    with pytest.raises(ValueError):
        material_from_pem(key_pem.encode())
