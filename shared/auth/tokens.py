"""Entra ID access tokens for this API → `Caller`: every check, in one place, with a stable
reason code for each refusal.

The checks follow Microsoft's guidance for protected web APIs: signature from the tenant's
JWKS, exact issuer, audience, lifetime, tenant, and then what the token grants (a delegated
scope or app roles). Refusals answer 401 with a general description and emit an
`auth.denied` audit event; neither ever carries the token or a claim value.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.caller import Caller
from shared.auth.jwks import (
    SigningKeys,
    SigningKeysUnavailable,
    UnknownSigningKey,
    jwks_uri,
    pyjwk_fetcher,
)
from shared.auth.policy import require_api_access
from shared.auth.verified import VerifiedToken, VerifiedTokens
from shared.config import Settings
from shared.errors import AuthorityUnavailable, Forbidden, Unauthorized
from shared.tls import outbound_ssl_context

logger = logging.getLogger(__name__)

# Entra access tokens are a few KB. Anything much larger is refused before it is decoded,
# so that parsing cost stays bounded whatever a caller sends.
MAX_TOKEN_BYTES = 16 * 1024

# Why RS256 alone: Entra signs access tokens with RS256 only. Accepting the header's `alg`
# would open the classic confusions — `none` (no signature) and HS256 "signed" with the
# RSA public key as an HMAC secret (anyone can do that, the key is public).
ALGORITHM = "RS256"

# Microsoft Graph's audience values (public and national clouds). A Graph token sent here
# is a client mistake worth naming — and, if accepted, a token meant for another resource.
GRAPH_AUDIENCES = frozenset(
    {
        "00000003-0000-0000-c000-000000000000",  # Graph's application id, every cloud
        "https://graph.microsoft.com",
        "https://canary.graph.microsoft.com",
        "https://graph.microsoft.us",  # US Government L4
        "https://dod-graph.microsoft.us",  # US Government L5 (DoD)
        "https://microsoftgraph.chinacloudapi.cn",  # operated by 21Vianet
        "https://graph.microsoft.de",  # Germany (retired)
    }
)


class DenialReason(StrEnum):
    """Stable reason codes of `auth.denied` audit events (dashboards query them)."""

    MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason code
    TOKEN_TOO_LARGE = "token_too_large"  # noqa: S105 - a reason code
    MALFORMED_TOKEN = "malformed_token"  # noqa: S105 - a reason code
    BAD_ALGORITHM = "bad_algorithm"
    CRIT_HEADER = "crit_header"
    MISSING_KID = "missing_kid"
    UNKNOWN_KID = "unknown_kid"
    KEYS_UNAVAILABLE = "keys_unavailable"
    BAD_SIGNATURE = "bad_signature"
    GRAPH_AUDIENCE = "graph_audience"
    BAD_AUDIENCE = "bad_audience"
    BAD_ISSUER = "bad_issuer"
    TENANT_MISMATCH = "tenant_mismatch"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason code
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"  # noqa: S105 - a reason code
    MISSING_CLAIMS = "missing_claims"
    MISSING_SCOPE = "missing_scope"
    NO_SCOPE_OR_ROLES = "no_scope_or_roles"
    MISSING_ROLE = "missing_role"


# What the caller is told: the kind of problem, never a value from the token.
_DETAILS: Mapping[DenialReason, str] = {
    DenialReason.MISSING_TOKEN: (
        "This operation needs an Entra ID access token: send 'Authorization: Bearer <token>'."
    ),
    DenialReason.TOKEN_TOO_LARGE: f"The token is larger than {MAX_TOKEN_BYTES // 1024} KB.",
    DenialReason.MALFORMED_TOKEN: "The token is not a well-formed JWT.",
    DenialReason.BAD_ALGORITHM: "The token is not signed with RS256.",
    DenialReason.CRIT_HEADER: "The token has critical header parameters this API does not accept.",
    DenialReason.MISSING_KID: "The token's header does not name its signing key (kid).",
    DenialReason.UNKNOWN_KID: "The token is signed with a key the tenant does not publish.",
    DenialReason.BAD_SIGNATURE: "The token's signature is not valid.",
    DenialReason.GRAPH_AUDIENCE: (
        "The token is for Microsoft Graph, not this API: request a token for this API's scope."
    ),
    DenialReason.BAD_AUDIENCE: "The token's audience is not this API.",
    DenialReason.BAD_ISSUER: "The token was not issued by this API's tenant.",
    DenialReason.TENANT_MISMATCH: "The token's tenant is not this API's tenant.",
    DenialReason.TOKEN_EXPIRED: "The token has expired.",
    DenialReason.TOKEN_NOT_YET_VALID: "The token is not valid yet.",
    DenialReason.MISSING_CLAIMS: "The token lacks a claim this API needs (oid, tid, azp/appid).",
    DenialReason.NO_SCOPE_OR_ROLES: "The token carries neither a delegated scope nor app roles.",
}


class _Rejected(Exception):
    """One refusal: its reason code, and the caller's ids once the signature is verified."""

    def __init__(self, reason: DenialReason, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or _DETAILS.get(reason, "The token is not valid for this API.")


@dataclass(frozen=True)
class TokenRules:
    """What a token must say to be accepted, derived once from settings."""

    tenant_id: str
    issuers: frozenset[str]
    audiences: frozenset[str]
    graph_audiences: frozenset[str]
    scope: str
    skew_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenRules:
        tid = str(settings.TENANT_ID)
        return cls(
            tenant_id=tid,
            # v1 tokens (accessTokenAcceptedVersion null/1) and v2 tokens, exact strings.
            issuers=frozenset({f"https://sts.windows.net/{tid}/", f"{settings.authority}/v2.0"}),
            # v1 tokens carry the app id URI, v2 tokens the client id.
            audiences=frozenset({settings.audience, str(settings.CLIENT_ID)}),
            graph_audiences=GRAPH_AUDIENCES | {_origin(settings.graph_base_url)},
            scope=settings.API_SCOPE,
            skew_seconds=settings.TOKEN_CLOCK_SKEW_SECONDS,
        )


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}".lower()


