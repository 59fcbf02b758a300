"""A worker remembers the tokens it accepted until they expire (shared/auth/verified.py):
the same token is not verified again, and nothing else ever passes for it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

import shared.auth.tokens as tokens_module
from shared.audit import MemoryAuditSink
from shared.auth.jwks import SigningKeys
from shared.auth.policy import ROLE_READ_ALL
from shared.auth.tokens import JwtCallerAuthenticator, TokenRules
from shared.auth.verified import VerifiedToken, VerifiedTokens
from shared.config import Settings
from shared.errors import Forbidden, Unauthorized
from tests.unit.auth.conftest import COOLDOWN_SECONDS
from tests.unit.auth.forge import NOW, Clock, FakeJwks, Signer, app_claims, b64url, user_claims

SKEW = 300


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tokens whose signature was checked (the full path ran for them)."""
    seen: list[str] = []
    verify = tokens_module._verified_claims

    def counting(token: str, key: Any) -> dict[str, Any]:
        seen.append(token)
        return verify(token, key)

    monkeypatch.setattr(tokens_module, "_verified_claims", counting)
    return seen


def authenticator_with(
    settings: Settings,
    keys: SigningKeys,
    audit: MemoryAuditSink,
    wall: Clock,
    verified: VerifiedTokens,
) -> JwtCallerAuthenticator:
    return JwtCallerAuthenticator(
        TokenRules.from_settings(settings), keys, audit, clock=wall, verified=verified
    )


async def test_a_token_accepted_once_is_not_verified_again(
    authenticator: JwtCallerAuthenticator, signer: Signer, verifications: list[str]
) -> None:
    header = f"Bearer {signer.sign(user_claims())}"

    first = await authenticator.authenticate(header)
    second = await authenticator.authenticate(header)

    assert second == first
    assert len(verifications) == 1


async def test_another_token_of_the_same_caller_is_verified(
    authenticator: JwtCallerAuthenticator, signer: Signer, verifications: list[str]
) -> None:
    await authenticator.authenticate(f"Bearer {signer.sign(user_claims(uti='one'))}")
    await authenticator.authenticate(f"Bearer {signer.sign(user_claims(uti='two'))}")

    assert len(verifications) == 2


@pytest.mark.parametrize("part", [0, 1, 2])
async def test_a_tampered_token_is_never_taken_for_a_remembered_one(
    authenticator: JwtCallerAuthenticator,
    signer: Signer,
    audit: MemoryAuditSink,
    part: int,
) -> None:
    token = signer.sign(user_claims())
    await authenticator.authenticate(f"Bearer {token}")
    segments = token.split(".")
    # Another header, other claims, or another signature: each must be checked on its own.
    replacement = {
        0: b64url(b'{"typ":"JWT","alg":"RS256","kid":"current-kid","x":1}'),
        1: b64url(b'{"aud":"someone-else"}'),
        2: segments[2][:-4] + ("AAAA" if not segments[2].endswith("AAAA") else "BBBB"),
    }[part]
    segments[part] = replacement

    with pytest.raises(Unauthorized):
        await authenticator.authenticate(f"Bearer {'.'.join(segments)}")

    assert audit.events[-1].reason in {"bad_signature", "malformed_token"}


async def test_a_remembered_token_is_checked_again_from_its_expiry(
    authenticator: JwtCallerAuthenticator,
    signer: Signer,
    audit: MemoryAuditSink,
    wall: Clock,
    verifications: list[str],
) -> None:
    header = f"Bearer {signer.sign(user_claims(exp=int(NOW) + 60))}"
    await authenticator.authenticate(header)

    wall.advance(60)  # at `exp`: no longer remembered; still inside the clock skew
    await authenticator.authenticate(header)
    wall.advance(SKEW)
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(header)

    assert len(verifications) == 3
    assert audit.events[-1].reason == "token_expired"


async def test_a_token_is_forgotten_once_its_signing_key_leaves_the_key_set(
    settings: Settings,
    audit: MemoryAuditSink,
    wall: Clock,
    monotonic: Clock,
) -> None:
    old, new = Signer("old-kid"), Signer("new-kid")
    jwks = FakeJwks(old)
    keys = SigningKeys(jwks.fetch, cooldown_seconds=COOLDOWN_SECONDS, clock=monotonic)
    authenticator = authenticator_with(settings, keys, audit, wall, VerifiedTokens())
    remembered = f"Bearer {old.sign(user_claims())}"
    await authenticator.authenticate(remembered)

    jwks.published = [new]  # the authority rolls its key; a token signed by the new one
    monotonic.advance(COOLDOWN_SECONDS)  # makes the worker fetch the key set again
    await authenticator.authenticate(f"Bearer {new.sign(user_claims())}")

    with pytest.raises(Unauthorized):
        await authenticator.authenticate(remembered)
    assert audit.events[-1].reason == "unknown_kid"


async def test_a_refused_token_is_refused_and_audited_every_time(
    authenticator: JwtCallerAuthenticator, signer: Signer, audit: MemoryAuditSink
) -> None:
    header = f"Bearer {signer.sign(app_claims(['Some.Other.Role']))}"

    for _ in range(2):
        with pytest.raises(Forbidden):
            await authenticator.authenticate(header)

    assert [e.reason for e in audit.events] == ["missing_role", "missing_role"]


async def test_the_memory_holds_at_most_its_bound_least_recently_used_first(
    settings: Settings,
    keys: SigningKeys,
    audit: MemoryAuditSink,
    wall: Clock,
    signer: Signer,
    verifications: list[str],
) -> None:
    verified = VerifiedTokens(max_entries=2)
    authenticator = authenticator_with(settings, keys, audit, wall, verified)
    a, b, c = (f"Bearer {signer.sign(app_claims([ROLE_READ_ALL], uti=u))}" for u in "abc")

    for header in (a, b, a, c):  # c pushes out b, the least recently used
        await authenticator.authenticate(header)
    await authenticator.authenticate(a)
    await authenticator.authenticate(b)

    assert len(verified) == 2
    assert len(verifications) == 4  # a, b, c, then b again


def test_the_memory_is_keyed_by_a_hash_never_the_token(signer: Signer) -> None:
    token = signer.sign(user_claims())
    verified = VerifiedTokens()
    caller: Any = object()

    verified.put(VerifiedTokens.key(token), VerifiedToken(caller, NOW + 60, "kid"), NOW)

    assert VerifiedTokens.key(token) == hashlib.sha256(token.encode()).digest()
    assert list(verified._entries) == [hashlib.sha256(token.encode()).digest()]


def test_an_expired_entry_is_never_stored_nor_answered() -> None:
    verified = VerifiedTokens()
    caller: Any = object()
    key = VerifiedTokens.key("token")

    verified.put(key, VerifiedToken(caller, NOW, "kid"), NOW)
    assert len(verified) == 0
    verified.put(key, VerifiedToken(caller, NOW + 1, "kid"), NOW)

    assert verified.get(key, NOW + 0.5) is not None
    assert verified.get(key, NOW + 1) is None
    assert len(verified) == 0
