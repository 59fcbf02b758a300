"""MSAL, configured once per worker: one HTTP session (trusting CA_BUNDLE), one discovery
cache, and a `ConfidentialClientApplication` per token cache.

Why a client application per cache: each connection owns its own MSAL
`SerializableTokenCache` (stored encrypted), and MSAL binds a cache to an application object.
MSAL's own web-app samples build one per request for the same reason; the shared
`http_cache` makes that cheap (the authority's discovery document is fetched once per
worker, not per object). MSAL is synchronous: callers run these methods in a worker thread.
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import msal
import requests

from shared.config import Settings

logger = logging.getLogger(__name__)

# Scopes MSAL adds on its own (openid, profile, offline_access) must not be requested
# explicitly: MSAL refuses them.
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})


@dataclass(frozen=True)
class AuthResult:
    """What the identity provider returned, reduced to what the service may keep."""

    id_token_claims: dict[str, Any]
    scopes: list[str]
    home_account_id: str


class IdentityError(Exception):
    """The identity provider refused (its OAuth `error` code; never its description text)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class MsalClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = requests.Session()
        # urllib3 keeps 10 connections per host by default; with more refreshes in flight
        # it would throw the extra connections away after each use, and every new one costs
        # a TLS handshake on both ends. Keep as many as the lifecycle runs at once.
        pool = max(10, settings.REFRESH_CONCURRENCY)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        if settings.CA_BUNDLE is not None:
            # requests lets REQUESTS_CA_BUNDLE in the environment override Session.verify;
            # trust_env=False makes the configured bundle the one actually used.
            self._session.verify = str(settings.CA_BUNDLE)
            self._session.trust_env = False
        self._http_cache: dict[Any, Any] = {}
        self._lock = threading.Lock()
        self.scopes = [s for s in settings.GRAPH_SCOPES if s not in _RESERVED_SCOPES]
        if settings.AUTH_RESPONSE_MODE == "query":
            # Query mode is a deliberate setting (loopback); MSAL's advice is in the README.
            warnings.filterwarnings(
                "ignore", message="response_mode='form_post' is recommended", category=UserWarning
            )

    def application(
        self, cache: msal.SerializableTokenCache | None = None
    ) -> msal.ConfidentialClientApplication:
        secret = self._settings.CLIENT_SECRET
        with self._lock:  # http_cache is a plain dict shared by every application object
            return msal.ConfidentialClientApplication(
                str(self._settings.CLIENT_ID),
                client_credential=secret.get_secret_value() if secret else None,
                authority=self._settings.authority,
                # The authority is the operator's setting (Entra, a national cloud or the
                # sandbox): no instance discovery round-trip to a fixed Microsoft host.
                instance_discovery=False,
                http_client=self._session,
                http_cache=self._http_cache,
                token_cache=cache,
            )

    def initiate(self, login_hint: str | None) -> dict[str, Any]:
        """Start auth code + PKCE: MSAL makes state, nonce and the S256 verifier."""
        flow: dict[str, Any] = self.application().initiate_auth_code_flow(
            scopes=self.scopes,
            redirect_uri=str(self._settings.REDIRECT_URI),
            login_hint=login_hint,
            response_mode=self._settings.AUTH_RESPONSE_MODE,
        )
        if "auth_uri" not in flow:
            raise IdentityError(str(flow.get("error", "flow_not_started")))
        return flow

    def _sign_in_application(self) -> msal.ConfidentialClientApplication:
        secret = self._settings.CLIENT_SECRET
        with self._lock:
            return msal.ConfidentialClientApplication(
                str(self._settings.CLIENT_ID),
                client_credential=secret.get_secret_value() if secret else None,
                authority=self._settings.authority,
                instance_discovery=False,
                http_client=self._session,
                http_cache=self._http_cache,
                # Signing a person in to our own pages needs no refresh token: MSAL would add
                # offline_access to every request otherwise.
                exclude_scopes=["offline_access"],
            )

    def initiate_sign_in(self, redirect_uri: str) -> dict[str, Any]:
        """OpenID Connect sign-in (auth code + PKCE, scopes `openid profile` only): who the
        person is, no consent to Graph."""
        flow: dict[str, Any] = self._sign_in_application().initiate_auth_code_flow(
            scopes=[],
            redirect_uri=redirect_uri,
            response_mode="query",
        )
        if "auth_uri" not in flow:
            raise IdentityError(str(flow.get("error", "flow_not_started")))
        return flow

    def redeem_sign_in(self, flow: dict[str, Any], auth_response: dict[str, str]) -> dict[str, Any]:
        """The id token's claims (MSAL checks state, nonce and the token's signature-free
        fields; the caller checks issuer, audience and tenant)."""
        try:
            result = self._sign_in_application().acquire_token_by_auth_code_flow(
                flow, auth_response
            )
        except ValueError:
            raise IdentityError("invalid_response") from None
        if "error" in result:
            raise IdentityError(str(result["error"]))
        claims = dict(result.get("id_token_claims") or {})
        if not claims:
            raise IdentityError("no_id_token")
        return claims

    def redeem(
        self, flow: dict[str, Any], auth_response: dict[str, str]
    ) -> tuple[AuthResult, msal.SerializableTokenCache]:
        """Redeem the code into a fresh cache that will belong to the connection."""
        cache = msal.SerializableTokenCache()
        app = self.application(cache)
        try:
            result = app.acquire_token_by_auth_code_flow(flow, auth_response)
        except ValueError:
            # MSAL raises ValueError on a state mismatch or a malformed response.
            raise IdentityError("invalid_response") from None
        if "error" in result:
            raise IdentityError(str(result["error"]))
        claims = dict(result.get("id_token_claims") or {})
        accounts = app.get_accounts()
        if not claims or not accounts:
            raise IdentityError("no_id_token")
        granted = str(result.get("scope", "")).split()
        return AuthResult(claims, granted, str(accounts[0]["home_account_id"])), cache
