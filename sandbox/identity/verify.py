"""Validation of bearer tokens this sandbox issued, as Microsoft Graph does on every request.

Graph answers any problem with the token (missing, malformed, bad signature, expired, for
another audience) with 401 `InvalidAuthenticationToken`; the message says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

from sandbox.directory import GRAPH_APP_ID, GRAPH_RESOURCE
from sandbox.identity.tokens import (
    CALLER_APP_ID,
    IssuedToken,
    mint_api_token,
    v1_issuer,
    v2_issuer,
)
from sandbox.principal import Principal, TokenRejected

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

__all__ = [
    "CALLER_APP_ID",
    "IssuedToken",
    "authenticate_graph",
    "decode_sandbox_token",
    "mint_api_token",
]

GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_APP_ID)


def _bearer(authorization_header: str | None) -> str:
    if not authorization_header:
        raise TokenRejected("Access token is empty.")
    scheme, _, token = authorization_header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenRejected("Access token is empty.")
    return token.strip()


def decode_sandbox_token(
    ctx: SandboxContext, token: str, *, audiences: tuple[str, ...], issuer: str
) -> dict[str, Any]:
    """Check signature (against every published key), issuer, audience and lifetime on the
    sandbox clock; return the claims or raise TokenRejected.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenRejected("IDX14100: JWT is not well formed.") from None
    key = ctx.identity.keys.find(str(header.get("kid", "")))
    if key is None or header.get("alg") != "RS256":
        raise TokenRejected("Signing key not found or algorithm not accepted.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=["RS256"],
            audience=list(audiences),
            issuer=issuer,
            # Lifetime is checked below against the sandbox clock, which tests can shift.
            options={"verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError:
        raise TokenRejected("Invalid audience.") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected("Invalid issuer.") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected("Signature validation failed.") from None
    except jwt.InvalidTokenError:
        raise TokenRejected("IDX14100: JWT is not well formed.") from None
    now = ctx.controls.timestamp()
    if int(claims.get("exp", 0)) <= now:
        raise TokenRejected("Lifetime validation failed, the token is expired.")
    if int(claims.get("nbf", 0)) > now + 300:
        raise TokenRejected("Lifetime validation failed, the token is not yet valid.")
    return claims


def authenticate_graph(ctx: SandboxContext, authorization_header: str | None) -> Principal:
    """The caller of a Graph request, from its `Authorization: Bearer` header."""
    token = _bearer(authorization_header)
    claims = decode_sandbox_token(
        ctx, token, audiences=GRAPH_AUDIENCES, issuer=v1_issuer(ctx.directory.tenant_id)
    )
    if claims.get("tid") != ctx.directory.tenant_id:
        raise TokenRejected("Invalid tenant.")
    app_id = str(claims.get("appid", ""))
    if claims.get("idtyp") == "app":
        return Principal(
            kind="app",
            tenant_id=str(claims["tid"]),
            app_id=app_id,
            oid=str(claims.get("oid", "")),
            upn=None,
            scopes=frozenset(),
            roles=frozenset(claims.get("roles") or []),
        )
    upn = claims.get("upn")
    if not upn:
        raise TokenRejected("Token has neither a user nor application identity.")
    return Principal(
        kind="user",
        tenant_id=str(claims["tid"]),
        app_id=app_id,
        oid=str(claims.get("oid", "")),
        upn=str(upn).lower(),
        scopes=frozenset(str(claims.get("scp", "")).split()),
        roles=frozenset(claims.get("roles") or []),
        capabilities=frozenset(str(c) for c in claims.get("xms_cc") or []),
    )


def verify_api_token(ctx: SandboxContext, token: str) -> dict[str, Any]:
    """Claims of an access token for this API (as the product would check it), for tests."""
    return decode_sandbox_token(
        ctx, token, audiences=(ctx.directory.app.client_id,), issuer=v2_issuer(ctx)
    )
