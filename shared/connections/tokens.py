"""Access tokens for a connection: the encrypted MSAL cache → `acquire_token_silent` →
refresh when needed → write back only if the cache changed, under the row's ETag.

Per worker, a decrypted access token is kept in memory until shortly before it expires
(at most `ttl_seconds`), so the hot path makes no Key Vault call and no Table read. A lost
write race (412) loses nothing: Entra leaves the old refresh token valid after use, and the
stored copy is the one the next read takes. `invalid_grant` means the person must connect
again: the connection is marked `reauth_required` and callers get 409 with a login URL.

Use is recorded on the row (`LastUsedAt`) at most once per `TOUCH_EVERY` per connection and
worker, which makes the connection warm: the lifecycle timer then refreshes its access token
before it expires, so callers rarely wait for a refresh themselves.

Claims challenges (CAE): when Graph demands claims, `refresh_for_claims` redeems the grant
once with them. If Entra then wants the person (`interaction_required`, e.g. MFA step-up),
the connection becomes `reauth_required` and keeps the claims, so its loginUrl asks for them
and reconnecting satisfies them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from urllib.parse import urlencode, urljoin

import msal
import requests
from azure.core.exceptions import ResourceModifiedError
from msal.exceptions import MsalServiceError

from shared.audit import AuditEvent, AuditSink, Outcome
from shared.config import Settings
from shared.connections.models import Connection, ConnectionStatus
from shared.connections.schedule import ACCESS_EARLY, WARM_WINDOW, Due, DueKind
from shared.connections.scheduler import DueScheduler
from shared.errors import (
    ConnectionNotFound,
    IdentityUnavailable,
    ReauthRequired,
    StorageUnavailable,
)
from shared.graph.challenge import encode_claims
from shared.identity.credentials import AppCredentialError
from shared.identity.msal_client import MsalClient
from shared.store.connections import ConnectionStore, SealedCache

logger = logging.getLogger(__name__)

# Refresh this long before expiry, so a token handed out is still valid when Graph sees it.
_EARLY_SECONDS = 120
# How often a worker records that a connection is in use: well inside WARM_WINDOW, so a
# connection used steadily never looks cold, and rarely enough to cost nothing per request.
TOUCH_EVERY = WARM_WINDOW / 4
# Past this many remembered touches, those older than TOUCH_EVERY are forgotten.
_TOUCHED_PRUNE_AT = 10_000


@dataclass(frozen=True)
class _Cached:
    token: str
    fresh_until: float  # monotonic
    expires_at: datetime  # the access token's own expiry (wall clock)


@dataclass(frozen=True)
class _Acquired(_Cached):
    stored: bool = False  # a refreshed cache was written back (not lost to another writer)


@dataclass(frozen=True)
class _Silent:
    token: str | None
    expires_in: int
    error: str | None
    cache: bytes | None  # the serialized cache when MSAL changed it, else None


class TokenService:
    def __init__(
        self,
        settings: Settings,
        msal_client: MsalClient,
        store: ConnectionStore,
        audit: AuditSink,
        scheduler: DueScheduler | None = None,
        ttl_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._msal = msal_client
        self._store = store
        self._audit = audit
        # Keeps every written cache armed for the lifecycle timer (none: nothing is armed).
        self._scheduler = scheduler or DueScheduler(None, timedelta(0))
        self._ttl = ttl_seconds
        self._clock = clock
        self._now = wall_clock
        self._cached: dict[str, _Cached] = {}
        # Held only while someone uses it: a worker that refreshes 10,000 connections keeps
        # no lock per connection afterwards.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._touched: dict[str, float] = {}  # connection id -> monotonic time of last touch

    def login_url(self, connection: Connection, claims: str | None = None) -> str:
        """Where the person reconnects; with the claims a resource demanded, if any, so
        that the sign-in satisfies them (the login route hands them to MSAL)."""
        login = urljoin(str(self._settings.REDIRECT_URI), "login")
        query = {"loginHint": connection.mailbox}
        claims = claims or connection.reauth_claims
        if claims:
            query["claims"] = encode_claims(claims)
        return f"{login}?{urlencode(query)}"

    def forget(self, connection_id: str) -> None:
        """Drop the worker's copy (Graph said 401, or the connection was deleted)."""
        self._cached.pop(connection_id, None)

    async def access_token(
        self, connection: Connection, correlation_id: str, *, force_refresh: bool = False
    ) -> str:
        if connection.status is ConnectionStatus.REAUTH_REQUIRED:
            raise ReauthRequired(self.login_url(connection))
        cached = self._cached.get(connection.id)
        if not (cached and not force_refresh and cached.fresh_until > self._clock()):
            lock = self._lock(connection.id)
            async with lock:  # one refresh per connection per worker at a time
                cached = self._cached.get(connection.id)
                if not (cached and not force_refresh and cached.fresh_until > self._clock()):
                    sealed = await self._store.open_cache(connection.id)
                    cached = await self._acquire(sealed, connection, correlation_id, force_refresh)
        await self._touch(connection, cached)
        return cached.token

    async def refresh_for_claims(
        self, connection: Connection, claims: str, correlation_id: str
    ) -> str:
        """Graph answered with a claims challenge: redeem the grant once, carrying `claims`
        (MSAL adds the CP1 capability). Raises ReauthRequired, whose loginUrl carries the
        claims, when Entra needs the person for them; otherwise like `access_token`.

        Callers retry their Graph request once with the token returned, and never call this
        again for the same request: a second challenge is an error, not a loop."""
        if connection.status is ConnectionStatus.REAUTH_REQUIRED:
            raise ReauthRequired(self.login_url(connection))
        self.forget(connection.id)
        async with self._lock(connection.id):
            sealed = await self._store.open_cache(connection.id)
            acquired = await self._acquire(sealed, connection, correlation_id, True, claims=claims)
        return acquired.token

    async def refresh(self, sealed: SealedCache, correlation_id: str, armed: Due | None) -> bool:
        """Redeem the grant of an already opened row now (the lifecycle's keep-alive).
        True when the refreshed cache was stored; False when someone else wrote the row
        first (theirs is kept). Raises like `access_token`."""
        connection_id = sealed.connection.id
        async with self._lock(connection_id):
            acquired = await self._acquire(sealed, sealed.connection, correlation_id, True, armed)
        # A keep-alive is no reason to hold the access token in this worker's memory (most
        # such connections are idle); a caller's next request reads the fresh one from the row.
        self.forget(connection_id)
        return acquired.stored

    def _lock(self, connection_id: str) -> asyncio.Lock:
        lock = self._locks.get(connection_id)
        if lock is None:
            lock = self._locks[connection_id] = asyncio.Lock()
        return lock

    async def _acquire(
        self,
        sealed: SealedCache | None,
        connection: Connection,
        correlation_id: str,
        force: bool,
        armed: Due | None = None,
        claims: str | None = None,
    ) -> _Acquired:
        if sealed is None:
            self.forget(connection.id)
            raise ConnectionNotFound("The connection no longer exists.")
        if sealed.connection.status is ConnectionStatus.REAUTH_REQUIRED:
            raise ReauthRequired(self.login_url(sealed.connection))
        silent = await asyncio.to_thread(self._silent, sealed, force, claims)
        if silent.error is not None or silent.token is None:
            await self._fail(sealed, silent.error or "no_token", correlation_id, claims)
        assert silent.token is not None
        stored = False
        if silent.cache is not None:
            try:
                now = self._now()
                refreshed = replace(sealed.connection, last_refreshed_at=now)
                refreshed = await self._scheduler.arm(refreshed, silent.cache, now, armed)
                await self._store.replace_cache(sealed, refreshed, silent.cache)
                stored = True
            except ResourceModifiedError:
                logger.info("token cache of %s was updated elsewhere; kept theirs", connection.id)
            self._audit.emit(
                AuditEvent(
                    "token.refreshed",
                    Outcome.SUCCESS,
                    correlation_id,
                    connection_id=connection.id,
                    mailbox=connection.mailbox,
                )
            )
        lifetime = max(0, min(silent.expires_in - _EARLY_SECONDS, self._ttl))
        expires_at = self._now() + timedelta(seconds=silent.expires_in)
        acquired = _Acquired(silent.token, self._clock() + lifetime, expires_at, stored)
        self._cached[connection.id] = acquired
        return acquired

    async def _touch(self, connection: Connection, cached: _Cached) -> None:
        """Record use, at most once per TOUCH_EVERY per connection and worker. Never fails
        the caller's request: a use not recorded only leaves the connection cold."""
        now, mono = self._now(), self._clock()
        recent = connection.last_used_at is not None and now - connection.last_used_at < TOUCH_EVERY
        touched = self._touched.get(connection.id)
        if recent or (touched is not None and mono - touched < TOUCH_EVERY.total_seconds()):
            return
        if len(self._touched) >= _TOUCHED_PRUNE_AT:
            window = TOUCH_EVERY.total_seconds()
            self._touched = {k: t for k, t in self._touched.items() if mono - t < window}
        self._touched[connection.id] = mono
        access = Due(cached.expires_at - ACCESS_EARLY, DueKind.ACCESS)
        try:
            pointer = await self._scheduler.sooner(connection, access)
            await self._store.touch(connection, now, pointer)
        except StorageUnavailable:
            logger.info("could not record use of %s; it stays cold for now", connection.id)
            del self._touched[connection.id]

    def _silent(self, sealed: SealedCache, force: bool, claims: str | None = None) -> _Silent:
        cache = msal.SerializableTokenCache()
        cache.deserialize(sealed.cache.decode())
        try:
            app = self._msal.application(cache)
        except AppCredentialError as exc:
            logger.warning("the app credential is unusable: %s", exc.reason)
            return _Silent(None, 0, "identity_unavailable", None)
        accounts = [
            a
            for a in app.get_accounts()
            if a.get("home_account_id") == sealed.connection.home_account_id
        ]
        if not accounts:
            return _Silent(None, 0, "no_account", None)
        try:
            result = app.acquire_token_silent_with_error(
                self._msal.scopes, accounts[0], force_refresh=force, claims_challenge=claims
            )
        except AppCredentialError as exc:
            # The managed identity (or certificate) failed: nothing is wrong with the grant.
            logger.warning("the app credential is unusable: %s", exc.reason)
            return _Silent(None, 0, "identity_unavailable", None)
        except (MsalServiceError, requests.RequestException):
            # The identity provider answered 5xx or could not be reached: nothing is wrong
            # with the grant: IdentityUnavailable (503 graph_unavailable), and the lifecycle
            # backs off.
            return _Silent(None, 0, "identity_unavailable", None)
        if not result:
            return _Silent(None, 0, "no_refresh_token", None)
        if "error" in result:
            return _Silent(None, 0, str(result["error"]), None)
        changed = cache.serialize().encode() if cache.has_state_changed else None
        return _Silent(str(result["access_token"]), int(result.get("expires_in", 0)), None, changed)

    async def _fail(
        self, sealed: SealedCache, error: str, correlation_id: str, claims: str | None = None
    ) -> NoReturn:
        connection = sealed.connection
        self.forget(connection.id)
        # Branch on the OAuth error code, never on AADSTS text (security.md).
        if error in {"invalid_grant", "interaction_required", "no_account", "no_refresh_token"}:
            # Claims the person must satisfy stay with the connection for its loginUrl.
            await self._store.set_status(
                connection.id, ConnectionStatus.REAUTH_REQUIRED, reauth_claims=claims
            )
            self._audit.emit(
                AuditEvent(
                    "connection.reauth_required",
                    Outcome.FAILURE,
                    correlation_id,
                    connection_id=connection.id,
                    mailbox=connection.mailbox,
                    reason=error,
                )
            )
            raise ReauthRequired(self.login_url(connection, claims))
        self._audit.emit(
            AuditEvent(
                "token.refresh_failed",
                Outcome.FAILURE,
                correlation_id,
                connection_id=connection.id,
                reason=error,
            )
        )
        raise IdentityUnavailable("The identity provider could not refresh the mailbox's access.")
