"""When a connection is next due for work, and where that puts it in the due index.

Pure functions only (no I/O), so the scheduler (shared/connections/scheduler.py), the due
index (shared/store/due.py), the timer and the tests share one definition.

Why buckets: Table Storage has no secondary indexes. The due index keys every entry by a
time bucket (PartitionKey, `yyyyMMddHHmm` floored to `BUCKET_MINUTES`), so "what is due now"
is a range over the PartitionKeys of past buckets: the timer never reads connection rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.connections.models import Connection

BUCKET_MINUTES = 5
_BUCKET_FORMAT = "%Y%m%d%H%M"
# Refresh an access token this long before it expires ("expires within 10 minutes").
ACCESS_EARLY = timedelta(minutes=10)
# A connection used within this window is "warm": its access token is kept fresh too.
WARM_WINDOW = timedelta(hours=1)
# Work that comes due before the next timer run (every 5 minutes by default) is done now
# rather than one run late; refreshing a grant minutes early is harmless.
EARLY = timedelta(minutes=5)
# Transient failures: retry after BACKOFF_BASE * 2**(attempts-1), at most BACKOFF_MAX.
BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=6)


class DueKind(StrEnum):
    KEEPALIVE = "keepalive"  # the grant has been idle long enough: redeem the refresh token
    ACCESS = "access"  # a warm connection's access token expires soon
    RETRY = "retry"  # an earlier attempt failed transiently


@dataclass(frozen=True)
class Due:
    at: datetime
    kind: DueKind

    @property
    def bucket(self) -> str:
        return bucket_of(self.at)


def bucket_of(moment: datetime) -> str:
    """The due index partition holding `moment` (UTC, floored to BUCKET_MINUTES)."""
    moment = moment.astimezone(UTC)
    floored = moment.replace(
        minute=moment.minute - moment.minute % BUCKET_MINUTES, second=0, microsecond=0
    )
    return floored.strftime(_BUCKET_FORMAT)


def grant_basis(connection: Connection) -> datetime:
    """When the connection's grant was last redeemed (or, never refreshed, created)."""
    return connection.last_refreshed_at or connection.created_at


def access_token_expiry(cache: bytes) -> datetime | None:
    """The earliest access-token expiry in a serialized MSAL cache (None if it holds none).

    Reads only the `expires_on` numbers of MSAL's documented cache format; a cache that does
    not parse gives None (the keep-alive deadline still applies)."""
    try:
        document = json.loads(cache)
        expiries = [int(entry["expires_on"]) for entry in document.get("AccessToken", {}).values()]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return datetime.fromtimestamp(min(expiries), UTC) if expiries else None


def next_due(
    basis: datetime,
    idle: timedelta,
    *,
    now: datetime,
    last_used: datetime | None = None,
    access_expires: datetime | Callable[[], datetime | None] | None = None,
) -> Due:
    """The next time the timer should touch a connection whose grant was last redeemed at
    `basis`: the keep-alive deadline, or sooner when the connection is warm and its access
    token runs out first. `access_expires` may be a function: called only for a warm
    connection (reading it from a cache means parsing the whole cache)."""
    due = Due(basis + idle, DueKind.KEEPALIVE)
    if last_used is None or now - last_used >= WARM_WINDOW:
        return due
    expires = access_expires() if callable(access_expires) else access_expires
    if expires is not None and expires - ACCESS_EARLY < due.at:
        due = Due(expires - ACCESS_EARLY, DueKind.ACCESS)
    return due


def is_due(due: Due, now: datetime) -> bool:
    """Whether a run at `now` should do the work planned for `due`."""
    return due.at <= now + EARLY


def retry_after(attempts: int, now: datetime) -> Due:
    """When to try again after `attempts` consecutive transient failures (≥ 1)."""
    delay = BACKOFF_BASE * (2 ** max(0, min(attempts - 1, 16)))
    return Due(now + min(delay, BACKOFF_MAX), DueKind.RETRY)
