"""The tenant's token-signing keys and their JWKS, published the way Entra publishes them.

Entra lists several keys at once and rolls them: a key stays published after it stops
signing so that tokens it signed still verify. The ring keeps the current key and the one
before it, so a token survives exactly one roll.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

logger = logging.getLogger(__name__)

KEYS_PUBLISHED = 2


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        """A 2048-bit RSA key with a self-signed certificate, as Entra's JWKS carries `x5c`.

        `kid` and `x5t` are both the certificate's SHA-1 thumbprint, as in Entra's JWKS.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox token signing")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365 * 5))
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        thumbprint = b64url(hashlib.sha1(der, usedforsecurity=False).digest())
        return cls(kid=thumbprint, private_key=key, certificate_der=der)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def jwk(self, issuer: str) -> dict[str, Any]:
        numbers = self.public_key.public_numbers()
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _uint_b64url(numbers.n),
            "e": _uint_b64url(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
            "issuer": issuer,
        }


class KeyRing:
    """Newest key first; the first one signs, all of them verify."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [SigningKey.generate()]

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def roll(self) -> SigningKey:
        key = SigningKey.generate()
        self.keys = [key, *self.keys][:KEYS_PUBLISHED]
        logger.info("signing key rolled; %s keys published", len(self.keys))
        return key

    def find(self, kid: str) -> SigningKey | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [k.jwk(issuer) for k in self.keys]}
