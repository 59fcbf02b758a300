"""The authority's token-signing keys, cached per worker, refetched only when a new `kid`
appears — and then at most once per cooldown period.

One `PyJWKClient` does the fetching (urllib, TLS trusting `CA_BUNDLE`, no redirects); this
module owns the cache and the rate limit, because those are the security-relevant parts.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping

from jwt import PyJWK, PyJWKClient, PyJWKSet, PyJWTError

logger = logging.getLogger(__name__)

# Entra's JWKS answers in well under a second; a stalled fetch must not hold the request
# (and the one-fetch-at-a-time lock) for long.
FETCH_TIMEOUT_SECONDS = 10.0


class UnknownSigningKey(Exception):
    """The token names a `kid` the authority does not publish (or not yet, within the
    cooldown)."""


class SigningKeysUnavailable(Exception):
    """The authority's JWKS could not be fetched (network, TLS, or not a key set)."""


FetchKeys = Callable[[], PyJWKSet]


def jwks_uri(authority: str) -> str:
    """Entra's v2 JWKS endpoint for a tenant authority (`{host}/{tenant}`)."""
    return f"{authority.rstrip('/')}/discovery/v2.0/keys"


def pyjwk_fetcher(uri: str, ssl_context: ssl.SSLContext) -> FetchKeys:
    """A blocking fetch of the whole key set through one `PyJWKClient`.

    PyJWKClient's own caches are off (`cache_jwk_set=False`): `SigningKeys` caches, so that
    its cooldown — with an injectable clock — is the only thing deciding when to fetch.
    """
    client = PyJWKClient(
        uri, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS, ssl_context=ssl_context
    )
    return lambda: client.get_jwk_set(refresh=True)


class SigningKeys:
    """Signing keys by `kid`, one cache per worker.

    Why a cooldown: the `kid` comes from an unauthenticated token header. If every unknown
    kid caused a fetch, anyone could make this worker hammer the authority (and queue
    requests behind the fetches) by sending tokens with random kids. So an unknown kid
    refetches only when the last fetch is at least `cooldown_seconds` old; otherwise it is
    simply unknown. A real rollover is still picked up the first time the new kid is seen
    after the cooldown, without a restart.

    Fetches are blocking (urllib inside PyJWKClient), so they run in a worker thread, and
    only one is in flight: requests that need it while it runs await the same fetch instead
    of starting their own or tying up threads waiting for a lock.
    """

    def __init__(
        self,
        fetch: FetchKeys,
        *,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._keys: Mapping[str, PyJWK] = {}
        self._last_attempt: float | None = None
        self._last_failed = False
        self._pending: asyncio.Future[None] | None = None
        # Belt and braces should two event loops ever share this object: the fetch itself
        # re-checks the cooldown under a thread lock.
        self._lock = threading.Lock()
        self.fetches = 0  # how many times the JWKS was requested (observability, tests)

    async def get(self, kid: str) -> PyJWK:
        """The key for `kid`; raise `UnknownSigningKey` or `SigningKeysUnavailable`."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._pending is None or self._pending.done():
            if not self._fetch_due():
                # The cheap path for a flood of bogus kids: no thread, no network.
                return self._unknown()
            self._pending = asyncio.ensure_future(asyncio.to_thread(self._refresh))
        # Shielded: a caller that goes away does not cancel the fetch others await.
        await asyncio.shield(self._pending)
        key = self._keys.get(kid)
        return key if key is not None else self._unknown()

    def knows(self, kid: str) -> bool:
        """Is `kid` among the keys of the last successful fetch?"""
        return kid in self._keys

    def _fetch_due(self) -> bool:
        return self._last_attempt is None or self._clock() - self._last_attempt >= self._cooldown

    def _unknown(self) -> PyJWK:
        if self._last_failed:
            raise SigningKeysUnavailable
        raise UnknownSigningKey

    def _refresh(self) -> None:
        with self._lock:
            if not self._fetch_due():
                return
            # The attempt starts the cooldown whether it succeeds or not: an unreachable
            # authority must not be retried by every request either.
            self._last_attempt = self._clock()
            self.fetches += 1
            try:
                key_set = self._fetch()
            except (PyJWTError, ValueError, OSError) as exc:
                # Unreachable, TLS refused, not JSON, or no usable keys in it.
                self._last_failed = True
                logger.warning("fetching the token-signing keys failed: %s", type(exc).__name__)
                return
            self._store(key_set)

    def _store(self, key_set: PyJWKSet) -> None:
        # RSA keys only: tokens are accepted as RS256 alone, so no other key type may ever
        # be handed to a verifier (an `oct` key would turn into an HMAC secret).
        self._keys = {
            key.key_id: key for key in key_set.keys if key.key_id and key.key_type == "RSA"
        }
        self._last_failed = False
        logger.info("token-signing keys fetched: %d keys", len(self._keys))
