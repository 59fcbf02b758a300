"""Claims challenges (Continuous Access Evaluation), as Entra and Graph play them.

A test demands claims for a user (`POST /_sandbox/claims-challenge`). Graph then answers that
user's next request, if its token is CAE-capable (`xms_cc` holds `CP1`: the client declared
the capability), with 401 and `WWW-Authenticate: Bearer realm="", authorization_uri="…",
error="insufficient_claims", claims="<base64 JSON>"`. Graph sends no challenge to clients
that did not declare CP1, so neither does the sandbox.

The demanded claims are what Entra would put in a real challenge:
- `refresh`: a revocation event (`{"access_token":{"nbf":{"essential":true,"value":"<t>"}}}`);
  a refresh token request carrying these claims gets a fresh token, which satisfies them;
- `interaction`: a Conditional Access authentication context step-up
  (`{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`); a refresh carrying them
  fails with `interaction_required` (AADSTS50076, MFA), and only a sign-in (`authorize`)
  carrying them satisfies them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["refresh", "interaction"]
CAE_CAPABILITY = "CP1"


@dataclass
class ClaimsDemand:
    upn: str
    mode: Mode
    claims: dict[str, Any]
    challenged: int = 0  # Graph requests answered with the challenge
    claims_refreshes: int = 0  # refresh-token requests that carried the claims
    satisfied: bool = False

    @classmethod
    def create(cls, upn: str, mode: Mode, now: int) -> ClaimsDemand:
        demanded = (
            {"nbf": {"essential": True, "value": str(now)}}
            if mode == "refresh"
            else {"acrs": {"essential": True, "value": "c1"}}
        )
        return cls(upn=upn.lower(), mode=mode, claims={"access_token": demanded})

    @property
    def encoded(self) -> str:
        compact = json.dumps(self.claims, separators=(",", ":"))
        return base64.b64encode(compact.encode()).decode()

    def www_authenticate(self, base_url: str) -> str:
        return (
            f'Bearer realm="", authorization_uri="{base_url}/common/oauth2/authorize", '
            f'client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", '
            f'claims="{self.encoded}"'
        )

    def carried_by(self, claims_param: str | None) -> bool:
        """True when a request's `claims` parameter asks for every demanded claim."""
        requested = parse_claims(claims_param).get("access_token")
        if not isinstance(requested, dict):
            return False
        wanted: dict[str, Any] = self.claims["access_token"]
        return all(
            isinstance(requested.get(name), dict)
            and requested[name].get("value") == spec.get("value")
            for name, spec in wanted.items()
        )

    def describe(self) -> dict[str, Any]:
        return {
            "user": self.upn,
            "mode": self.mode,
            "claims": self.claims,
            "challenged": self.challenged,
            "claimsRefreshes": self.claims_refreshes,
            "satisfied": self.satisfied,
        }


def parse_claims(claims_param: str | None) -> dict[str, Any]:
    """A request's `claims` JSON, or {} when absent or not a JSON object."""
    if not claims_param:
        return {}
    try:
        parsed = json.loads(claims_param)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def capabilities(claims_param: str | None) -> list[str]:
    """Client capabilities a token request declared (`access_token.xms_cc.values`)."""
    access = parse_claims(claims_param).get("access_token")
    xms_cc = access.get("xms_cc") if isinstance(access, dict) else None
    values = xms_cc.get("values") if isinstance(xms_cc, dict) else None
    return [str(v) for v in values] if isinstance(values, list) else []


def pending_demand(demands: list[ClaimsDemand], upn: str | None) -> ClaimsDemand | None:
    if upn is None:
        return None
    return next((d for d in demands if d.upn == upn.lower() and not d.satisfied), None)