class JwtCallerAuthenticator:
    """The `CallerAuthenticator` for Entra ID bearer tokens (one per worker: it owns the
    signing-key cache and remembers the tokens it accepted until they expire)."""

    def __init__(
        self,
        rules: TokenRules,
        keys: SigningKeys,
        audit: AuditSink,
        *,
        clock: Callable[[], float] = time.time,
        verified: VerifiedTokens | None = None,
    ) -> None:
        self._rules = rules
        self._keys = keys
        self._audit = audit
        self._clock = clock
        self._verified = verified if verified is not None else VerifiedTokens()

    @classmethod
    def from_settings(cls, settings: Settings, audit: AuditSink) -> JwtCallerAuthenticator:
        fetch = pyjwk_fetcher(
            jwks_uri(settings.authority), outbound_ssl_context(settings.CA_BUNDLE)
        )
        keys = SigningKeys(fetch, cooldown_seconds=settings.JWKS_REFETCH_COOLDOWN_SECONDS)
        return cls(TokenRules.from_settings(settings), keys, audit)

    async def authenticate(
        self, authorization: str | None, *, correlation_id: str | None = None
    ) -> Caller:
        claims: dict[str, Any] | None = None
        try:
            token = _bearer_token(authorization)
            digest = VerifiedTokens.key(token)
            remembered = self._remembered(digest)
            if remembered is not None:
                return remembered
            header = _checked_header(token)
            key = await self._signing_key(token, header)
            claims = _verified_claims(token, key)
            caller = self._caller(claims)
            require_api_access(caller)
        except _Rejected as rejected:
            self._deny(rejected.reason, correlation_id, claims)
            headers = {"WWW-Authenticate": "Bearer"}  # RFC 6750 §3.1: no error without a token
            if rejected.reason is not DenialReason.MISSING_TOKEN:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            raise Unauthorized(rejected.detail, headers=headers) from None
        except Forbidden:
            self._deny(DenialReason.MISSING_ROLE, correlation_id, claims)
            raise
        self._remember(digest, caller, claims, header["kid"])
        return caller

    def _remembered(self, key: bytes) -> Caller | None:
        """The caller of a token this worker accepted before, while it has not expired and
        its signing key is still the tenant's (shared/auth/verified.py says why that is as
        safe as checking it again)."""
        entry = self._verified.get(key, self._clock())
        if entry is None:
            return None
        if not self._keys.knows(entry.kid):
            self._verified.forget(key)
            return None
        return entry.caller

    def _remember(self, key: bytes, caller: Caller, claims: dict[str, Any], kid: str) -> None:
        # `exp` was checked in `_caller` (a number, not before now minus the skew).
        entry = VerifiedToken(caller, float(claims["exp"]), kid)
        self._verified.put(key, entry, self._clock())

    async def _signing_key(self, token: str, header: dict[str, Any]) -> RSAPublicKey:
        _refuse_graph_audience(token, self._rules)
        try:
            jwk = await self._keys.get(header["kid"])
        except UnknownSigningKey:
            raise _Rejected(DenialReason.UNKNOWN_KID) from None
        except SigningKeysUnavailable:
            self._deny(DenialReason.KEYS_UNAVAILABLE, None, None)
            raise AuthorityUnavailable(
                "The tenant's token-signing keys could not be fetched; retry later.",
                headers={"Retry-After": "30"},
            ) from None
        if not isinstance(jwk.key, RSAPublicKey):
            raise _Rejected(DenialReason.UNKNOWN_KID)
        return jwk.key

    def _caller(self, claims: dict[str, Any]) -> Caller:
        rules = self._rules
        _check_lifetime(claims, self._clock(), rules.skew_seconds)
        audience = claims.get("aud")
        # One string, as Entra issues it; a list (legal in RFC 7519) is not accepted.
        if not isinstance(audience, str) or audience not in rules.audiences:
            raise _Rejected(DenialReason.BAD_AUDIENCE)
        # Exact comparison: a prefix or a superstring of the tenant's issuer is another issuer.
        if claims.get("iss") not in rules.issuers:
            raise _Rejected(DenialReason.BAD_ISSUER)
        tid = claims.get("tid")
        if not isinstance(tid, str) or not _is_guid(tid) or tid != rules.tenant_id:
            raise _Rejected(DenialReason.TENANT_MISMATCH)
        oid = claims.get("oid")
        app_id = claims.get("azp", claims.get("appid"))
        if not isinstance(oid, str) or not oid or not isinstance(app_id, str) or not app_id:
            raise _Rejected(DenialReason.MISSING_CLAIMS)
        kind, scopes, roles = _grants(claims, rules.scope)
        upn = claims.get("preferred_username", claims.get("upn")) if kind == "user" else None
        groups = claims.get("groups")
        return Caller(
            kind=kind,
            tenant_id=tid,
            oid=oid,
            app_id=app_id,
            scopes=scopes,
            roles=roles,
            upn=upn if isinstance(upn, str) else None,
            groups=(
                frozenset(g.lower() for g in groups if isinstance(g, str))
                if isinstance(groups, list)
                else frozenset()
            ),
        )

    def _deny(
        self, reason: DenialReason, correlation_id: str | None, claims: dict[str, Any] | None
    ) -> None:
        # Caller ids only from a token whose signature verified: ids from an unverified
        # token are whatever the sender typed, and would make the audit trail say so.
        verified = claims or {}
        self._audit.emit(
            AuditEvent(
                action="auth.denied",
                outcome=Outcome.DENIED,
                correlation_id=correlation_id,
                caller_oid=_short_str(verified.get("oid")),
                caller_app_id=_short_str(verified.get("azp", verified.get("appid"))),
                tenant_id=_short_str(verified.get("tid")),
                reason=str(reason),
            )
        )
        logger.info("caller refused: %s (correlation id %s)", reason, correlation_id)


