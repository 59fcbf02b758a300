"""A sign-in sealed into its cookie (shared/connections/signin.py): it opens only for its own
state, within 10 minutes, untampered; a finished one says so; nothing readable is inside."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.connections.signin import (
    MAX_COOKIE_VALUE,
    FlowRejected,
    SignInSealer,
    finished_marker,
)
from shared.crypto.keyring import KeyRingCache
from shared.crypto.keys import LocalKeyProvider

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STATE = "st4te-0123456789_abc"
FLOW = {
    "state": STATE,
    "nonce": "nonce-0123456789",
    "code_verifier": "verifier-" + "v" * 40,
    "redirect_uri": "http://127.0.0.1:7071/api/auth/callback",
    "scope": ["Mail.Read", "offline_access"],
    "auth_uri": "https://login.example/authorize?" + "x" * 600,
}


@pytest.fixture
def sealer(tmp_path: Path) -> SignInSealer:
    keys = KeyRingCache(LocalKeyProvider(None, None, tmp_path / "keys.json"))
    return SignInSealer(keys, "oiasignin")


async def rejected(sealer: SignInSealer, cookie: str | None, state: str, now: datetime) -> str:
    with pytest.raises(FlowRejected) as refused:
        await sealer.flow_from(cookie, state, now)
    return refused.value.reason


async def test_a_sealed_sign_in_opens_for_its_own_state(sealer: SignInSealer) -> None:
    cookie = await sealer.cookie_for(FLOW, "https://flows.contoso.com/done", NOW)

    pending = await sealer.flow_from(cookie, STATE, NOW + timedelta(minutes=9))

    assert pending.flow == {k: v for k, v in FLOW.items() if k != "auth_uri"}
    assert pending.return_to == "https://flows.contoso.com/done"


async def test_the_cookie_holds_nothing_readable(sealer: SignInSealer) -> None:
    cookie = await sealer.cookie_for(FLOW, None, NOW)

    assert FLOW["code_verifier"] not in cookie
    assert STATE not in cookie and "nonce-0123456789" not in cookie


async def test_another_state_or_no_cookie_is_another_browser(sealer: SignInSealer) -> None:
    cookie = await sealer.cookie_for(FLOW, None, NOW)

    assert await rejected(sealer, cookie, "another-state-0123", NOW) == "state_foreign"
    assert await rejected(sealer, None, STATE, NOW) == "state_foreign"
    assert await rejected(sealer, "", STATE, NOW) == "state_foreign"


async def test_a_tampered_or_malformed_cookie_is_refused(sealer: SignInSealer) -> None:
    cookie = await sealer.cookie_for(FLOW, None, NOW)
    # A character well inside the ciphertext: every one of its six bits counts (the last
    # character of unpadded base64 may carry bits that decoding drops).
    inside = cookie[-10]
    flipped = cookie[:-10] + ("A" if inside != "A" else "B") + cookie[-9:]

    assert await rejected(sealer, flipped, STATE, NOW) == "state_foreign"
    assert await rejected(sealer, "1.a.b", STATE, NOW) == "state_foreign"
    assert await rejected(sealer, "9999999.a.b.c", STATE, NOW) == "state_foreign"
    assert await rejected(sealer, "\u0661.a.b.\u00e9", STATE, NOW) == "state_foreign"


async def test_a_cookie_sealed_for_another_deployment_label_is_refused(
    sealer: SignInSealer, tmp_path: Path
) -> None:
    keys = KeyRingCache(LocalKeyProvider(None, None, tmp_path / "keys.json"))
    other = await SignInSealer(keys, "othersignin").cookie_for(FLOW, None, NOW)

    assert await rejected(sealer, other, STATE, NOW) == "state_foreign"


async def test_a_sign_in_older_than_ten_minutes_is_expired(sealer: SignInSealer) -> None:
    cookie = await sealer.cookie_for(FLOW, None, NOW)

    assert await rejected(sealer, cookie, STATE, NOW + timedelta(minutes=10)) == "state_expired"


async def test_a_finished_sign_in_is_replayed_not_foreign(sealer: SignInSealer) -> None:
    marker = finished_marker(STATE)

    assert await rejected(sealer, marker, STATE, NOW) == "state_replayed"
    assert await rejected(sealer, marker, "another-state-0123", NOW) == "state_foreign"
    assert await rejected(sealer, "done.\u00e9\u0661", STATE, NOW) == "state_foreign"


async def test_a_state_that_cannot_be_ours_is_invalid(sealer: SignInSealer) -> None:
    assert await rejected(sealer, "x", "../etc", NOW) == "state_invalid"
    assert await rejected(sealer, "x", "s" * 257, NOW) == "state_invalid"


async def test_the_longest_return_to_still_fits_in_a_cookie(sealer: SignInSealer) -> None:
    # 2,048 characters (LoginQuery's limit) that do not compress: the worst case.
    longest = "https://flows.contoso.com/" + secrets.token_urlsafe(1517)[:2022]

    cookie = await sealer.cookie_for(FLOW, longest, NOW)

    assert len(longest) == 2048
    assert len(cookie) <= MAX_COOKIE_VALUE
    assert (await sealer.flow_from(cookie, STATE, NOW)).return_to == longest


def test_every_reason_a_sign_in_is_refused_for_has_a_message() -> None:
    import re

    import shared.connections.signin as signin
    from shared.connections.service import _FLOW_DETAIL
    from tests.support.processes import ROOT

    source = (ROOT / "shared" / "connections" / "signin.py").read_text()
    reasons = set(re.findall(r'FlowRejected\("([a-z_]+)"\)', source))

    assert reasons and signin.FlowRejected
    assert reasons <= set(_FLOW_DETAIL)
