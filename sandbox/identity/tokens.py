"""Entra-shaped tokens: RS256 JWT access tokens (v1 for Graph, v2 for this API), v2 ID tokens,
and `client_info`. Every token minted here is recorded for `GET /_sandbox/tokens`.

Versions follow Entra: an access token's format is the *resource's* choice. Microsoft Graph
gets v1-format tokens (issuer `https://sts.windows.net/{tid}/`, `aud` Graph's resource URI or
app id, `upn`, `appid`); this API's registration accepts v2 tokens (issuer
`{authority host}/{tid}/v2.0`, `aud` = its client id GUID, `azp`, `preferred_username`).
ID tokens from the v2 endpoint are always v2.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from sandbox.directory import GRAPH_APP_ID, GRAPH_RESOURCE, User, stable_id
from sandbox.identity.keys import b64url

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

# ID tokens: one hour, as Entra's.
ID_TOKEN_LIFETIME_SECONDS = 3600
# The app that calls this API in tests and demos (an automation platform's registration):
# tokens minted by `POST /_sandbox/token` name it in `azp`.
CALLER_APP_ID = stable_id("app:sandbox-caller")


def v1_issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def v2_issuer(ctx: SandboxContext) -> str:
    return f"{ctx.settings.base_url}/{ctx.directory.tenant_id}/v2.0"


def service_principal_id(client_id: str) -> str:
    """The object id of an app's service principal: `oid` (and `sub`) of its app tokens."""
    return stable_id(f"sp:{client_id}")


def pairwise_sub(oid: str, client_id: str) -> str:
    """`sub` is pairwise on Entra: the same user has a different `sub` per application."""
    return b64url(hashlib.sha256(f"{oid}:{client_id}".encode()).digest())


def client_info(user: User, tenant_id: str) -> str:
    """What MSAL reads to key its cache: home_account_id = `uid.utid`."""
    payload = json.dumps({"uid": user.id, "utid": tenant_id}, separators=(",", ":"))
    return b64url(payload.encode())


@dataclass(frozen=True)
class IssuedToken:
    value: str
    expires_in: int


def sign_token(ctx: SandboxContext, claims: dict[str, Any]) -> str:
    """Sign `claims` with the tenant's current key (published in its JWKS)."""
    return _sign(ctx, claims)


def _sign(ctx: SandboxContext, claims: dict[str, Any]) -> str:
    key = ctx.identity.keys.current
    return jwt.encode(
        claims,
        key.private_key,
        algorithm="RS256",
        headers={"typ": "JWT", "kid": key.kid, "x5t": key.kid},
    )


def _times(ctx: SandboxContext, lifetime: int) -> dict[str, int]:
    now = ctx.controls.timestamp()
    # Entra backdates nbf/iat by five minutes to absorb clock skew between services.
    return {"iat": now - 300, "nbf": now - 300, "exp": now + lifetime}


def _uti() -> str:
    return b64url(secrets.token_bytes(16))


def _issue_access(
    ctx: SandboxContext,
    claims: dict[str, Any],
    user: User | None,
    client_id: str,
    roles: list[str] | None,
    lifetime: int,
) -> IssuedToken:
    """Sign and record an access token; an app-only token gets the service principal's ids
    and `roles` (the same in v1 and v2 tokens, unlike the user claims)."""
    if user is None:
        sp = service_principal_id(client_id)
        claims.update({"idtyp": "app", "oid": sp, "sub": sp, "roles": list(roles or [])})
    token = _sign(ctx, claims)
    _record_access(ctx, token, user, client_id)
    return IssuedToken(token, lifetime)


def mint_graph_token(
    ctx: SandboxContext,
    *,
    client_id: str,
    user: User | None,
    scopes: list[str] | None = None,
    roles: list[str] | None = None,
    audience: str = GRAPH_APP_ID,
    capabilities: list[str] | None = None,
) -> IssuedToken:
    """A v1-format Graph access token, delegated (`scp`, user claims) or app-only (`roles`).
    `capabilities` the client declared (CP1) are carried as `xms_cc`, as Entra does."""
    lifetime = ctx.settings.access_token_lifetime_seconds
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": v1_issuer(ctx.directory.tenant_id),
        **_times(ctx, lifetime),
        "appid": client_id,
        "appidacr": "1",
        "tid": ctx.directory.tenant_id,
        "uti": _uti(),
        "ver": "1.0",
    }
    if capabilities:
        claims["xms_cc"] = list(capabilities)
    if user is not None:
        given, _, family = user.display_name.partition(" ")
        claims.update(
            {
                "acr": "1",
                "amr": ["pwd"],
                "idtyp": "user",
                "name": user.display_name,
                "given_name": given,
                "family_name": family,
                "oid": user.id,
                "sub": pairwise_sub(user.id, client_id),
                "scp": " ".join(scopes or []),
                "unique_name": user.upn,
                "upn": user.upn,
            }
        )
    return _issue_access(ctx, claims, user, client_id, roles, lifetime)


def mint_api_token(
    ctx: SandboxContext,
    *,
    client_id: str,
    user: User | None,
    scopes: list[str] | None = None,
    roles: list[str] | None = None,
    lifetime: int | None = None,
    groups: list[str] | None = None,
) -> IssuedToken:
    """A v2-format access token for this API: `aud` is the API's client id, not its URI.
    `groups`: the user's security groups, as Entra emits them when the registration asks for
    group claims (`groupMembershipClaims`)."""
    lifetime = ctx.settings.access_token_lifetime_seconds if lifetime is None else lifetime
    claims: dict[str, Any] = {
        "aud": ctx.directory.app.client_id,
        "iss": v2_issuer(ctx),
        **_times(ctx, lifetime),
        "azp": client_id,
        "azpacr": "1",
        "tid": ctx.directory.tenant_id,
        "uti": _uti(),
        "ver": "2.0",
    }
    if user is not None:
        claims.update(
            {
                "idtyp": "user",
                "name": user.display_name,
                "oid": user.id,
                "preferred_username": user.upn,
                "scp": " ".join(scopes or []),
                "sub": pairwise_sub(user.id, client_id),
            }
        )
        if groups:
            claims["groups"] = list(groups)
    return _issue_access(ctx, claims, user, client_id, roles, lifetime)


def mint_id_token(
    ctx: SandboxContext, *, client_id: str, user: User, nonce: str | None, oidc: set[str]
) -> str:
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": v2_issuer(ctx),
        **_times(ctx, ID_TOKEN_LIFETIME_SECONDS),
        "oid": user.id,
        "sub": pairwise_sub(user.id, client_id),
        "tid": ctx.directory.tenant_id,
        "uti": _uti(),
        "ver": "2.0",
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if "profile" in oidc:
        claims["name"] = user.display_name
        claims["preferred_username"] = user.upn
    if "email" in oidc:
        claims["email"] = user.upn
    token = _sign(ctx, claims)
    ctx.identity.record("id", token, upn=user.upn)
    return token


def _record_access(ctx: SandboxContext, token: str, user: User | None, client_id: str) -> None:
    if user is not None:
        ctx.identity.record("access", token, upn=user.upn)
    else:
        ctx.identity.record("access", token, app_id=client_id)


def graph_audience_for(scope_strings: list[str]) -> str:
    """v1 tokens carry the resource as the client named it: Graph's URI when the scopes
    were prefixed with it, Graph's app id otherwise.
    """
    if any(s.lower().startswith(GRAPH_RESOURCE + "/") for s in scope_strings):
        return GRAPH_RESOURCE
    return GRAPH_APP_ID


def unverified_claims(token: str) -> dict[str, Any]:
    """For tests and diagnostics only: the payload without any check."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
