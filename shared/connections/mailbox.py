"""One connected mailbox, opened for one request: who may use it, as which mailbox path,
with which access token, and which Graph request ids it produced.

`Mailboxes.open` authorizes the caller once (someone else's connection answers 404, a write
by a read-only app 403) and validates the `mailbox` a caller named; everything after that
uses the handle it returns. `Mailboxes.system` opens a connection for the service's own
background work (no caller: the notification worker, the renewal timer).

The handle gets the connection's access token on first use and keeps it; a 401 from Graph
goes through `_after_unauthorized`, the one place that decides what a refused token means
(refresh once per handle, carrying a CAE claims challenge's claims if Graph sent one; then
give up).

An application connection (no person: the app's client-credentials token) always addresses
its one mailbox as `/users/{mailbox}`, never `/me`, and a 403 from Graph goes through
`_after_forbidden`, which tells a lost app permission from a mailbox outside the app's
Exchange scope (shared/connections/app_scope.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from shared.connections.app_scope import (
    admin_consent_required,
    needed_roles,
    out_of_scope,
    token_roles,
)
from shared.errors import FieldError, Forbidden, ValidationFailed
from shared.graph.client import GraphRequest
from shared.graph.errors import GraphForbidden, GraphUnauthorized
from shared.graph.paths import MailboxPath

if TYPE_CHECKING:
    from shared.auth.caller import Caller
    from shared.connections.models import Connection
    from shared.graph.client import GraphResponse


class ConnectionLookup(Protocol):
    """The caller's connection, authorized (ConnectionService.get)."""

    async def get(
        self, caller: Caller, connection_id: str, *, write: bool = False
    ) -> Connection: ...


class AccessTokens(Protocol):
    """A connection's Graph access token (TokenService)."""

    async def access_token(
        self, connection: Connection, correlation_id: str, *, force_refresh: bool = False
    ) -> str: ...

    async def refresh_for_claims(
        self, connection: Connection, claims: str, correlation_id: str
    ) -> str: ...

    def forget(self, connection_id: str) -> None: ...


class GraphSender(Protocol):
    """Sends one request with a token (GraphClient.send)."""

    async def send(
        self, request: GraphRequest, *, token: str, mailbox_key: str, correlation_id: str
    ) -> GraphResponse: ...


