"""A sign-in in progress, kept in the browser: MSAL's flow dict (state, nonce, PKCE verifier)
sealed into the HttpOnly binding cookie, not stored in a table.

Why the cookie: `/api/auth/login` is anonymous, so anything it stored would let anyone grow
our storage without bound. Nothing is stored until the identity provider has answered; what
the cookie holds, only this service can open (the two-layer envelope, bound to the flow's
`state`), and it opens only for the browser that carries it, only with its own `state`, and
only within 10 minutes. Single use: the code inside is redeemed once (the identity provider
refuses a second redemption), and a finished sign-in's cookie is replaced by a marker that
says so, so a reload of the callback page is told "already used" rather than "another
browser". docs/security.md ("Abuse limits") states the limits of this.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The HTTP adapter imports `finished_marker` at start-up, which must not load
    # `cryptography` (cold start): the envelope is imported where a sign-in is sealed.
    from shared.crypto.envelope import RowAddress
    from shared.crypto.keyring import KeyRingCache

FLOW_TTL = timedelta(minutes=10)
# Browsers keep cookies of up to 4096 bytes (name, value and attributes together).
MAX_COOKIE_VALUE = 3800
_STATE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_FINISHED = "done."
# Left out of the cookie: the authorization URL is large and has served its purpose.
_SPENT_FLOW_KEYS = frozenset({"auth_uri"})


class FlowRejected(Exception):
    """Missing, replayed, expired or foreign `state` (`reason` is a stable code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignInTooLarge(ValueError):
    """The sealed sign-in would not fit in a cookie (a very long `returnTo`)."""


@dataclass(frozen=True)
class PendingFlow:
    flow: dict[str, Any]
    return_to: str | None


def finished_marker(state: str) -> str:
    """The cookie value after a successful sign-in: names it (by a hash), holds nothing."""
    return _FINISHED + _state_hash(state)


class SignInSealer:
    """Seals a sign-in into a cookie value (`cookie_for`) and opens it at the callback
    (`flow_from`)."""

    def __init__(self, keys: KeyRingCache, label: str) -> None:
        # `label` names the cookie in the associated data, so that no other sealed value of
        # this deployment (a table row's) can be passed off as a sign-in.
        self._keys = keys
        self._label = label

    async def cookie_for(self, flow: dict[str, Any], return_to: str | None, now: datetime) -> str:
        from shared.crypto.sealed_text import seal_text

        state = str(flow["state"])
        record = {
            "flow": {k: v for k, v in flow.items() if k not in _SPENT_FLOW_KEYS},
            "returnTo": return_to,
            "expiresAt": (now + FLOW_TTL).isoformat(),
        }
        plaintext = zlib.compress(json.dumps(record, separators=(",", ":")).encode())
        sealed = seal_text(await self._keys.envelope(), plaintext, self._address(state))
        if len(sealed) > MAX_COOKIE_VALUE:
            raise SignInTooLarge("the sign-in does not fit in a cookie")
        return sealed

    async def flow_from(self, cookie: str | None, state: str, now: datetime) -> PendingFlow:
        """The sign-in sealed in `cookie` for `state`; `FlowRejected` with a stable reason."""
        from shared.crypto.envelope import CiphertextRejected
        from shared.crypto.sealed_text import open_text

        if not _STATE.match(state):
            raise FlowRejected("state_invalid")
        if not cookie:
            raise FlowRejected("state_foreign")
        if cookie.startswith(_FINISHED):
            # As bytes: compare_digest refuses str with non-ASCII characters, and a cookie
            # holds whatever the browser (or a script) sent.
            if hmac.compare_digest(cookie.encode(), finished_marker(state).encode()):
                raise FlowRejected("state_replayed")
            raise FlowRejected("state_foreign")
        try:
            plaintext = await open_text(self._keys, cookie, self._address(state))
            record = json.loads(zlib.decompress(plaintext))
            expires = datetime.fromisoformat(record["expiresAt"])
            flow = dict(record["flow"])
        except CiphertextRejected:
            # Sealed for another state (another sign-in of this browser, or another browser's
            # cookie), tampered, or under retired keys: in every case not this sign-in's.
            raise FlowRejected("state_foreign") from None
        except (ValueError, KeyError, TypeError, zlib.error):
            raise FlowRejected("state_unreadable") from None
        if expires <= now:
            raise FlowRejected("state_expired")
        return_to = record.get("returnTo")
        return PendingFlow(flow, return_to if isinstance(return_to, str) else None)

    def _address(self, state: str) -> RowAddress:
        from shared.crypto.envelope import RowAddress

        return RowAddress(self._label, "signin", state)


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()[:32]
