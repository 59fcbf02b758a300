"""The app registration's credentials besides its secret, and how the token endpoint checks a
client assertion (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`).

Two kinds of assertion, told apart by their issuer (a token from another issuer carries an
`x5t` header too, naming *its* signing key):
- a *certificate* assertion is issued by the app itself (`iss` = `sub` = the client id,
  `aud` = the token endpoint), names its certificate with `x5t` (SHA-1) or `x5t#S256`
  (SHA-256 thumbprint, base64url), and is signed with the certificate's key (RS256 or
  PS256). Unknown thumbprint or a bad signature: AADSTS700027.
- anything else is a *federated* assertion: a token from another issuer, matched against the
  app's federated identity credentials by issuer, subject and audience. Entra answers
  AADSTS700211 (no record for the issuer), AADSTS700213 (issuer known, subject not),
  AADSTS700212 (issuer and subject known, audience not). The sandbox trusts only tokens it
  signed itself (its managed identity endpoint's), as Entra trusts an issuer's published keys.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sandbox.directory import stable_id
from sandbox.identity.errors import OAuthError
from sandbox.identity.keys import b64url

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The audience a managed identity's token must have to be used as a federated credential.
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
# Entra refuses client assertions valid for longer than this (exp - nbf).
MAX_ASSERTION_LIFETIME_SECONDS = 24 * 3600


@dataclass(frozen=True)
class FederatedCredential:
    """One federated identity credential on the app registration (Graph's resource shape)."""

    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "issuer": self.issuer,
            "subject": self.subject,
            "audiences": list(self.audiences),
        }


@dataclass(frozen=True)
class RegisteredCertificate:
    """A certificate's public key on the app registration (keyCredentials)."""

    public_key: Any
    x5t: str  # base64url SHA-1 of the DER certificate
    x5t_s256: str  # base64url SHA-256 of the DER certificate

    def describe(self) -> dict[str, str]:
        return {"x5t": self.x5t, "x5t#S256": self.x5t_s256}


def register_certificate(pem: str) -> RegisteredCertificate:
    """Raises ValueError when `pem` holds no certificate."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    der = certificate.public_bytes(serialization.Encoding.DER)
    return RegisteredCertificate(
        public_key=certificate.public_key(),
        x5t=b64url(hashlib.sha1(der).digest()),  # noqa: S324 - Entra's x5t is SHA-1 by definition
        x5t_s256=b64url(hashlib.sha256(der).digest()),
    )


@dataclass(frozen=True)
class ManagedIdentity:
    """A user-assigned managed identity the sandbox's identity endpoint serves."""

    client_id: str
    principal_id: str  # object id: the `sub` of its tokens


@dataclass
class CredentialState:
    federated: list[FederatedCredential] = field(default_factory=list)
    certificates: list[RegisteredCertificate] = field(default_factory=list)
    managed_identities: dict[str, ManagedIdentity] = field(default_factory=dict)
    # The value App Service puts in IDENTITY_HEADER: only holders of it may ask for tokens.
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def reset(self) -> None:
        self.federated.clear()
        self.certificates.clear()
        self.managed_identities.clear()

    def add_managed_identity(self, client_id: str | None) -> ManagedIdentity:
        client_id = (client_id or stable_id(f"mi:{len(self.managed_identities)}")).lower()
        identity = ManagedIdentity(client_id, stable_id(f"mi-principal:{client_id}"))
        self.managed_identities[client_id] = identity
        return identity


def _invalid_client(code: int, message: str) -> OAuthError:
    return OAuthError("invalid_client", code, message, status=401)


