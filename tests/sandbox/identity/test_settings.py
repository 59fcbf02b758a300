"""Identity behaviour chosen by settings at start-up (a private sandbox instance)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sandbox.identity.flows import authorize, redeem, refresh
from tests.support.sandbox import SandboxServer, start_sandbox


@pytest.fixture(scope="module")
def strict_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = start_sandbox(
        Path(tmp_path_factory.mktemp("strict")),
        {"SANDBOX_STRICT_REFRESH": "true", "SANDBOX_AUTO_CONSENT": "false"},
    )
    yield server
    server.stop()


def test_strict_refresh_setting_revokes_used_refresh_tokens(strict_sandbox: SandboxServer) -> None:
    strict_sandbox.reset()
    with strict_sandbox.client() as client:
        client.post("/_sandbox/identity/consent", json={"auto": True}).raise_for_status()
    first = redeem(strict_sandbox, authorize(strict_sandbox)).json()["refresh_token"]

    assert refresh(strict_sandbox, first).status_code == 200
    assert refresh(strict_sandbox, first).json()["error_codes"] == [50173]


def test_auto_consent_setting_off_shows_the_consent_page(strict_sandbox: SandboxServer) -> None:
    strict_sandbox.reset()

    sign_in = authorize(strict_sandbox)

    assert sign_in.response.status_code == 200
    assert "sandbox_consent" in sign_in.response.text
