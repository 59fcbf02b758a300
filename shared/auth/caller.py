"""The authenticated caller of an API route, and the port that produces one.

Every HTTP adapter gets its caller from `ApiRequest.caller`, filled in by the dispatcher for
operations declared with `Security.BEARER` — one place, no per-route copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True)
class Caller:
    """Validated claims of an Entra ID access token for this API."""

    kind: Literal["user", "app"]
    tenant_id: str  # `tid`
    oid: str  # the user's (delegated) or the calling app's service principal (app) object id
    app_id: str  # `azp` (v2) or `appid` (v1): the client application that called
    scopes: frozenset[str]  # `scp`, delegated tokens
    roles: frozenset[str]  # `roles`, application tokens
    upn: str | None = None  # `preferred_username` / `upn`, delegated tokens only
    # `groups`: the security groups' object ids Entra put in the token (when the API's
    # registration asks for group claims); compared with ADMIN_GROUP_ID.
    groups: frozenset[str] = frozenset()


class CallerAuthenticator(Protocol):
    async def authenticate(
        self, authorization: str | None, *, correlation_id: str | None = None
    ) -> Caller:
        """Validate an `Authorization` header value; raise `Unauthorized` when it is not a
        valid token for this API (reason in the detail, never the token), `Forbidden` when
        it is valid but grants nothing here. `correlation_id` ties a denial's audit event to
        the request."""
        ...
