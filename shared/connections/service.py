"""Connecting a mailbox (the browser flow) and managing connections for callers.

Security decisions, each for a reason:
- MSAL makes state, nonce and the PKCE S256 verifier; the flow dict is sealed into the
  browser's HttpOnly cookie (shared/connections/signin.py: bound to its `state`, 10 minutes),
  so a stolen `state` or callback URL is useless elsewhere, and an anonymous login stores
  nothing. The audit events anonymous requests cause pass through a per-worker budget.
- The redirect URI is a setting, never derived from the request's Host header.
- `returnTo` must lie under a configured allow-list entry, compared as parsed URLs
  (shared/origins.py): no open redirect.
- The id token came straight from the token endpoint over TLS (OIDC Core §3.1.3.7); its
  issuer, audience and tenant are still checked here before an owner is recorded.
- A caller who is not the owner gets 404, never 403: no oracle for others' connection ids.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.audit.budget import AuditBudget
from shared.auth.caller import Caller
from shared.auth.policy import (
    authorize_application_connection,
    authorize_connection,
    lists_all_connections,
    may_use_application_connection,
)
from shared.config import Settings
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.scheduler import DueScheduler
from shared.connections.signin import FlowRejected, SignInSealer, SignInTooLarge
from shared.errors import ConnectionNotFound, SignInFailed, ValidationFailed
from shared.graph.challenge import decode_claims
from shared.identity.msal_client import IdentityError, MsalClient
from shared.origins import allowed
from shared.store.connections import ConnectionStore

logger = logging.getLogger(__name__)

_LOGIN_HINT = re.compile(r"^[^\s@<>\"']{1,128}@[A-Za-z0-9.-]{1,253}$")
# The identity provider's errors a person can cause (refusing consent, …) answer 403.
_DENIED = {"access_denied", "consent_required", "interaction_required", "login_required"}


@dataclass(frozen=True)
class LoginStart:
    auth_uri: str
    browser_secret: str  # the HttpOnly cookie's value: the sealed sign-in


@dataclass(frozen=True)
class Connected:
    connection: Connection
    return_to: str | None


def utc_now() -> datetime:
    return datetime.now(UTC)


class ConnectionService:
    def __init__(
        self,
        settings: Settings,
        msal: MsalClient,
        signins: SignInSealer,
        store: ConnectionStore,
        audit: AuditSink,
        scheduler: DueScheduler | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        anonymous_audit: AuditSink | None = None,
    ) -> None:
        self._settings = settings
        # Arms each new grant for the lifecycle timer (none: nothing is armed).
        self._scheduler = scheduler or DueScheduler(None, timedelta(0))
        self._monotonic = monotonic
        # Connection records read in the last few seconds, per worker: the hot path then makes
        # no Table read. Owner and mailbox never change for an id; a status change made
        # elsewhere is seen within the TTL (and the token service re-reads the row before any
        # refresh, so a revoked grant is still caught there).
        self._recent: dict[str, tuple[Connection, float]] = {}
        self._msal = msal
        self._signins = signins
        self._store = store
        self._audit = audit
        # Events that anyone can cause without signing in: budgeted, so they cannot be used to
        # grow the audit log without bound (docs/security.md, "Abuse limits").
        self._anonymous_audit = anonymous_audit or AuditBudget(audit)
        self._now = clock
        # Run before a connection is deleted, while its grant still works (the change
        # notifications' subscriptions are removed on Graph's side and ours).
        self.delete_hooks: list[Callable[[Connection, str], Awaitable[None]]] = []

    # -- the browser flow -------------------------------------------------------------

    async def start_login(
        self,
        login_hint: str | None,
        return_to: str | None,
        correlation_id: str,
        claims: str | None = None,
    ) -> LoginStart:
        """claims: the loginUrl's `claims` (base64url JSON a resource demanded, CAE): sent
        to the identity provider so that this sign-in satisfies them. They only ask for more
        of the person (e.g. MFA), so a forged value can weaken nothing."""
        if login_hint is not None and not _LOGIN_HINT.match(login_hint):
            raise ValidationFailed("loginHint must be an email address or UPN.")
        if return_to is not None and not self._return_to_allowed(return_to):
            raise ValidationFailed("returnTo is not in the configured allow-list.")
        claims_json = None
        if claims is not None:
            claims_json = decode_claims(claims)
            if claims_json is None:
                raise ValidationFailed("claims must be base64url of a JSON object.")
        try:
            flow = await asyncio.to_thread(self._msal.initiate, login_hint, claims_json)
        except IdentityError as exc:
            raise SignInFailed(exc.error, "The identity provider could not be reached.") from None
        try:
            cookie = await self._signins.cookie_for(flow, return_to, self._now())
        except SignInTooLarge:
            raise ValidationFailed("returnTo is too long.") from None
        self._anonymous_audit.emit(
            AuditEvent("auth.login_started", Outcome.SUCCESS, correlation_id)
        )
        return LoginStart(str(flow["auth_uri"]), cookie)

    def _return_to_allowed(self, return_to: str) -> bool:
        # The portal's own page is always a fine place to come back to ("connect another").
        if return_to == self._settings.portal_url:
            return True
        return allowed(return_to, self._settings.return_to_targets)

    async def finish_login(
        self, params: dict[str, str], browser_secret: str | None, correlation_id: str
    ) -> Connected:
        try:
            connected = await self._finish(params, browser_secret)
        except SignInFailed as failure:
            self._anonymous_audit.emit(
                AuditEvent("auth.callback", Outcome.FAILURE, correlation_id, reason=failure.reason)
            )
            raise
        connection = connected.connection
        self._audit.emit(
            AuditEvent(
                "auth.callback",
                Outcome.SUCCESS,
                correlation_id,
                caller_oid=connection.owner_oid,
                tenant_id=connection.owner_tid,
                connection_id=connection.id,
                mailbox=connection.mailbox,
            )
        )
        return connected

    async def _finish(self, params: dict[str, str], browser_secret: str | None) -> Connected:
        state = params.get("state")
        if params.get("error"):
            # The callback clears the sign-in cookie on any failure, so this sign-in cannot
            # be finished later with another response.
            error = params["error"] if re.fullmatch(r"[a-z_]{1,64}", params["error"]) else "error"
            raise SignInFailed(
                error,
                "The sign-in was not completed at the identity provider.",
                status=403 if error in _DENIED else 400,
            )
        if not state:
            raise SignInFailed("state_missing", "The sign-in response has no state.")
        try:
            pending = await self._signins.flow_from(browser_secret, state, self._now())
        except FlowRejected as rejected:
            raise SignInFailed(rejected.reason, _FLOW_DETAIL[rejected.reason]) from None
        try:
            result, cache = await asyncio.to_thread(self._msal.redeem, pending.flow, params)
        except IdentityError as exc:
            raise SignInFailed(exc.error, "The identity provider refused the sign-in.") from None
        claims = result.id_token_claims
        tenant = str(self._settings.TENANT_ID)
        expected_issuer = f"{str(self._settings.AUTHORITY_HOST).rstrip('/')}/{tenant}/v2.0"
        if (
            claims.get("tid") != tenant
            or claims.get("iss") != expected_issuer
            or claims.get("aud") != str(self._settings.CLIENT_ID)
            or not claims.get("oid")
            or not claims.get("preferred_username")
        ):
            raise SignInFailed("id_token_invalid", "The identity token is not for this app.")
        oid = str(claims["oid"])
        mailbox = str(claims["preferred_username"]).lower()
        now = self._now()
        connection_id = await self._store.claim_id(tenant, oid, mailbox, secrets.token_urlsafe(24))
        existing = await self._store.get(connection_id)
        connection = Connection(
            id=connection_id,
            owner_oid=oid,
            owner_tid=tenant,
            mailbox=mailbox,
            scopes=sorted(result.scopes),
            status=ConnectionStatus.ACTIVE,
            created_at=existing.created_at if existing else now,
            last_used_at=existing.last_used_at if existing else None,
            last_refreshed_at=now,
            home_account_id=result.home_account_id,
        )
        serialized = cache.serialize().encode()
        # A new grant, armed afresh: whatever hint the row had before was for the old one.
        connection = await self._scheduler.arm(connection, serialized, now)
        await self._store.save(connection, serialized)
        self._recent.pop(connection.id, None)
        return Connected(connection, pending.return_to)

    # -- callers ------------------------------------------------------------------------

    async def list(self, caller: Caller) -> list[Connection]:
        if lists_all_connections(caller):
            return await self._store.list_all()
        own = (
            await self._store.list_for_owner(caller.tenant_id, caller.oid)
            if caller.kind == "user"
            else []
        )
        # Application connections this caller created or is allowed to use (few per tenant).
        seen = {c.id for c in own}
        shared = [
            c
            for c in await self._store.list_application()
            if c.id not in seen
            and may_use_application_connection(caller, c.owner_oid, c.owner_tid, c.allowed)
        ]
        return sorted([*own, *shared], key=lambda c: c.created_at)

    async def get(self, caller: Caller, connection_id: str, *, write: bool = False) -> Connection:
        recent = self._recent.get(connection_id)
        if recent is not None and recent[1] > self._monotonic():
            connection: Connection | None = recent[0]
        else:
            connection = await self._store.get(connection_id)
            if connection is not None:
                if len(self._recent) > _RECENT_MAX:
                    self._recent.clear()
                self._recent[connection_id] = (connection, self._monotonic() + _RECENT_SECONDS)
        if connection is None:
            raise ConnectionNotFound("No connection with this id is visible to you.")
        if connection.is_application:
            authorize_application_connection(
                caller, connection.owner_oid, connection.owner_tid, connection.allowed, write=write
            )
        else:
            authorize_connection(caller, connection.owner_oid, connection.owner_tid, write=write)
        return connection

    async def delete(self, caller: Caller, connection_id: str, correlation_id: str) -> None:
        connection = await self.get(caller, connection_id, write=True)
        if connection.is_application and caller.oid != connection.owner_oid:
            # Those on the allow-list use the mailbox; removing the connection is the
            # creator's (or a tenant-wide app's) decision.
            authorize_connection(caller, connection.owner_oid, connection.owner_tid, write=True)
        self._recent.pop(connection_id, None)
        for hook in self.delete_hooks:
            await hook(connection, correlation_id)
        await self._store.delete(connection)
        self._audit.emit(
            AuditEvent(
                "connection.revoked",
                Outcome.SUCCESS,
                correlation_id,
                caller_oid=caller.oid,
                caller_app_id=caller.app_id,
                tenant_id=caller.tenant_id,
                connection_id=connection.id,
                mailbox=connection.mailbox,
                mode=str(connection.kind),
            )
        )

    def forget(self, connection_id: str) -> None:
        """Drop this worker's copy of a connection record (its allow-list changed)."""
        self._recent.pop(connection_id, None)


_RECENT_SECONDS = 15.0
_RECENT_MAX = 10_000

_FLOW_DETAIL = {
    "state_invalid": "The sign-in response's state is not valid.",
    "state_replayed": "This sign-in was already used. Start again.",
    "state_expired": "This sign-in took longer than 10 minutes. Start again.",
    "state_foreign": (
        "This sign-in was started in another browser, or a newer one replaced it. Start again here."
    ),
    "state_unreadable": "This sign-in could not be read. Start again.",
}