def _bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _Rejected(DenialReason.MISSING_TOKEN)
    token = token.strip()
    if not token:
        raise _Rejected(DenialReason.MISSING_TOKEN)
    if len(token) > MAX_TOKEN_BYTES:
        raise _Rejected(DenialReason.TOKEN_TOO_LARGE)
    return token


def _checked_header(token: str) -> dict[str, Any]:
    header = _unverified_header(token)
    if header.get("alg") != ALGORITHM:
        raise _Rejected(DenialReason.BAD_ALGORITHM)
    # `crit` lists extensions the verifier must understand (RFC 7515 §4.1.11); this API
    # understands none, and Entra never sends one.
    if "crit" in header:
        raise _Rejected(DenialReason.CRIT_HEADER)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _Rejected(DenialReason.MISSING_KID)
    return header


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, decoded by hand: PyJWT's own reader already refuses some headers
    (`crit`) without saying why, and each refusal here must carry its own reason."""
    segments = token.split(".")
    if len(segments) != 3:
        raise _Rejected(DenialReason.MALFORMED_TOKEN)
    encoded = segments[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError included
        raise _Rejected(DenialReason.MALFORMED_TOKEN) from None
    if not isinstance(header, dict):
        raise _Rejected(DenialReason.MALFORMED_TOKEN)
    return header


def _refuse_graph_audience(token: str, rules: TokenRules) -> None:
    """Name the common mistake before the signature check: Graph tokens from Entra carry a
    `nonce` header that makes their signature unverifiable by anyone but Graph, so checking
    later would only ever say "bad signature". Refusing on unverified data is safe; nothing
    here can make a token pass."""
    try:
        audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        raise _Rejected(DenialReason.MALFORMED_TOKEN) from None
    audiences = audience if isinstance(audience, list) else [audience]
    graph = rules.graph_audiences
    if any(isinstance(a, str) and a.rstrip("/").lower() in graph for a in audiences):
        raise _Rejected(DenialReason.GRAPH_AUDIENCE)


def _verified_claims(token: str, key: RSAPublicKey) -> dict[str, Any]:
    """The payload, once the RS256 signature verifies. The claim checks follow in `_caller`
    against an injectable clock, each with its own reason code."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise _Rejected(DenialReason.BAD_SIGNATURE) from None
    except jwt.PyJWTError:
        raise _Rejected(DenialReason.MALFORMED_TOKEN) from None


