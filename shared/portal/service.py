"""The "My connections" portal: sign a person in (OpenID Connect, no Graph consent), list the
connections they own, disconnect one.

Why it is built this way:
- The sign-in flow (state, nonce, PKCE verifier) travels in a sealed, 10-minute cookie
  rather than in the pending-flow table: it never meets the connect flow's storage, and a
  flow cookie cannot be replayed as a session (the seal binds its purpose).
- The session is a sealed cookie too (at most 8 hours): no server-side session store. It
  carries the person's tid/oid and a random anti-forgery token for the page's forms.
- The person is a `Caller` of kind user to the connections service, so the portal sees and
  deletes exactly what the same person's bearer token would (owner checks in one place).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.auth.caller import Caller
from shared.config import Settings
from shared.connections.models import ConnectionStatus
from shared.connections.service import ConnectionService
from shared.crypto.sealed_text import SealedValues
from shared.errors import CsrfRejected, SignInFailed
from shared.identity.msal_client import IdentityError, MsalClient
from shared.notifications.wiring import Notifications

FLOW_PURPOSE = "portal-flow"
SESSION_PURPOSE = "portal-session"
FLOW_SECONDS = 600
# What MSAL needs back to redeem the code; the long auth_uri stays out of the cookie.
_FLOW_KEYS = ("state", "nonce", "code_verifier", "redirect_uri", "scope", "claims_challenge")


@dataclass(frozen=True)
class PortalSession:
    tenant_id: str
    oid: str
    username: str
    csrf: str

    def caller(self, client_id: str) -> Caller:
        return Caller(
            kind="user",
            tenant_id=self.tenant_id,
            oid=self.oid,
            app_id=client_id,
            scopes=frozenset(),
            roles=frozenset(),
            upn=self.username,
        )


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    mailbox: str
    status: ConnectionStatus
    connected_at: datetime
    last_used_at: datetime | None
    subscriptions: int


@dataclass(frozen=True)
class SignInStart:
    auth_uri: str
    flow_cookie: str


class PortalService:
    def __init__(
        self,
        settings: Settings,
        msal: MsalClient,
        sealed: SealedValues,
        connections: ConnectionService,
        notifications: Notifications,
        audit: AuditSink,
    ) -> None:
        self._settings = settings
        self._msal = msal
        self._sealed = sealed
        self._connections = connections
        self._notifications = notifications
        self._audit = audit

    @property
    def session_seconds(self) -> int:
        return int(self._settings.PORTAL_SESSION_HOURS * 3600)

    async def start_sign_in(self) -> SignInStart:
        try:
            flow = await asyncio.to_thread(
                self._msal.initiate_sign_in, self._settings.portal_redirect_uri
            )
        except IdentityError as exc:
            raise SignInFailed(exc.error, "The identity provider could not be reached.") from None
        kept = {k: flow[k] for k in _FLOW_KEYS if k in flow}
        cookie = await self._sealed.wrap(FLOW_PURPOSE, kept, FLOW_SECONDS)
        return SignInStart(str(flow["auth_uri"]), cookie)

    async def finish_sign_in(
        self, params: dict[str, str], flow_cookie: str | None, correlation_id: str
    ) -> str:
        """The sealed session cookie value for the person who signed in."""
        try:
            session = await self._finish(params, flow_cookie)
        except SignInFailed as failure:
            self._audit.emit(
                AuditEvent("portal.sign_in", Outcome.FAILURE, correlation_id, reason=failure.reason)
            )
            raise
        self._audit.emit(
            AuditEvent(
                "portal.sign_in",
                Outcome.SUCCESS,
                correlation_id,
                caller_oid=session.oid,
                tenant_id=session.tenant_id,
            )
        )
        return await self._sealed.wrap(
            SESSION_PURPOSE,
            {
                "tid": session.tenant_id,
                "oid": session.oid,
                "upn": session.username,
                "csrf": session.csrf,
            },
            self.session_seconds,
        )

    async def _finish(self, params: dict[str, str], flow_cookie: str | None) -> PortalSession:
        if params.get("error"):
            raise SignInFailed(
                "denied", "The sign-in was not completed at the identity provider.", status=403
            )
        flow = await self._sealed.unwrap(FLOW_PURPOSE, flow_cookie)
        if flow is None:
            raise SignInFailed(
                "state_unknown", "This sign-in is unknown, expired or from another browser."
            )
        if not params.get("state") or not hmac.compare_digest(
            str(params["state"]), str(flow.get("state", ""))
        ):
            raise SignInFailed("state_invalid", "The sign-in response's state is not valid.")
        try:
            claims: dict[str, Any] = await asyncio.to_thread(
                self._msal.redeem_sign_in, flow, params
            )
        except IdentityError as exc:
            raise SignInFailed(exc.error, "The identity provider refused the sign-in.") from None
        tenant = str(self._settings.TENANT_ID)
        expected_issuer = f"{str(self._settings.AUTHORITY_HOST).rstrip('/')}/{tenant}/v2.0"
        if (
            claims.get("tid") != tenant
            or claims.get("iss") != expected_issuer
            or claims.get("aud") != str(self._settings.CLIENT_ID)
            or not claims.get("oid")
        ):
            raise SignInFailed("id_token_invalid", "The identity token is not for this app.")
        return PortalSession(
            tenant_id=tenant,
            oid=str(claims["oid"]),
            username=str(claims.get("preferred_username") or ""),
            csrf=secrets.token_urlsafe(24),
        )

    async def session(self, cookie: str | None) -> PortalSession | None:
        data = await self._sealed.unwrap(SESSION_PURPOSE, cookie)
        if data is None or data.get("tid") != str(self._settings.TENANT_ID):
            return None
        try:
            return PortalSession(
                str(data["tid"]), str(data["oid"]), str(data["upn"]), str(data["csrf"])
            )
        except KeyError:
            return None

    async def connections(self, session: PortalSession) -> list[ConnectionRow]:
        caller = session.caller(str(self._settings.CLIENT_ID))
        # The person's own mailbox grants: application connections they may use belong to
        # an admin, who manages them through the API, not this page.
        owned = [c for c in await self._connections.list(caller) if not c.is_application]
        rows = []
        for connection in sorted(owned, key=lambda c: c.mailbox):
            subscriptions = await self._notifications.subscriptions.list_for(caller, connection.id)
            rows.append(
                ConnectionRow(
                    id=connection.id,
                    mailbox=connection.mailbox,
                    status=connection.status,
                    connected_at=connection.created_at,
                    last_used_at=connection.last_used_at,
                    subscriptions=len(subscriptions),
                )
            )
        return rows

    async def disconnect(
        self, session: PortalSession, connection_id: str, csrf: str, correlation_id: str
    ) -> None:
        """The DELETE connection route's effect (audited there), behind the form's token."""
        if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
            self._audit.emit(
                AuditEvent(
                    "portal.disconnect",
                    Outcome.FAILURE,
                    correlation_id,
                    caller_oid=session.oid,
                    tenant_id=session.tenant_id,
                    reason="csrf_rejected",
                )
            )
            raise CsrfRejected("The form's token does not match your session. Reload the page.")
        caller = session.caller(str(self._settings.CLIENT_ID))
        await self._connections.delete(caller, connection_id, correlation_id)
