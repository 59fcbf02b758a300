"""The one Settings object: every app setting, read from the environment and validated once.

Names are exactly those in local.settings.sample.json (Azure Functions app settings become
environment variables). A bad or missing setting stops start-up with `SettingsError`, whose
message names each setting and what is wrong with it but never echoes a value: several
settings are secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.origins import AllowedTarget

# Where each problem+json `type` points: the error catalogue in this repository's docs.
DEFAULT_PROBLEM_TYPE_BASE = (
    "https://github.com/outlook-integration-api/outlook-integration-api/blob/main/docs/errors.md#"
)


class SettingsError(RuntimeError):
    """Start-up configuration is unusable; the message is safe to print."""


class Environment(StrEnum):
    LOCAL = "local"
    PRODUCTION = "production"


class KeyProviderKind(StrEnum):
    LOCAL = "local"
    KEYVAULT = "keyvault"


class AppCredentialKind(StrEnum):
    """How the app proves itself to Entra ID at the token endpoint (docs/credentials.md)."""

    SECRET = "secret"  # noqa: S105 - a mode name
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY_FEDERATION = "managed_identity_federation"


def _https_or_loopback(url: HttpUrl) -> HttpUrl:
    # Tokens travel to these hosts: plain http only ever to this machine.
    if url.scheme != "https" and url.host not in {"127.0.0.1", "localhost", "::1", "[::1]"}:
        raise ValueError("must be an https URL (http is allowed only on loopback)")
    return url


SecureUrl = Annotated[HttpUrl, AfterValidator(_https_or_loopback)]


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.replace(";", ",").split(",") if item.strip()]
    return value


def _split_scopes(value: object) -> object:
    if isinstance(value, str):
        return [item for item in value.replace(",", " ").split() if item]
    return value


# Microsoft Graph's application id, the same in every cloud, and its public hosts.
_GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
_GRAPH_HOSTS = frozenset(
    {
        "graph.microsoft.com",
        "graph.microsoft.us",
        "dod-graph.microsoft.us",
        "microsoftgraph.chinacloudapi.cn",
    }
)


class Settings(BaseModel):
    """Every setting the app reads. See README.md ("Settings") for what each one does."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    APP_ENV: Environment = Environment.LOCAL

    # The Entra ID tenant and this app's registration.
    TENANT_ID: UUID
    CLIENT_ID: UUID
    CLIENT_SECRET: SecretStr | None = None
    # The app's own credential at the token endpoint: a client secret (local and sandbox), a
    # Key Vault certificate, or the user-assigned managed identity's token as a federated
    # client assertion. Unset: see `app_credential`.
    APP_CREDENTIAL: AppCredentialKind | None = None
    MANAGED_IDENTITY_CLIENT_ID: UUID | None = None  # the user-assigned identity's client id
    CERTIFICATE_NAME: str | None = Field(default=None, pattern=r"^[0-9A-Za-z-]{1,127}$")
    # Certificate mode with the local key provider: a PEM file holding the private key and
    # the certificate, standing in for the Key Vault certificate (development only).
    LOCAL_CERTIFICATE_FILE: Path | None = None
    API_AUDIENCE: str | None = None  # default: api://{CLIENT_ID}
    API_SCOPE: str = "access_as_user"
    # People in this Entra security group may create and change application (app-only)
    # connections, like callers holding the app role Connections.Admin. Checked against the
    # token's `groups` claim (the API's registration must emit security groups).
    ADMIN_GROUP_ID: UUID | None = None

    # Clouds: public Entra + Graph by default; national clouds and the sandbox by setting.
    AUTHORITY_HOST: SecureUrl = HttpUrl("https://login.microsoftonline.com")
    GRAPH_BASE_URL: SecureUrl = HttpUrl("https://graph.microsoft.com/v1.0")
    GRAPH_SCOPES: list[str] = Field(
        default_factory=lambda: [
            "Mail.ReadWrite",
            "Mail.Send",
            "Mail.ReadWrite.Shared",
            "Mail.Send.Shared",
            # Categories, automatic replies (shared/mail/settings.py).
            "MailboxSettings.ReadWrite",
            "User.Read",
        ]
    )
    CA_BUNDLE: Path | None = None  # extra trust for every outbound TLS connection

    # The browser flow.
    REDIRECT_URI: SecureUrl = HttpUrl("http://127.0.0.1:7071/api/auth/callback")
    RETURN_TO_ALLOWLIST: list[str] = Field(default_factory=list)
    # form_post (RFC 9700 §4.3.1) keeps the code out of URLs and logs; it needs HTTPS, since
    # the binding cookie must then be SameSite=None; Secure. query is the loopback default.
    AUTH_RESPONSE_MODE: Literal["query", "form_post"] = "query"

    # Table Storage: a connection string (Azurite, keyed accounts) or an endpoint reached with
    # the managed identity (production).
    STORAGE_CONNECTION_STRING: SecretStr | None = None
    STORAGE_TABLE_ENDPOINT: SecureUrl | None = None
    TABLE_PREFIX: str = Field(default="oia", pattern=r"^[A-Za-z][A-Za-z0-9]{0,19}$")
    STORAGE_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0, le=60)

    # Key material for the credential encryption (two layers, see docs/security.md).
    KEY_PROVIDER: KeyProviderKind = KeyProviderKind.LOCAL
    # Local provider: key material from these two settings, or else from a git-ignored dev
    # file created on first use.
    LOCAL_AES_KEY: SecretStr | None = None  # base64 of 32 bytes
    LOCAL_FERNET_KEYS: SecretStr | None = None  # comma-separated Fernet keys, newest first
    LOCAL_KEY_FILE: Path = Path(".keys/dev-keys.json")
    KEY_VAULT_URL: SecureUrl | None = None
    KEY_VAULT_AES_SECRET_NAME: str = "credential-aes-key"  # noqa: S105 - a name
    KEY_VAULT_FERNET_SECRET_NAME: str = "credential-fernet-keys"  # noqa: S105 - a name

    # Callers: Entra ID bearer tokens always; with this on, API routes also need a function
    # key (authLevel function) for tenants that want a shared secret at the edge.
    API_FUNCTION_KEYS: bool = False
    # An unknown `kid` refetches the authority's signing keys at most once per this period,
    # so a flood of forged kids cannot become a flood of JWKS requests.
    JWKS_REFETCH_COOLDOWN_SECONDS: float = Field(default=60.0, ge=0, le=3600)
    # Tolerance for exp / nbf / iat against this worker's clock; Entra allows five minutes.
    TOKEN_CLOCK_SKEW_SECONDS: int = Field(default=300, ge=0, le=300)

    # Requests and outbound calls.
    MAX_REQUEST_BODY_BYTES: int = Field(default=50 * 1024 * 1024, gt=0)
    GRAPH_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0, le=230)
    # The Graph client's retry budget: all attempts and waits of one call end within the
    # deadline, which stays well below host.json's 5-minute functionTimeout.
    GRAPH_RETRY_DEADLINE_SECONDS: float = Field(default=60.0, gt=0, le=240)
    GRAPH_MAX_RETRY_AFTER_SECONDS: float = Field(default=30.0, gt=0, le=120)
    GRAPH_MAX_CONCURRENCY_PER_MAILBOX: int = Field(default=4, ge=1, le=16)

    # Writing mail (docs/api.md "Writing mail"): limits checked before any Graph call, and how
    # long an Idempotency-Key remembers its first response. Exchange Online's default message size
    # limit is 35 MB; Graph's upload sessions take at most 150 MB per attachment.
    MAX_MESSAGE_BYTES: int = Field(default=35 * 1024 * 1024, gt=0, le=150 * 1024 * 1024)
    MAX_RECIPIENTS: int = Field(default=500, ge=1, le=1000)
    IDEMPOTENCY_TTL_HOURS: float = Field(default=24.0, gt=0, le=24 * 7)

    # Paging cursors: HMAC key (base64 of >= 32 bytes) and lifetime. Required in production,
    # where every worker must accept every other worker's cursors; locally, when unset, each
    # worker process generates its own key (cursors then die with the process).
    CURSOR_SECRET: SecretStr | None = None
    CURSOR_TTL_SECONDS: int = Field(default=3600, ge=60, le=86400)

    # Token lifecycle (docs/operations.md): the timer's NCRONTAB schedule (UTC; the function
    # binds it as %LIFECYCLE_SCHEDULE%), how long a grant may sit unredeemed before the
    # keep-alive refresh (Entra's sliding window is 90 days), the fan-out queue, connections
    # per queue message, refreshes in flight per batch, and connections claimed per run.
    LIFECYCLE_SCHEDULE: str = Field(default="0 */5 * * * *", min_length=1)
    KEEPALIVE_IDLE_DAYS: float = Field(default=7.0, gt=0, le=60)
    # An Azure queue name, short enough to take the host's "-poison" suffix.
    LIFECYCLE_QUEUE: str = Field(
        default="oia-lifecycle", pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=3, max_length=56
    )
    LIFECYCLE_BATCH_SIZE: int = Field(default=50, ge=1, le=1000)
    REFRESH_CONCURRENCY: int = Field(default=16, ge=1, le=256)
    LIFECYCLE_RUN_BUDGET: int = Field(default=20000, ge=1, le=1_000_000)

    # Change notifications (docs/triggers.md): the app's externally reachable base URL (Graph
    # posts to {PUBLIC_BASE_URL}/api/notifications/...), the delivery queue (bound as
    # %NOTIFICATIONS_QUEUE%), whether callers may register http://127.0.0.1 webhooks (local
    # development and tests only), how long a delivery is retried before it is given up
    # (audited), and how long before expiry the timer renews a Graph subscription.
    PUBLIC_BASE_URL: SecureUrl = HttpUrl("http://127.0.0.1:7071")
    NOTIFICATIONS_QUEUE: str = Field(
        default="oia-notifications",
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
        min_length=3,
        max_length=56,
    )
    ALLOW_HTTP_LOOPBACK_WEBHOOKS: bool = False
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0, le=60)
    WEBHOOK_RETRY_INITIAL_SECONDS: float = Field(default=2.0, gt=0, le=300)
    WEBHOOK_RETRY_MAX_SECONDS: float = Field(default=600.0, gt=0, le=3600)
    # How long a failing event is retried (retries are queue jobs scheduled with a visibility
    # delay, WEBHOOK_RETRY_MAX_SECONDS being the longest wait between two attempts), and how
    # long a worker's claim on an event lasts before another may take it (it must outlast a
    # Graph read plus WEBHOOK_TIMEOUT_SECONDS).
    # The reconciliation timer (bound as %RECONCILE_SCHEDULE%, NCRONTAB with seconds): a delta
    # sweep of every subscription's folder, catching notifications Graph never delivered.
    RECONCILE_SCHEDULE: str = Field(default="0 */15 * * * *", min_length=1)
    WEBHOOK_RETRY_HOURS: float = Field(default=24.0, gt=0, le=168)
    WEBHOOK_LEASE_SECONDS: int = Field(default=120, ge=1, le=3600)
    SUBSCRIPTION_RENEW_WITHIN_HOURS: float = Field(default=72.0, gt=0, le=168)
    # Poll-mode subscriptions (a delegated connection watching another user's mailbox, where
    # Graph allows no push subscription): how often each folder is read with delta, and the
    # timer that queues the due reads (bound as %POLL_SCHEDULE%; it should fire at least as
    # often as the interval).
    POLL_INTERVAL_SECONDS: int = Field(default=60, ge=1, le=3600)
    POLL_SCHEDULE: str = Field(default="*/15 * * * * *", min_length=1)

    # Archiving (docs/archiving.md): the queue of export page jobs (binding expression
    # %EXPORTS_QUEUE%) and how many messages one page job reads from a folder's delta round
    # (200: each page costs a delta request, checkpoint writes and a queue hop with Graph idle,
    # see benchmarks/README.md "Mailbox export"; a redelivered page reads at most this again).
    EXPORTS_QUEUE: str = Field(
        default="oia-exports",
        pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$",
        min_length=3,
        max_length=56,
    )
    EXPORT_PAGE_SIZE: int = Field(default=200, ge=1, le=1000)

    # Pages for people: the browsable API docs (/api/docs, anonymous like openapi.json) and
    # the "My connections" portal (/api/portal), whose OpenID Connect sign-in returns to
    # PORTAL_REDIRECT_URI (default: REDIRECT_URI's origin + /api/portal/callback; register
    # it on the app like REDIRECT_URI). A portal session lasts at most 8 hours.
    API_DOCS_ENABLED: bool = True
    PORTAL_REDIRECT_URI: SecureUrl | None = None
    PORTAL_SESSION_HOURS: float = Field(default=8.0, gt=0, le=8)

    # Errors and audit.
    PROBLEM_TYPE_BASE_URL: SecureUrl = HttpUrl(DEFAULT_PROBLEM_TYPE_BASE)
    APPLICATIONINSIGHTS_CONNECTION_STRING: SecretStr | None = None
    AUDIT_LOG_PATH: Path = Path(".audit/audit.jsonl")

    @field_validator("GRAPH_SCOPES", mode="before")
    @classmethod
    def _parse_scopes(cls, value: object) -> object:
        return _split_scopes(value)

    @field_validator("RETURN_TO_ALLOWLIST", mode="before")
    @classmethod
    def _parse_allowlist(cls, value: object) -> object:
        return _csv(value)

    @field_validator("RETURN_TO_ALLOWLIST")
    @classmethod
    def _allowlist_are_origins(cls, value: list[str]) -> list[str]:
        for item in value:
            AllowedTarget.parse(item)  # its ValueError names the rule, never the entry
        return value

    @field_validator("CA_BUNDLE")
    @classmethod
    def _bundle_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("file does not exist")
        return value

    @field_validator("LOCAL_AES_KEY")
    @classmethod
    def _aes_key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                raw = base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64") from None
            if len(raw) != 32:
                raise ValueError("must decode to exactly 32 bytes (AES-256)")
        return value

    @field_validator("CURSOR_SECRET")
    @classmethod
    def _cursor_secret_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                raw = base64.b64decode(value.get_secret_value(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("must be base64") from None
            if len(raw) < 32:
                raise ValueError("must decode to at least 32 bytes")
        return value

    @field_validator("LOCAL_FERNET_KEYS")
    @classmethod
    def _fernet_keys_are_valid(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
            if not keys:
                raise ValueError("must hold at least one Fernet key")
            for key in keys:
                try:
                    raw = base64.urlsafe_b64decode(key.encode())
                except (binascii.Error, ValueError):
                    raise ValueError("each key must be urlsafe base64") from None
                if len(raw) != 32:
                    raise ValueError("each key must decode to 32 bytes (a Fernet key)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems: list[str] = []
        if (self.STORAGE_CONNECTION_STRING is None) == (self.STORAGE_TABLE_ENDPOINT is None):
            problems.append(
                "STORAGE_CONNECTION_STRING / STORAGE_TABLE_ENDPOINT: set exactly one of them"
            )
        if self.KEY_PROVIDER is KeyProviderKind.LOCAL:
            if self.APP_ENV is Environment.PRODUCTION:
                problems.append(
                    "KEY_PROVIDER: 'local' is refused when APP_ENV is production; use keyvault"
                )
            if (self.LOCAL_AES_KEY is None) != (self.LOCAL_FERNET_KEYS is None):
                problems.append(
                    "LOCAL_AES_KEY / LOCAL_FERNET_KEYS: set both or neither (neither: the "
                    "local key file is used)"
                )
        elif self.KEY_VAULT_URL is None:
            problems.append("KEY_VAULT_URL: required when KEY_PROVIDER is keyvault")
        problems.extend(self._credential_problems())
        if self.APP_ENV is Environment.PRODUCTION and self.CURSOR_SECRET is None:
            # A per-process key would break paging as soon as a second worker answers.
            problems.append("CURSOR_SECRET: required when APP_ENV is production")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _credential_problems(self) -> list[str]:
        mode = self.app_credential
        if mode is AppCredentialKind.SECRET:
            return (
                []
                if self.CLIENT_SECRET
                else ["CLIENT_SECRET: required when APP_CREDENTIAL is secret"]
            )
        if mode is AppCredentialKind.MANAGED_IDENTITY_FEDERATION:
            if self.MANAGED_IDENTITY_CLIENT_ID is None:
                return [
                    "MANAGED_IDENTITY_CLIENT_ID: required when APP_CREDENTIAL is "
                    "managed_identity_federation"
                ]
            return []
        if self.KEY_PROVIDER is KeyProviderKind.KEYVAULT:
            if self.CERTIFICATE_NAME is None:
                return ["CERTIFICATE_NAME: required when APP_CREDENTIAL is certificate"]
            return []
        if self.LOCAL_CERTIFICATE_FILE is None:
            return [
                "LOCAL_CERTIFICATE_FILE: required when APP_CREDENTIAL is certificate and "
                "KEY_PROVIDER is local (CERTIFICATE_NAME names a Key Vault certificate)"
            ]
        if not self.LOCAL_CERTIFICATE_FILE.is_file():
            return ["LOCAL_CERTIFICATE_FILE: file does not exist"]
        return []

    @cached_property
    def app_credential(self) -> AppCredentialKind:
        """APP_CREDENTIAL or, unset, the mode whose setting is present; with none of them,
        federation in production (the error then names MANAGED_IDENTITY_CLIENT_ID) and
        secret elsewhere. Why infer: a deployment that predates APP_CREDENTIAL and has only
        CLIENT_SECRET keeps starting after an upgrade."""
        if self.APP_CREDENTIAL is not None:
            return self.APP_CREDENTIAL
        if self.MANAGED_IDENTITY_CLIENT_ID is not None:
            return AppCredentialKind.MANAGED_IDENTITY_FEDERATION
        if self.CERTIFICATE_NAME is not None or self.LOCAL_CERTIFICATE_FILE is not None:
            return AppCredentialKind.CERTIFICATE
        if self.CLIENT_SECRET is not None or self.APP_ENV is not Environment.PRODUCTION:
            return AppCredentialKind.SECRET
        return AppCredentialKind.MANAGED_IDENTITY_FEDERATION

    @cached_property
    def loopback_webhooks(self) -> bool:
        """ALLOW_HTTP_LOOPBACK_WEBHOOKS, never in production (whatever the setting says)."""
        return self.ALLOW_HTTP_LOOPBACK_WEBHOOKS and self.APP_ENV is not Environment.PRODUCTION

    @cached_property
    def return_to_targets(self) -> tuple[AllowedTarget, ...]:
        """RETURN_TO_ALLOWLIST parsed (each entry was checked at start-up)."""
        return tuple(AllowedTarget.parse(item) for item in self.RETURN_TO_ALLOWLIST)

    @cached_property
    def portal_redirect_uri(self) -> str:
        if self.PORTAL_REDIRECT_URI is not None:
            return str(self.PORTAL_REDIRECT_URI)
        redirect = str(self.REDIRECT_URI)
        origin = redirect[: redirect.index("/", redirect.index("//") + 2)]
        return origin + "/api/portal/callback"

    @cached_property
    def portal_url(self) -> str:
        """The portal page, on the origin its sign-in returns to."""
        return self.portal_redirect_uri.removesuffix("/callback")

    @cached_property
    def audience(self) -> str:
        return self.API_AUDIENCE or f"api://{self.CLIENT_ID}"

    @cached_property
    def authority(self) -> str:
        return f"{str(self.AUTHORITY_HOST).rstrip('/')}/{self.TENANT_ID}"

    @cached_property
    def graph_base_url(self) -> str:
        return str(self.GRAPH_BASE_URL).rstrip("/")

    @cached_property
    def graph_app_scope(self) -> str:
        """The client-credentials scope for Graph (application connections): the cloud's
        Graph resource URI when GRAPH_BASE_URL is one of Microsoft's Graph hosts, else Graph's
        application id, which every Entra cloud (and the sandbox) accepts as the resource."""
        host = (self.GRAPH_BASE_URL.host or "").lower()
        if host in _GRAPH_HOSTS:
            return f"https://{host}/.default"
        return f"{_GRAPH_APP_ID}/.default"

    @cached_property
    def cursor_secret(self) -> bytes | None:
        """CURSOR_SECRET decoded, or None when unset (see shared.graph.cursor)."""
        if self.CURSOR_SECRET is None:
            return None
        return base64.b64decode(self.CURSOR_SECRET.get_secret_value())


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise `SettingsError` naming every bad one."""
    env = dict(os.environ if environ is None else environ)
    known = set(Settings.model_fields)
    # An empty app setting means "not set" (the portal and Bicep leave blanks behind).
    values = {name: value for name, value in env.items() if name in known and value != ""}
    unresolved = sorted(name for name, value in values.items() if _KEY_VAULT_REFERENCE.match(value))
    if unresolved:
        # The platform hands the reference text itself to the app when it cannot resolve it
        # (no access, wrong name, vault unreachable). Said plainly here, rather than as a
        # confusing "must be base64" or a secret that silently is the reference string.
        raise SettingsError(
            "invalid settings:\n"
            + "\n".join(
                f"  {name}: is a Key Vault reference the platform could not resolve (check the "
                "app's identity has access to the vault, and the reference's name and version)"
                for name in unresolved
            )
        )
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


_KEY_VAULT_REFERENCE = re.compile(r"^\s*@Microsoft\.KeyVault\(", re.IGNORECASE)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {name}: {message}" if name != "settings" else f"  {message}")
    return "invalid settings:\n" + "\n".join(lines)
