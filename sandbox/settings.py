"""Sandbox settings, read once from the environment (all optional, with working defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"sandbox: setting {name} must be an integer, got {raw!r}") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SystemExit(f"sandbox: setting {name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class SandboxSettings:
    host: str = "127.0.0.1"
    port: int = 5443
    state_dir: Path = PROJECT_ROOT / ".sandbox"
    # Extra redirect URIs registered on the app, besides the default dev-host callback.
    extra_redirect_uris: tuple[str, ...] = ()
    # Outlook throttling (per app + mailbox). Real values by default; tests scale them down.
    throttle_concurrency: int = 4
    throttle_requests_per_window: int = 10_000
    throttle_window_seconds: int = 600
    throttle_upload_bytes_per_window: int = 150 * 1024 * 1024
    throttle_upload_window_seconds: int = 300
    access_token_lifetime_seconds: int = 3600
    auto_consent: bool = True
    strict_refresh_rotation: bool = False

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def ca_bundle_path(self) -> Path:
        """System CAs plus the sandbox CA, for clients (requests/MSAL) that honour one bundle."""
        return self.state_dir / "ca-bundle.pem"

    @classmethod
    def from_env(cls) -> SandboxSettings:
        extra = tuple(
            uri.strip()
            for uri in os.environ.get("SANDBOX_REDIRECT_URIS", "").split(",")
            if uri.strip()
        )
        state_dir = os.environ.get("SANDBOX_STATE_DIR")
        return cls(
            host=os.environ.get("SANDBOX_HOST", "127.0.0.1"),
            port=_int("SANDBOX_PORT", 5443),
            state_dir=Path(state_dir) if state_dir else PROJECT_ROOT / ".sandbox",
            extra_redirect_uris=extra,
            throttle_concurrency=_int("SANDBOX_THROTTLE_CONCURRENCY", 4),
            throttle_requests_per_window=_int("SANDBOX_THROTTLE_REQUESTS", 10_000),
            throttle_window_seconds=_int("SANDBOX_THROTTLE_WINDOW_SECONDS", 600),
            throttle_upload_bytes_per_window=_int(
                "SANDBOX_THROTTLE_UPLOAD_BYTES", 150 * 1024 * 1024
            ),
            throttle_upload_window_seconds=_int("SANDBOX_THROTTLE_UPLOAD_WINDOW_SECONDS", 300),
            access_token_lifetime_seconds=_int("SANDBOX_ACCESS_TOKEN_LIFETIME", 3600),
            auto_consent=_bool("SANDBOX_AUTO_CONSENT", True),
            strict_refresh_rotation=_bool("SANDBOX_STRICT_REFRESH", False),
        )
