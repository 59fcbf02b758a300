"""The headers every Graph request carries: the token, the Prefer set, the correlation id."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

IMMUTABLE_ID_PREFERENCE = 'IdType="ImmutableId"'

# Set only by this module: a caller-supplied header must never replace them.
_RESERVED = frozenset({"authorization", "prefer", "client-request-id", "host"})
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# One regex pass instead of a Python-level scan of every character: a token is ~1.5 KB and
# this runs on every Graph request (\s is exactly str.isspace for str patterns).
_NO_WHITESPACE = re.compile(r"\S+")
_PREFERENCE = re.compile(r"[A-Za-z0-9.\-_]+(=\"?[A-Za-z0-9.\-_/ ]*\"?)?")


def prefer_header(extra: Sequence[str] = ()) -> str:
    """`IdType="ImmutableId"` (ids handed to callers must survive moves) plus `extra`
    (e.g. `outlook.body-content-type="text"`), comma-separated as RFC 7240 allows."""
    values = [IMMUTABLE_ID_PREFERENCE]
    for value in extra:
        if not _PREFERENCE.fullmatch(value):
            raise ValueError("malformed Prefer value")  # built by our code, never a caller's
        if value not in values:
            values.append(value)
    return ", ".join(values)


def graph_headers(
    *,
    token: str,
    correlation_id: str,
    prefer: Sequence[str] = (),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers for one Graph request. The token goes only into requests the client has
    already confined to GRAPH_BASE_URL (GraphClient.url_for)."""
    if not _NO_WHITESPACE.fullmatch(token):
        raise ValueError("the access token is empty or malformed")
    if not _CORRELATION_ID.fullmatch(correlation_id):
        raise ValueError("the correlation id is not a safe header value")
    headers = dict(extra or {})
    if any(name.lower() in _RESERVED for name in headers):
        raise ValueError("Authorization, Prefer and client-request-id are set by the client")
    headers["Authorization"] = f"Bearer {token}"
    headers["Prefer"] = prefer_header(prefer)
    headers["client-request-id"] = correlation_id
    return headers
