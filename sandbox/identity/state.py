"""What the identity half remembers: signing keys, authorization codes, refresh tokens, every
token it issued, and the behaviour tests switched on (consent, rotation, injected errors).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sandbox.directory import APP_ROLES
from sandbox.identity.claims import ClaimsDemand
from sandbox.identity.credentials import CredentialState
from sandbox.identity.keys import KeyRing
from sandbox.identity.scopes import Resource
from sandbox.settings import SandboxSettings

# "Authorization codes are short lived. Typically, they expire after about 10 minutes."
CODE_LIFETIME = timedelta(minutes=10)
CODE_RETENTION = timedelta(hours=1)
# Refresh tokens: 90 days for non-SPA clients; Entra's inactivity limit is the same 90 days.
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
# Application permissions the sandbox tenant's admin granted to the app, per resource.
DEFAULT_APP_ROLES: dict[Resource, tuple[str, ...]] = {
    "api": APP_ROLES,
    "graph": ("Mail.ReadWrite", "Mail.Send"),
}

TokenKind = Literal["access", "refresh", "id", "code"]


def opaque(prefix: str) -> str:
    """Codes and refresh tokens are opaque strings (Entra's are encrypted blobs, not JWTs)."""
    return prefix + secrets.token_urlsafe(64)


@dataclass
class AuthorizationCode:
    value: str
    client_id: str
    redirect_uri: str
    upn: str
    # (resource, permission) pairs granted by this sign-in, plus the OIDC scopes asked for.
    grants: set[tuple[Resource, str]]
    oidc: set[str]
    resource_order: list[Resource]
    code_challenge: str
    nonce: str | None
    issued_at: datetime
    redeemed: bool = False

    def expired(self, now: datetime) -> bool:
        return now >= self.issued_at + CODE_LIFETIME


@dataclass
class RefreshGrant:
    """A refresh token: bound to a user and a client, not to a resource."""

    value: str
    client_id: str
    upn: str
    grants: set[tuple[Resource, str]]
    oidc: set[str]
    issued_at: datetime
    revoked: bool = False

    def expired(self, now: datetime) -> bool:
        return now >= self.issued_at + REFRESH_TOKEN_LIFETIME


@dataclass
class InjectedError:
    """An OAuth error a test asked for, answered `times` more times (None: until cleared)."""

    error: str
    code: int
    description: str
    suberror: str | None = None
    upn: str | None = None
    times: int | None = 1
    status: int = 400

    def describe(self) -> dict[str, Any]:
        return {
            "error": self.error,
            "code": f"AADSTS{self.code}",
            "description": self.description,
            "suberror": self.suberror,
            "upn": self.upn,
            "times": self.times,
            "status": self.status,
        }


def take_injected(errors: list[InjectedError], upn: str | None) -> InjectedError | None:
    for injected in errors:
        if injected.upn is not None and (upn is None or injected.upn != upn.lower()):
            continue
        if injected.times is not None:
            injected.times -= 1
            if injected.times <= 0:
                errors.remove(injected)
        return injected
    return None


@dataclass
class IdentityState:
    settings: SandboxSettings
    keys: KeyRing = field(default_factory=KeyRing)
    codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    issued: list[dict[str, str]] = field(default_factory=list)
    auto_consent: bool = True
    strict_refresh: bool = False
    authorize_errors: list[InjectedError] = field(default_factory=list)
    refresh_errors: list[InjectedError] = field(default_factory=list)
    app_roles: dict[Resource, tuple[str, ...]] = field(default_factory=dict)
    # Federated credentials, certificates and managed identities (sandbox/identity/credentials.py).
    credentials: CredentialState = field(default_factory=CredentialState)
    # Claims challenges demanded by tests, satisfied ones kept for inspection (claims.py).
    claims_demands: list[ClaimsDemand] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget codes, tokens and switches; keep the signing keys (clients cache JWKS)."""
        self.codes.clear()
        self.refresh_tokens.clear()
        self.issued.clear()
        self.auto_consent = self.settings.auto_consent
        self.strict_refresh = self.settings.strict_refresh_rotation
        self.authorize_errors.clear()
        self.refresh_errors.clear()
        self.app_roles = dict(DEFAULT_APP_ROLES)
        self.credentials.reset()
        self.claims_demands.clear()

    def record(
        self, kind: TokenKind, value: str, *, upn: str | None = None, app_id: str | None = None
    ) -> None:
        entry = {"kind": kind, "value": value}
        if upn is not None:
            entry["upn"] = upn
        else:
            entry["appId"] = app_id or ""
        self.issued.append(entry)

    def prune_codes(self, now: datetime) -> None:
        """Forget codes long past expiry so a long benchmark does not grow memory; recent
        ones are kept so that a replay still answers "already redeemed" (AADSTS54005).
        """
        horizon = now - CODE_RETENTION
        for value in [v for v, c in self.codes.items() if c.issued_at < horizon]:
            del self.codes[value]

    def revoke_user(self, upn: str) -> int:
        """Like Graph's revokeSignInSessions: every refresh token of the user stops working."""
        count = 0
        for grant in self.refresh_tokens.values():
            if grant.upn == upn.lower() and not grant.revoked:
                grant.revoked = True
                count += 1
        return count