class ConnectedMailbox:
    """A connection opened for one request. Not shared across requests: it holds the
    request's correlation id and collects its Graph request ids."""

    def __init__(
        self,
        connection: Connection,
        *,
        caller: Caller | None,
        mailbox: str | None,
        writable: bool,
        correlation_id: str,
        tokens: AccessTokens,
        graph: GraphSender,
        app_client_id: str = "",
    ) -> None:
        self.connection = connection
        self.caller = caller
        self.writable = writable
        self.correlation_id = correlation_id
        self._app_client_id = app_client_id
        if connection.is_application:
            if mailbox is not None and mailbox.lower() != connection.mailbox.lower():
                raise ValidationFailed(
                    "An application connection reaches only its own mailbox; omit mailbox.",
                    errors=[FieldError(("query", "mailbox"), "not this connection's mailbox")],
                )
            # No signed-in user: Graph's `/me` means nothing to an app token.
            self.path = MailboxPath.of(connection.mailbox)
        else:
            # Validated here, once: a malformed mailbox is a 400 before any token is fetched.
            self.path = MailboxPath.of(mailbox)
        # The mailbox Graph acts on: the shared one a caller named, else the connected user's.
        # Outlook throttles per app and mailbox, and audit names it, so both use this key.
        self.key = (mailbox or connection.mailbox).lower()
        # Another person's mailbox reached with *delegated* access (Graph's limits for that
        # case apply, e.g. no upload sessions); an application connection never is.
        self.is_shared = not connection.is_application and self.key != connection.mailbox.lower()
        self._tokens = tokens
        self._graph = graph
        self._token: str | None = None
        self._refreshed = False
        # Concurrent sends (bulk runs batches side by side) share one token fetch and one
        # refresh: the first 401 refreshes, the others retry with the token it got.
        self._token_lock = asyncio.Lock()
        self._request_ids: list[str] = []

    @property
    def connection_id(self) -> str:
        return self.connection.id

    @property
    def request_ids(self) -> tuple[str, ...]:
        """Graph's `request-id` of every successful answer, in order (for audit)."""
        return tuple(self._request_ids)

    @property
    def last_request_id(self) -> str | None:
        return self._request_ids[-1] if self._request_ids else None

    async def send(self, request: GraphRequest) -> GraphResponse:
        """Send `request` as this connection; a refused token is handled once per handle."""
        if not self.writable and not request.is_read_only:
            # A read was authorized, not a write: a handle must not be able to widen that.
            raise Forbidden("This operation was authorized for reading only.")
        token = await self._access_token()
        try:
            response = await self._send_refreshing(request, token)
        except GraphForbidden as refused:
            if not self.connection.is_application or refused.graph_code != "ErrorAccessDenied":
                raise
            token = await self._after_forbidden(request, self._token or token)
            try:
                response = await self._send(request, token)
            except GraphForbidden as again:
                if again.graph_code != "ErrorAccessDenied":
                    raise
                raise out_of_scope(self._app_client_id, self.connection.mailbox) from None
        if response.request_id:
            self._request_ids.append(response.request_id)
        return response

    async def pages(self, first: GraphRequest, *, max_pages: int) -> AsyncIterator[dict[str, Any]]:
        """Each page of a Graph collection or delta query, following `@odata.nextLink` (with
        the first request's Prefer, which Graph does not carry over) until a page has none or
        `max_pages` were read. A delta round's last page holds `@odata.deltaLink`."""
        request = first
        for _ in range(max_pages):
            body = (await self.send(request)).json() or {}
            yield body
            next_link = body.get("@odata.nextLink")
            if not isinstance(next_link, str) or not next_link:
                return
            request = GraphRequest("GET", next_link, prefer=first.prefer)

    async def _send_refreshing(self, request: GraphRequest, token: str) -> GraphResponse:
        try:
            return await self._send(request, token)
        except GraphUnauthorized as refused:
            token = await self._after_unauthorized(refused, token)
            return await self._send(request, token)

    async def _send(self, request: GraphRequest, token: str) -> GraphResponse:
        return await self._graph.send(
            request, token=token, mailbox_key=self.key, correlation_id=self.correlation_id
        )

    async def _access_token(self) -> str:
        if self._token is None:
            async with self._token_lock:
                if self._token is None:
                    self._token = await self._tokens.access_token(
                        self.connection, self.correlation_id
                    )
        return self._token

    async def _after_unauthorized(self, refused: GraphUnauthorized, used: str) -> str:
        """What a 401 from Graph means, and the token to try again with; raises `refused`
        when there is nothing more to try.

        Graph refuses a token that was revoked or expired early: this worker's cached copy
        is dropped and the grant redeemed again, once per handle, so that a token Graph
        keeps refusing costs one refresh and not one per call. A CAE claims challenge is
        answered the same way, once, by a refresh that carries the demanded claims (which
        raises ReauthRequired when Entra needs the person for them)."""
        async with self._token_lock:
            if self._token is not None and self._token != used:
                return self._token  # another send of this handle refreshed meanwhile
            if self._refreshed:
                raise refused
            self._refreshed = True
            self._tokens.forget(self.connection.id)
            if refused.claims:
                self._token = await self._tokens.refresh_for_claims(
                    self.connection, refused.claims, self.correlation_id
                )
            else:
                self._token = await self._tokens.access_token(
                    self.connection, self.correlation_id, force_refresh=True
                )
            return self._token

    async def _after_forbidden(self, request: GraphRequest, used: str) -> str:
        """An application connection's 403: fetch the app's token anew, once per handle (an
        admin may have granted or revoked permissions since the cached one was issued), and
        give up at once when even the fresh one lacks the permission `request` needs."""
        async with self._token_lock:
            if not self._refreshed and self._token == used:
                self._refreshed = True
                self._token = await self._tokens.access_token(
                    self.connection, self.correlation_id, force_refresh=True
                )
            token = self._token or used
        # Only a connection created while the app's token carried Entra-granted permissions
        # (its `scopes`) can have lost them; with Exchange's RBAC for Applications alone the
        # token carries none, and any 403 is Exchange's scope speaking.
        if self.connection.scopes and not token_roles(token) & needed_roles(request):
            raise admin_consent_required()
        return token

    @property
    def app_roles(self) -> frozenset[str]:
        """The Graph application permissions the handle's current token carries (empty for
        a delegated connection, or before the first request)."""
        if not self.connection.is_application or self._token is None:
            return frozenset()
        return token_roles(self._token)


class Mailboxes:
    """Opens connected mailboxes: for a caller (authorized) or for the service itself."""

    def __init__(
        self,
        connections: ConnectionLookup,
        tokens: AccessTokens,
        graph: GraphSender,
        app_tokens: AccessTokens | None = None,
        app_client_id: str = "",
    ) -> None:
        self._connections = connections
        self._tokens = tokens
        self._graph = graph
        # Application connections use the app's own token; without one configured (unit
        # tests of delegated paths) they use `tokens` like any other.
        self._app_tokens = app_tokens or tokens
        self._app_client_id = app_client_id

    async def open(
        self,
        caller: Caller,
        connection_id: str,
        mailbox: str | None = None,
        *,
        write: bool = False,
        correlation_id: str,
    ) -> ConnectedMailbox:
        """The caller's connection, authorized once for reading (or `write`): someone
        else's answers 404 `connection_not_found`, a write by a read-only app 403."""
        connection = await self._connections.get(caller, connection_id, write=write)
        return self._handle(connection, caller, mailbox, write, correlation_id)

    def system(
        self, connection: Connection, *, correlation_id: str, mailbox: str | None = None
    ) -> ConnectedMailbox:
        """The connection as the service itself uses it, with no caller to authorize (the
        notification worker, the renewal timer): the connection record comes from the store,
        and the grant's own permissions are the only limit."""
        return self._handle(connection, None, mailbox, True, correlation_id)

    def _handle(
        self,
        connection: Connection,
        caller: Caller | None,
        mailbox: str | None,
        write: bool,
        correlation_id: str,
    ) -> ConnectedMailbox:
        return ConnectedMailbox(
            connection,
            caller=caller,
            mailbox=mailbox,
            writable=write,
            correlation_id=correlation_id,
            tokens=self._app_tokens if connection.is_application else self._tokens,
            graph=self._graph,
            app_client_id=self._app_client_id,
        )
