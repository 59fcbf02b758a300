"""MSAL, configured once per worker: one HTTP session (trusting CA_BUNDLE), one discovery
cache, and a `ConfidentialClientApplication` per token cache.

Why a client application per cache: each connection owns its own MSAL
`SerializableTokenCache` (stored encrypted), and MSAL binds a cache to an application object.
MSAL's own web-app samples build one per request for the same reason; the shared
`http_cache` makes that cheap (the authority's discovery document is fetched once per
worker, not per object). MSAL is synchronous: callers run these methods in a worker thread.

Every application declares the client capability `CP1`: Microsoft Graph then answers a
revoked session or an unmet Conditional Access policy with a claims challenge (401 +
`WWW-Authenticate: … error="insufficient_claims", claims="…"`) instead of honouring a
long-lived token to its end, and the app answers the challenge (shared/graph/challenge.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import msal
import requests
from msal.exceptions import MsalServiceError

from shared.config import Settings
from shared.identity.credentials import AppCredential, AppCredentialError, build_app_credential

logger = logging.getLogger(__name__)

# Scopes MSAL adds on its own (openid, profile, offline_access) must not be requested
# explicitly: MSAL refuses them.
_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})
# Continuous Access Evaluation: this client can handle claims challenges.
CLIENT_CAPABILITIES = ["CP1"]


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
    def __init__(self, settings: Settings, credential: AppCredential | None = None) -> None:
        self._settings = settings
        self.client_id = str(settings.CLIENT_ID)
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
        self.credential = credential or build_app_credential(settings, self._session)
        # Its own cache: readiness asks for an app token at most once per token lifetime.
        self._probe_cache = msal.SerializableTokenCache()
        # The worker's Graph app-only tokens (application connections): MSAL's own cache
        # serves them until shortly before they expire; one per worker, never stored.
        self._app_cache = msal.SerializableTokenCache()
        if settings.AUTH_RESPONSE_MODE == "query":
            # Query mode is a deliberate setting (loopback); MSAL's advice is in the README.
            warnings.filterwarnings(
                "ignore", message="response_mode='form_post' is recommended", category=UserWarning
            )

    def application(
        self, cache: msal.SerializableTokenCache | None = None
    ) -> msal.ConfidentialClientApplication:
        """Raises AppCredentialError when the app's own credential cannot be produced."""
        credential = self.credential.client_credential()
        with self._lock:  # http_cache is a plain dict shared by every application object
            return msal.ConfidentialClientApplication(
                str(self._settings.CLIENT_ID),
                client_credential=credential,
                client_capabilities=CLIENT_CAPABILITIES,
                authority=self._settings.authority,
                # The authority is the operator's setting (Entra, a national cloud or the
                # sandbox): no instance discovery round-trip to a fixed Microsoft host.
                instance_discovery=False,
                http_client=self._session,
                http_cache=self._http_cache,
                token_cache=cache,
            )

    def initiate(
        self, login_hint: str | None, claims_challenge: str | None = None
    ) -> dict[str, Any]:
        """Start auth code + PKCE: MSAL makes state, nonce and the S256 verifier.

        claims_challenge: claims JSON a resource demanded (CAE step-up), sent as the
            authorize request's `claims` so that this sign-in satisfies them.
        """
        try:
            app = self.application()
        except AppCredentialError as exc:
            raise IdentityError(exc.reason) from None
        flow: dict[str, Any] = app.initiate_auth_code_flow(
            scopes=self.scopes,
            redirect_uri=str(self._settings.REDIRECT_URI),
            login_hint=login_hint,
            response_mode=self._settings.AUTH_RESPONSE_MODE,
            claims_challenge=claims_challenge,
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
        try:
            app = self.application(cache)
            result = app.acquire_token_by_auth_code_flow(flow, auth_response)
        except AppCredentialError as exc:
            raise IdentityError(exc.reason) from None
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

    def graph_app_token(self, *, force: bool = False) -> AppToken:
        """A client-credentials token for Microsoft Graph (`{graph}/.default`), served from
        the worker's app token cache while valid. `force` drops the cached one first (Graph
        refused it: the admin may have changed the app's permissions since).

        Raises IdentityError with the OAuth error code when Entra refuses, AppCredentialError
        when the app's own credential cannot be produced."""
        app = self.application(self._app_cache)
        if force:
            app.remove_tokens_for_client()
        try:
            result = app.acquire_token_for_client([self._settings.graph_app_scope])
        except (requests.RequestException, MsalServiceError):
            raise IdentityError("authority_unreachable") from None
        if "access_token" not in result:
            raise IdentityError(str(result.get("error", "no_token")))
        return AppToken(str(result["access_token"]), int(result.get("expires_in", 0)))

    def check_app_credential(self) -> None:
        """Prove the app's credential at the token endpoint: an app-only token for the app
        itself (no permission needed), served from the probe's cache while it is valid.

        Raises AppCredentialError with Entra's AADSTS number (e.g. AADSTS700213, a federated
        record's subject that does not match), or our own reason code."""
        app = self.application(self._probe_cache)
        try:
            result = app.acquire_token_for_client([f"{self._settings.CLIENT_ID}/.default"])
        except (requests.RequestException, MsalServiceError):
            raise AppCredentialError("authority_unreachable") from None
        if "access_token" in result:
            return
        codes = result.get("error_codes") or []
        reason = f"AADSTS{codes[0]}" if codes else str(result.get("error", "refused"))
        raise AppCredentialError(reason)


@dataclass(frozen=True)
class AppToken:
    token: str
    expires_in: int


class AppCredentialProbe:
    """Readiness: the configured credential mode works end to end (managed identity
    endpoint, Key Vault certificate, federated record, secret), named `appCredential`."""

    name = "appCredential"

    def __init__(self, msal_client: MsalClient) -> None:
        self._msal = msal_client

    async def check(self) -> None:
        await asyncio.to_thread(self._msal.check_app_credential)
