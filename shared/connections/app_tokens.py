"""Graph tokens for application connections: the app's own client-credentials token, one per
worker for every application connection (MSAL's app token cache), never stored. There is
nothing to refresh and no person to ask (shared/connections/app_scope.py explains refusals).
"""

from __future__ import annotations

import asyncio
import logging

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.connections.app_scope import admin_consent_required
from shared.connections.models import Connection
from shared.errors import IdentityUnavailable
from shared.identity.credentials import AppCredentialError
from shared.identity.msal_client import IdentityError, MsalClient

logger = logging.getLogger(__name__)


class AppTokens:
    """The `AccessTokens` port for application connections (see shared/connections/mailbox.py)."""

    def __init__(self, msal_client: MsalClient, audit: AuditSink) -> None:
        self._msal = msal_client
        self._audit = audit

    @property
    def client_id(self) -> str:
        return str(self._msal.client_id)

    async def access_token(
        self, connection: Connection, correlation_id: str, *, force_refresh: bool = False
    ) -> str:
        try:
            acquired = await asyncio.to_thread(self._msal.graph_app_token, force=force_refresh)
        except AppCredentialError as exc:
            logger.warning("the app credential is unusable: %s", exc.reason)
            raise IdentityUnavailable("The app's own credential could not be used.") from None
        except IdentityError as exc:
            # The app's service principal is disabled or its grant withdrawn: an admin must
            # act. A wrong credential (invalid_client) is the operator's, like for delegated
            # connections: 503 and a log line, not a 409 that blames the connection.
            if exc.error in {"invalid_grant", "unauthorized_client"}:
                self._audit.emit(
                    AuditEvent(
                        "connection.reauth_required",
                        Outcome.FAILURE,
                        correlation_id,
                        connection_id=connection.id,
                        mailbox=connection.mailbox,
                        reason=exc.error,
                    )
                )
                raise admin_consent_required() from None
            logger.warning("the identity provider refused the app's Graph token: %s", exc.error)
            raise IdentityUnavailable(
                "The identity provider could not issue the app's access."
            ) from None
        return acquired.token

    async def refresh_for_claims(
        self, connection: Connection, claims: str, correlation_id: str
    ) -> str:
        # An app token has no session to step up: a fresh one is all there is to try.
        return await self.access_token(connection, correlation_id, force_refresh=True)

    def forget(self, connection_id: str) -> None:
        """Nothing per connection: the app's token is shared (a refusal forces a new one)."""
