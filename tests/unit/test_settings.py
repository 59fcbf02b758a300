"""Settings: one object, validated at start-up, with messages that name the setting."""

from __future__ import annotations

import json

import pytest

from shared.config import Environment, KeyProviderKind, Settings, SettingsError, load_settings
from tests.support.app import sample_settings
from tests.support.processes import ROOT

# Settings the Functions host itself reads; the app's Settings object does not.
HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsFeatureFlags", "AzureWebJobsStorage"}


@pytest.fixture
def env() -> dict[str, str]:
    values = sample_settings()
    values["CA_BUNDLE"] = ""  # the sandbox's bundle only exists while it runs
    return values


def test_sample_settings_load(env: dict[str, str]) -> None:
    settings = load_settings(env)

    assert settings.APP_ENV is Environment.LOCAL
    assert settings.authority == "https://127.0.0.1:5443/8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b"
    assert settings.graph_base_url == "https://127.0.0.1:5443/v1.0"
    assert settings.audience == "api://3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10"
    assert "Mail.Send" in settings.GRAPH_SCOPES


def test_sample_lists_exactly_the_settings_the_app_reads() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]

    assert set(values) - HOST_SETTINGS == set(Settings.model_fields)


def test_missing_required_settings_are_named(env: dict[str, str]) -> None:
    del env["TENANT_ID"], env["CLIENT_ID"]

    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    assert "TENANT_ID" in str(caught.value)
    assert "CLIENT_ID" in str(caught.value)


def test_secret_values_never_appear_in_errors(env: dict[str, str]) -> None:
    env["LOCAL_AES_KEY"] = "dG9vLXNob3J0LXNlY3JldC12YWx1ZQ=="  # valid base64, wrong length
    env["CLIENT_SECRET"] = "s3cr3t-value"
    env["TENANT_ID"] = "not-a-guid-s3cr3t"

    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    message = str(caught.value)
    assert "LOCAL_AES_KEY: must decode to exactly 32 bytes" in message
    assert "dG9vLXNob3J0" not in message
    assert "s3cr3t" not in message


def test_token_hosts_must_be_https_except_loopback(env: dict[str, str]) -> None:
    env["GRAPH_BASE_URL"] = "http://graph.example.com/v1.0"

    with pytest.raises(SettingsError, match="GRAPH_BASE_URL: must be an https URL"):
        load_settings(env)


def test_national_cloud_hosts_are_accepted(env: dict[str, str]) -> None:
    env["AUTHORITY_HOST"] = "https://login.microsoftonline.us"
    env["GRAPH_BASE_URL"] = "https://graph.microsoft.us/v1.0/"

    settings = load_settings(env)

    assert settings.authority.startswith("https://login.microsoftonline.us/")
    assert settings.graph_base_url == "https://graph.microsoft.us/v1.0"


def test_production_refuses_the_local_key_provider(env: dict[str, str]) -> None:
    env["APP_ENV"] = "production"

    with pytest.raises(SettingsError, match="KEY_PROVIDER: 'local' is refused"):
        load_settings(env)


def test_key_vault_provider_needs_a_vault_url(env: dict[str, str]) -> None:
    env["KEY_PROVIDER"] = "keyvault"

    with pytest.raises(SettingsError, match="KEY_VAULT_URL: required"):
        load_settings(env)

    env["KEY_VAULT_URL"] = "https://contoso-kv.vault.azure.net/"
    assert load_settings(env).KEY_PROVIDER is KeyProviderKind.KEYVAULT


def test_exactly_one_storage_setting(env: dict[str, str]) -> None:
    env["STORAGE_TABLE_ENDPOINT"] = "https://contoso.table.core.windows.net"

    with pytest.raises(SettingsError, match="set exactly one"):
        load_settings(env)


def test_empty_values_mean_unset(env: dict[str, str]) -> None:
    env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = ""

    assert load_settings(env).APPLICATIONINSIGHTS_CONNECTION_STRING is None


def test_missing_ca_bundle_file_is_refused(env: dict[str, str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    env["CA_BUNDLE"] = str(tmp_path / "nope.pem")

    with pytest.raises(SettingsError, match="CA_BUNDLE: file does not exist"):
        load_settings(env)


def test_bad_numbers_and_scopes_are_parsed_or_named(env: dict[str, str]) -> None:
    env["GRAPH_SCOPES"] = "Mail.Read, Mail.Send  User.Read"
    env["MAX_REQUEST_BODY_BYTES"] = "lots"

    with pytest.raises(SettingsError, match="MAX_REQUEST_BODY_BYTES"):
        load_settings(env)
    env["MAX_REQUEST_BODY_BYTES"] = "1024"
    assert load_settings(env).GRAPH_SCOPES == ["Mail.Read", "Mail.Send", "User.Read"]


@pytest.mark.parametrize(
    "entry",
    ["http://localhost.evil.example", "https://app.contoso.com/?next=1", "app.contoso.com"],
)
def test_return_to_entries_must_be_absolute_origins(env: dict[str, str], entry: str) -> None:
    env["RETURN_TO_ALLOWLIST"] = f"https://fine.contoso.com/done, {entry}"

    with pytest.raises(SettingsError, match="RETURN_TO_ALLOWLIST") as caught:
        load_settings(env)

    assert entry not in str(caught.value)


def test_return_to_entries_are_parsed_once(env: dict[str, str]) -> None:
    env["RETURN_TO_ALLOWLIST"] = "https://App.Contoso.com, http://127.0.0.1:7071/done"

    targets = load_settings(env).return_to_targets

    assert [(t.scheme, t.host, t.port, t.path) for t in targets] == [
        ("https", "app.contoso.com", 443, "/"),
        ("http", "127.0.0.1", 7071, "/done"),
    ]


def test_an_unresolved_key_vault_reference_stops_start_up_naming_the_setting(
    env: dict[str, str],
) -> None:
    reference = "@Microsoft.KeyVault(SecretUri=https://contoso-kv.vault.azure.net/secrets/cs/)"
    env["CLIENT_SECRET"] = reference
    env["CURSOR_SECRET"] = reference.replace("KeyVault", "keyvault")

    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    message = str(caught.value)
    assert "CLIENT_SECRET: is a Key Vault reference the platform could not resolve" in message
    assert "CURSOR_SECRET: is a Key Vault reference" in message
    assert "contoso-kv" not in message
