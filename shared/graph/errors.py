"""Graph's error answers turned into the API's typed errors (shared.errors).

Only Graph's `error.code` ever reaches a caller (as `graphCode`): Graph's `message` and body
may quote personal data (addresses, subjects) and are never copied into our errors.

| Graph answer                                   | our error                         |
|------------------------------------------------|-----------------------------------|
| 400 with a caller-caused code (CALLER_CAUSED)  | GraphValidationFailed 400         |
| 400 any other code (our request was wrong)     | GraphError 502                    |
| 401                                            | GraphUnauthorized (502 if leaked) |
| 403                                            | GraphForbidden 403                |
| 404                                            | GraphNotFound 404                 |
| 409                                            | GraphConflict 409                 |
| 413                                            | GraphPayloadTooLarge 413          |
| 429                                            | GraphThrottled 429 + Retry-After  |
| 503 / 504 with Retry-After                     | GraphThrottled 503 + Retry-After  |
| 502 / 503 / 504 without Retry-After            | GraphUnavailable 503              |
| any other status (500, 405, 412, 424, ...)     | GraphError 502                    |
| network error / timeout after retries          | GraphUnavailable 503              |

Every error built here is a `GraphFailure` (shared.errors) and carries `graphCode` (Graph's
code, or `HTTP<status>` when the body had none). The 4xx ones are also the public error they
answer as (`GraphNotFound` is a `NotFound`): code and status are the caller's, the type says
that Graph gave it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping

from shared.errors import (
    Conflict,
    Forbidden,
    GraphError,
    GraphFailure,
    GraphThrottled,
    GraphUnavailable,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.graph.challenge import claims_from_challenge

logger = logging.getLogger(__name__)

# 400 codes that a caller's input causes (an id of the right shape that Graph still cannot
# parse, a recipient Graph refuses, a property that cannot change on a sent message, a
# well-known folder that cannot be renamed/deleted). Any other 400 means our request building
# is wrong: that is our bug, reported as 502 graph_error rather than blamed on the caller.
CALLER_CAUSED_400 = frozenset(
    {
        "ErrorInvalidIdMalformed",
        "ErrorInvalidRecipients",
        "ErrorInvalidPropertyUpdateSentMessage",
        "ErrorInvalidPropertySet",
        "ErrorDeleteDistinguishedFolder",
        "ErrorCannotRenameDistinguishedFolder",
        "ErrorAttachmentSizeLimitExceeded",
        "ErrorMessageSizeExceeded",
    }
)


class GraphValidationFailed(GraphFailure, ValidationFailed):
    """Graph refused a value the caller gave (400 with a CALLER_CAUSED_400 code)."""


class GraphForbidden(GraphFailure, Forbidden):
    """Graph denied access to the mailbox or item (403)."""


class GraphNotFound(GraphFailure, NotFound):
    """Graph has no such mailbox, folder or item (404)."""


class GraphConflict(GraphFailure, Conflict):
    """Graph reported a conflict (409)."""


class GraphPayloadTooLarge(GraphFailure, PayloadTooLarge):
    """Graph refused the request's size (413)."""


class GraphUnauthorized(GraphError):
    """Graph answered 401: the access token was refused (expired, revoked, wrong audience).

    A signal for the token service, which refreshes once and retries. Should it ever reach
    the renderer it is an ordinary 502 graph_error: the *caller's* credentials were fine.
    `claims` holds the claims JSON of a CAE claims challenge (shared.graph.challenge), which
    the one refresh must carry; None for an ordinary 401.
    """

    def __init__(self, graph_code: str, claims: str | None = None) -> None:
        super().__init__(graph_code)
        self.claims = claims


def graph_code_of(body: bytes) -> str | None:
    """Graph's `error.code`, or None when the body is not Graph's error JSON."""
    if not body or len(body) > 64 * 1024:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    # Graph codes are short identifiers; anything else is not echoed to a caller.
    if isinstance(code, str) and 0 < len(code) <= 100 and code.isprintable():
        return code
    return None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (Graph sends delta-seconds), or None when absent or unusable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def error_for(status: int, headers: Mapping[str, str], body: bytes) -> GraphFailure:
    """The typed error for a final (not retried) Graph error answer."""
    code = graph_code_of(body) or f"HTTP{status}"
    extensions = {"graphCode": code}
    retry_after = parse_retry_after(headers)
    error: GraphFailure
    if status == 400:
        if code in CALLER_CAUSED_400:
            error = GraphValidationFailed(
                "Microsoft Graph refused a value in the request", extensions=extensions
            )
        else:
            logger.warning("graph refused a request we built: status=400 graphCode=%s", code)
            error = GraphError(code)
    elif status == 401:
        error = GraphUnauthorized(code, claims_from_challenge(headers.get("www-authenticate")))
    elif status == 403:
        error = GraphForbidden(
            "Microsoft Graph denied access to this mailbox or item", extensions=extensions
        )
    elif status == 404:
        error = GraphNotFound("The mailbox, folder or item does not exist", extensions=extensions)
    elif status == 409:
        error = GraphConflict(extensions=extensions)
    elif status == 413:
        error = GraphPayloadTooLarge(extensions=extensions)
    elif status == 429:
        error = GraphThrottled(_whole_seconds(retry_after, default=1), status=429)
    elif status in (503, 504) and retry_after is not None:
        error = GraphThrottled(_whole_seconds(retry_after, default=1), status=503)
    elif status in (502, 503, 504):
        error = GraphUnavailable(extensions=extensions)
    else:
        error = GraphError(code)
    error.extensions.setdefault("graphCode", code)
    return error


def _whole_seconds(value: float | None, *, default: int) -> int:
    return default if value is None else max(1, math.ceil(value))