def _check_lifetime(claims: dict[str, Any], now: float, skew: int) -> None:
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not _is_time(exp):
        raise _Rejected(DenialReason.MISSING_CLAIMS, "The token has no valid expiry (exp).")
    if exp <= now - skew:
        raise _Rejected(DenialReason.TOKEN_EXPIRED)
    for moment in (nbf, iat):
        if moment is None:
            continue
        if not _is_time(moment):
            raise _Rejected(DenialReason.MALFORMED_TOKEN)
        if moment > now + skew:
            raise _Rejected(DenialReason.TOKEN_NOT_YET_VALID)


def _grants(
    claims: dict[str, Any], scope: str
) -> tuple[Literal["user", "app"], frozenset[str], frozenset[str]]:
    """Delegated (`scp`, must include this API's scope) or application (`roles`, no `scp`)."""
    scp, roles = claims.get("scp"), claims.get("roles")
    role_set = (
        frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None
    )
    if scp is not None:
        scopes = frozenset(scp.split()) if isinstance(scp, str) else frozenset()
        if scope not in scopes:
            raise _Rejected(
                DenialReason.MISSING_SCOPE, f"The token does not carry the scope {scope}."
            )
        return "user", scopes, role_set or frozenset()
    if role_set is None:
        raise _Rejected(DenialReason.NO_SCOPE_OR_ROLES)
    return "app", frozenset(), role_set


def _is_time(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _short_str(value: object) -> str | None:
    # Audit dimensions are ids: a verified token's oid/azp/tid are GUIDs; anything else is cut.
    return value[:64] if isinstance(value, str) else None
