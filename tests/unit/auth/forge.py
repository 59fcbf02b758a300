"""Hand-forged Entra-shaped tokens, a fake JWKS endpoint and clocks for the auth unit tests."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWKClientConnectionError, PyJWKSet
from jwt.algorithms import RSAAlgorithm

TENANT = "8d4e3c2a-1b0f-4e5d-9c8b-7a6f5e4d3c2b"
OTHER_TENANT = "0b0b0b0b-1111-4222-8333-444455556666"
CLIENT_ID = "3f1c8a5e-2b7d-4c9e-8a1f-6d5e4c3b2a10"
APP_ID_URI = f"api://{CLIENT_ID}"
AUTHORITY_HOST = "https://login.microsoftonline.com"
V2_ISSUER = f"{AUTHORITY_HOST}/{TENANT}/v2.0"
V1_ISSUER = f"https://sts.windows.net/{TENANT}/"
ALICE_OID = "11111111-aaaa-4aaa-8aaa-111111111111"
CALLER_APP = "22222222-bbbb-4bbb-8bbb-222222222222"
CALLER_SP = "33333333-cccc-4ccc-8ccc-333333333333"
NOW = 1_800_000_000.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Signer:
    """An RSA signing key with its kid, as the authority holds it."""

    kid: str
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig"}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        with_kid: bool = True,
    ) -> str:
        header = {"typ": "JWT", **({"kid": self.kid} if with_kid else {}), **(headers or {})}
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=header)


class FakeJwks:
    """The authority's JWKS endpoint: publishes signers' keys and counts fetches."""

    def __init__(self, *signers: Signer) -> None:
        self.published = list(signers)
        self.fetches = 0
        self.down = False

    def fetch(self) -> PyJWKSet:
        self.fetches += 1
        if self.down:
            raise PyJWKClientConnectionError("unreachable")
        return PyJWKSet.from_dict({"keys": [s.jwk() for s in self.published]})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def user_claims(**overrides: Any) -> dict[str, Any]:
    """A v2 delegated token for this API, as Entra issues it (times around `NOW`)."""
    claims: dict[str, Any] = {
        "aud": CLIENT_ID,
        "iss": V2_ISSUER,
        "iat": int(NOW) - 300,
        "nbf": int(NOW) - 300,
        "exp": int(NOW) + 3600,
        "azp": CALLER_APP,
        "tid": TENANT,
        "oid": ALICE_OID,
        "sub": "pairwise-sub",
        "preferred_username": "alice@contoso.test",
        "scp": "access_as_user",
        "ver": "2.0",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def app_claims(roles: list[str], **overrides: Any) -> dict[str, Any]:
    claims = user_claims(
        oid=CALLER_SP, sub=CALLER_SP, scp=None, preferred_username=None, idtyp="app"
    )
    claims["roles"] = roles
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT assembled by hand (for headers PyJWT refuses to produce)."""
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def random_kid() -> str:
    return b64url(secrets.token_bytes(20))
