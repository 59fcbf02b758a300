"""Claims challenges (Continuous Access Evaluation): the claims a resource demands in a 401.

Microsoft Graph sends one only to clients that declared the `CP1` capability, as
`WWW-Authenticate: Bearer realm="", authorization_uri="…", error="insufficient_claims",
claims="<base64 of a JSON object>"` (Entra's "Claims challenges, claims requests and client
capabilities"). The decoded JSON goes unchanged into the token request (`claims_challenge`),
so this module only decodes and checks its shape; it never interprets the claims.

Pure functions: no I/O, nothing imported that costs cold start.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

# Entra's challenges are a few hundred bytes; anything far larger is not one.
MAX_CLAIMS_BYTES = 4096
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def challenge_params(www_authenticate: str) -> dict[str, str]:
    """The auth-params of a `Bearer` challenge (names lower-cased), or {} for another scheme."""
    scheme, _, rest = www_authenticate.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params.setdefault(match.group(1).lower(), value)
    return params


def claims_from_challenge(www_authenticate: str | None) -> str | None:
    """The demanded claims as compact JSON, when the header is an `insufficient_claims`
    challenge whose `claims` decode to a JSON object; otherwise None (an ordinary 401)."""
    if not www_authenticate or len(www_authenticate) > 2 * MAX_CLAIMS_BYTES:
        return None
    params = challenge_params(www_authenticate)
    if params.get("error") != "insufficient_claims" or not params.get("claims"):
        return None
    return decode_claims(params["claims"])


def decode_claims(encoded: str) -> str | None:
    """base64 (standard or URL-safe, padded or not) of a JSON object → compact JSON."""
    text = encoded.strip()
    if len(text) > MAX_CLAIMS_BYTES * 2:
        return None
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        parsed = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(parsed, dict) or not parsed:
        return None
    return json.dumps(parsed, separators=(",", ":"))


def encode_claims(claims_json: str) -> str:
    """URL-safe base64 without padding: how the claims travel in a loginUrl."""
    return base64.urlsafe_b64encode(claims_json.encode()).decode().rstrip("=")
