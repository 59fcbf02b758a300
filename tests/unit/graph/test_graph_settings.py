"""The Graph client's settings: defaults, bounds, and the cursor secret rule."""

from __future__ import annotations

import base64

import pytest

from shared.config import SettingsError, load_settings
from tests.support.app import sample_settings


@pytest.fixture
def env() -> dict[str, str]:
    return {**sample_settings(), "CA_BUNDLE": ""}


def test_defaults(env: dict[str, str]) -> None:
    settings = load_settings(env)

    assert settings.GRAPH_RETRY_DEADLINE_SECONDS == 60
    assert settings.GRAPH_MAX_RETRY_AFTER_SECONDS == 30
    assert settings.GRAPH_MAX_CONCURRENCY_PER_MAILBOX == 4
    assert settings.CURSOR_TTL_SECONDS == 3600
    assert settings.cursor_secret is None


def test_the_retry_deadline_stays_below_the_function_timeout(env: dict[str, str]) -> None:
    env["GRAPH_RETRY_DEADLINE_SECONDS"] = "300"

    with pytest.raises(SettingsError, match="GRAPH_RETRY_DEADLINE_SECONDS"):
        load_settings(env)


def test_production_requires_a_cursor_secret(env: dict[str, str]) -> None:
    env.update(APP_ENV="production", KEY_PROVIDER="keyvault", KEY_VAULT_URL="https://kv.test/")

    with pytest.raises(SettingsError, match="CURSOR_SECRET: required"):
        load_settings(env)

    env["CURSOR_SECRET"] = base64.b64encode(b"z" * 32).decode()
    assert load_settings(env).cursor_secret == b"z" * 32


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short-s3cr3t").decode()])
def test_weak_cursor_secrets_are_refused_without_echoing_them(
    env: dict[str, str], value: str
) -> None:
    env["CURSOR_SECRET"] = value

    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    assert "CURSOR_SECRET" in str(caught.value)
    assert value not in str(caught.value)
