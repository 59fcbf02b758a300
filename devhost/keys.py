"""Host keys for the dev host: where they come from and who they authorize.

Keys are taken from ``DEVHOST_MASTER_KEY`` / ``DEVHOST_FUNCTION_KEY``; a key not set there
is read from (or generated into) ``<root>/.devhost/keys.json``, written with mode 0600 so
that only its owner can read it. Key values are never logged or printed.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MASTER_KEY_ENV = "DEVHOST_MASTER_KEY"
FUNCTION_KEY_ENV = "DEVHOST_FUNCTION_KEY"
KEY_HEADER = "x-functions-key"
KEY_QUERY_PARAMETER = "code"


def _generate_key() -> str:
    # Same shape as the host's generated keys: URL-safe, 256 bits of entropy.
    return secrets.token_urlsafe(32)


def _matches(presented: str, expected: str) -> bool:
    # Constant time: a timing difference must not reveal how much of a key was right.
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


@dataclass(frozen=True)
class KeyRing:
    """The master key and the function keys (``default`` is valid for every function)."""

    master_key: str
    function_keys: Mapping[str, str]

    def is_master_key(self, presented: str | None) -> bool:
        """Whether ``presented`` is the master key."""
        return bool(presented) and _matches(presented or "", self.master_key)

    def authorizes(self, auth_level: str, presented: str | None) -> bool:
        """Whether a request presenting ``presented`` may call a function of ``auth_level``."""
        if auth_level == "anonymous":
            return True
        if not presented:
            return False
        if self.is_master_key(presented):
            return True
        if auth_level == "admin":
            return False
        # Check every key without stopping early, so the time taken does not depend on
        # which key (if any) matched.
        results = [_matches(presented, key) for key in self.function_keys.values()]
        return any(results)


def load_key_ring(root: Path, env: Mapping[str, str]) -> tuple[KeyRing, Path | None]:
    """Build the key ring; return it with the keys file path if any key lives in that file."""
    master = env.get(MASTER_KEY_ENV) or None
    function_key = env.get(FUNCTION_KEY_ENV) or None
    if master and function_key:
        return KeyRing(master, {"default": function_key}), None
    path = root / ".devhost" / "keys.json"
    stored = _read_keys_file(path)
    generated_master = master is None and not stored.get("masterKey")
    generated_function = function_key is None and not stored.get("default")
    file_master = stored.get("masterKey") or _generate_key()
    file_function = stored.get("default") or _generate_key()
    if generated_master or generated_function:
        _write_keys_file(path, file_master, file_function)
    ring = KeyRing(
        master_key=master or file_master,
        function_keys={"default": function_key or file_function},
    )
    return ring, path


def _read_keys_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning("Ignoring unreadable keys file %s; new keys will be generated", path)
        return {}
    keys: dict[str, str] = {}
    if isinstance(document.get("masterKey"), str):
        keys["masterKey"] = document["masterKey"]
    function_keys = document.get("functionKeys")
    if isinstance(function_keys, dict) and isinstance(function_keys.get("default"), str):
        keys["default"] = function_keys["default"]
    return keys


def _write_keys_file(path: Path, master_key: str, function_key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"masterKey": master_key, "functionKeys": {"default": function_key}}
    # Create with 0600 from the start: no window in which another user could read it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    os.chmod(path, 0o600)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key a request presents: the ``x-functions-key`` header, else the ``code`` parameter."""
    return headers.get(KEY_HEADER) or query.get(KEY_QUERY_PARAMETER) or None