def check_client_assertion(ctx: SandboxContext, client_id: str, assertion: str) -> None:
    """Accept the assertion as proof of `client_id`, or raise Entra's OAuthError."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise OAuthError(
            "invalid_client", 50027, "JWT token is invalid or malformed.", status=401
        ) from None
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise OAuthError(
            "invalid_client", 50027, "JWT token is invalid or malformed.", status=401
        ) from None
    if unverified.get("iss") == client_id:
        _check_certificate_assertion(ctx, client_id, assertion, header)
    else:
        _check_federated_assertion(ctx, assertion)


def _token_endpoints(ctx: SandboxContext) -> list[str]:
    tenant = ctx.directory.tenant_id
    base = ctx.settings.base_url
    return [
        f"{base}/{tenant}/oauth2/v2.0/token",
        f"{base}/{ctx.directory.domain}/oauth2/v2.0/token",
        f"{base}/{tenant}/v2.0",
    ]


def _check_certificate_assertion(
    ctx: SandboxContext, client_id: str, assertion: str, header: dict[str, Any]
) -> None:
    registered = ctx.identity.credentials.certificates
    if "x5t#S256" in header:
        wanted = _thumbprint(header["x5t#S256"])
        found = next((c for c in registered if c.x5t_s256 == wanted), None)
    else:
        wanted = _thumbprint(header.get("x5t"))
        found = next((c for c in registered if c.x5t == wanted), None)
    if found is None:
        raise _invalid_client(
            700027,
            "Client assertion failed signature validation. [Reason - The key was not found., "
            f"Thumbprint of key used by client: '{header.get('x5t#S256') or header.get('x5t')}'"
            "]",
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            found.public_key,
            algorithms=["RS256", "PS256"],
            audience=_token_endpoints(ctx),
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        raise _invalid_client(
            700212, "The audience claim of the client assertion is not the token endpoint."
        ) from None
    except jwt.InvalidTokenError:
        raise _invalid_client(
            700027,
            "Client assertion failed signature validation. [Reason - The provided signature "
            "value did not match the expected signature value.]",
        ) from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _invalid_client(
            700023,
            "Client assertion audience claim does not match Realm issuer or the issuer and "
            "subject are not the client id.",
        )
    _check_lifetime(ctx, claims)


def _thumbprint(value: object) -> str:
    """Clients write thumbprints as base64url with or without padding (MSAL pads)."""
    return str(value or "").replace("+", "-").replace("/", "_").rstrip("=")


def _check_lifetime(ctx: SandboxContext, claims: dict[str, Any]) -> None:
    now = ctx.controls.timestamp()
    exp = int(claims.get("exp", 0))
    nbf = int(claims.get("nbf", claims.get("iat", 0)))
    if exp <= now - 300:
        raise _invalid_client(
            700024, "Client assertion is not within its valid time range (expired)."
        )
    if nbf > now + 300 or exp - nbf > MAX_ASSERTION_LIFETIME_SECONDS:
        raise _invalid_client(700024, "Client assertion is not within its valid time range.")


def _check_federated_assertion(ctx: SandboxContext, assertion: str) -> None:
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise OAuthError(
            "invalid_client", 50027, "JWT token is invalid or malformed.", status=401
        ) from None
    issuer = str(unverified.get("iss", ""))
    subject = str(unverified.get("sub", ""))
    raw_aud = unverified.get("aud", "")
    audiences = [str(a) for a in raw_aud] if isinstance(raw_aud, list) else [str(raw_aud)]
    records = ctx.identity.credentials.federated
    by_issuer = [r for r in records if r.issuer == issuer]
    if not by_issuer:
        raise OAuthError(
            "invalid_request",
            700211,
            f"No matching federated identity record found for presented assertion issuer "
            f"'{issuer}'. Please note that the matching is done using a case-sensitive "
            "comparison.",
        )
    by_subject = [r for r in by_issuer if r.subject == subject]
    if not by_subject:
        raise OAuthError(
            "invalid_request",
            700213,
            f"No matching federated identity record found for presented assertion subject "
            f"'{subject}'. Please note that the matching is done using a case-sensitive "
            "comparison.",
        )
    if not any(a in r.audiences for r in by_subject for a in audiences):
        raise OAuthError(
            "invalid_request",
            700212,
            f"No matching federated identity record found for presented assertion audience "
            f"'{', '.join(audiences)}'.",
        )
    # Entra fetches the issuer's keys from its discovery document; the only issuer the
    # sandbox can vouch for is itself (its managed identity endpoint).
    key = ctx.identity.keys.find(str(jwt.get_unverified_header(assertion).get("kid", "")))
    if key is None:
        raise _invalid_client(
            50013, "Assertion failed signature validation. [Reason - The key was not found.]"
        )
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key.public_key,
            algorithms=["RS256"],
            audience=audiences,
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError:
        raise _invalid_client(50013, "Assertion failed signature validation.") from None
    if int(claims.get("exp", 0)) <= ctx.controls.timestamp():
        raise _invalid_client(700024, "Client assertion is not within its valid time range.")
