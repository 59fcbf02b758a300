"""Starting a sign-in refuses a returnTo outside RETURN_TO_ALLOWLIST before anything else
happens, however closely it imitates an allowed origin."""

from __future__ import annotations

from typing import Any

import pytest

from shared.audit import MemoryAuditSink
from shared.config import load_settings
from shared.connections.service import ConnectionService
from shared.errors import ValidationFailed
from tests.support.app import sample_settings


class NoIdentityProvider:
    def initiate(self, login_hint: str | None) -> dict[str, Any]:
        raise AssertionError("a refused returnTo must not start a sign-in")


def service(allowlist: str) -> ConnectionService:
    env = {**sample_settings(), "CA_BUNDLE": "", "RETURN_TO_ALLOWLIST": allowlist}
    return ConnectionService(
        load_settings(env),
        NoIdentityProvider(),  # type: ignore[arg-type]
        signins=None,  # type: ignore[arg-type]
        store=None,  # type: ignore[arg-type]
        audit=MemoryAuditSink(),
    )


@pytest.mark.parametrize(
    ("allowlist", "attack"),
    [
        ("https://app.contoso.com", "https://app.contoso.com.evil.example/"),
        ("https://app.contoso.com", "https://app.contoso.com@evil.example/"),
        ("https://app.contoso.com/done", "https://app.contoso.com/done-evil"),
    ],
)
async def test_a_look_alike_return_to_is_refused(allowlist: str, attack: str) -> None:
    with pytest.raises(ValidationFailed, match="returnTo"):
        await service(allowlist).start_login(None, attack, "corr")
