"""An authenticator wired to a fake JWKS, an in-memory audit sink and injectable clocks."""

from __future__ import annotations

import pytest

from shared.audit import MemoryAuditSink
from shared.auth.jwks import SigningKeys
from shared.auth.tokens import JwtCallerAuthenticator, TokenRules
from shared.config import Settings, load_settings
from tests.support.app import sample_settings
from tests.unit.auth.forge import AUTHORITY_HOST, NOW, Clock, FakeJwks, Signer

COOLDOWN_SECONDS = 60.0


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings({**sample_settings(), "CA_BUNDLE": "", "AUTHORITY_HOST": AUTHORITY_HOST})


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer("current-kid")


@pytest.fixture
def jwks(signer: Signer) -> FakeJwks:
    return FakeJwks(signer)


@pytest.fixture
def monotonic() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def wall() -> Clock:
    return Clock(NOW)


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def keys(jwks: FakeJwks, monotonic: Clock) -> SigningKeys:
    return SigningKeys(jwks.fetch, cooldown_seconds=COOLDOWN_SECONDS, clock=monotonic)


@pytest.fixture
def authenticator(
    settings: Settings, keys: SigningKeys, audit: MemoryAuditSink, wall: Clock
) -> JwtCallerAuthenticator:
    return JwtCallerAuthenticator(TokenRules.from_settings(settings), keys, audit, clock=wall)
