"""The caller-authentication settings and the rules derived from them."""

from __future__ import annotations

import pytest

from shared.auth.jwks import jwks_uri
from shared.auth.tokens import TokenRules
from shared.config import SettingsError, load_settings
from tests.support.app import sample_settings
from tests.unit.auth.forge import APP_ID_URI, CLIENT_ID, TENANT


def env(**overrides: str) -> dict[str, str]:
    return {**sample_settings(), "CA_BUNDLE": "", **overrides}


def test_the_defaults_are_a_60_second_cooldown_and_5_minutes_of_skew() -> None:
    values = {
        k: v
        for k, v in env().items()
        if k not in {"JWKS_REFETCH_COOLDOWN_SECONDS", "TOKEN_CLOCK_SKEW_SECONDS"}
    }
    settings = load_settings(values)

    assert settings.JWKS_REFETCH_COOLDOWN_SECONDS == 60
    assert settings.TOKEN_CLOCK_SKEW_SECONDS == 300


def test_more_than_5_minutes_of_skew_is_refused() -> None:
    with pytest.raises(SettingsError, match="TOKEN_CLOCK_SKEW_SECONDS"):
        load_settings(env(TOKEN_CLOCK_SKEW_SECONDS="301"))


def test_the_rules_accept_both_issuer_forms_and_both_audiences() -> None:
    settings = load_settings(env(AUTHORITY_HOST="https://login.microsoftonline.us/"))

    rules = TokenRules.from_settings(settings)

    assert rules.issuers == {
        f"https://sts.windows.net/{TENANT}/",
        f"https://login.microsoftonline.us/{TENANT}/v2.0",
    }
    assert rules.audiences == {APP_ID_URI, CLIENT_ID}


def test_the_jwks_is_the_tenants_v2_discovery_keys() -> None:
    settings = load_settings(env(AUTHORITY_HOST="https://login.microsoftonline.com"))

    assert jwks_uri(settings.authority) == (
        f"https://login.microsoftonline.com/{TENANT}/discovery/v2.0/keys"
    )
