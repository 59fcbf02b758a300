"""The signing keys' published form (JWK), in process: what is derived from a key once must
still be exactly what the key says, and every caller gets its own copy.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization

from sandbox.identity.keys import KeyRing, b64url

ISSUER = "https://127.0.0.1:5443/tenant/v2.0"


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def test_jwk_describes_the_signing_key_and_its_certificate() -> None:
    key = KeyRing().current
    numbers = key.private_key.public_key().public_numbers()

    jwk = key.jwk(ISSUER)

    assert list(jwk) == ["kty", "use", "kid", "x5t", "n", "e", "x5c", "issuer"]
    assert jwk == {
        "kty": "RSA",
        "use": "sig",
        "kid": key.kid,
        "x5t": key.kid,
        "n": _uint(numbers.n),
        "e": _uint(numbers.e),
        "x5c": [base64.b64encode(key.certificate_der).decode("ascii")],
        "issuer": ISSUER,
    }
    assert key.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_each_jwks_is_a_fresh_copy() -> None:
    ring = KeyRing()
    first = ring.jwks(ISSUER)
    first["keys"][0]["x5c"].append("tampered")
    first["keys"][0]["kid"] = "tampered"

    second = ring.jwks("https://elsewhere/v2.0")

    assert second["keys"][0]["kid"] == ring.current.kid
    assert len(second["keys"][0]["x5c"]) == 1
    assert second["keys"][0]["issuer"] == "https://elsewhere/v2.0"


def test_a_rolled_key_publishes_its_own_members() -> None:
    ring = KeyRing()
    old = ring.current
    new = ring.roll()

    published = ring.jwks(ISSUER)["keys"]

    assert [k["kid"] for k in published] == [new.kid, old.kid]
    assert published[0]["n"] != published[1]["n"]
