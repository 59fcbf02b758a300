"""Due times and index buckets: pure planning rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shared.connections.schedule import (
    BACKOFF_MAX,
    DueKind,
    access_token_expiry,
    bucket_of,
    next_due,
    retry_after,
)

NOW = datetime(2026, 11, 24, 12, 7, 31, tzinfo=UTC)
WEEK = timedelta(days=7)


def test_buckets_are_five_minute_floors_in_utc() -> None:
    assert bucket_of(NOW) == "202611241205"
    assert bucket_of(NOW.replace(minute=4, second=59)) == "202611241200"


def test_buckets_sort_like_the_times_they_hold() -> None:
    times = [NOW + timedelta(minutes=m) for m in (-3000, -5, 0, 5, 60, 60 * 24 * 40)]
    assert [bucket_of(t) for t in times] == sorted(bucket_of(t) for t in times)


def test_an_unused_connection_is_due_one_idle_period_after_its_last_redemption() -> None:
    due = next_due(NOW, WEEK, now=NOW)
    assert (due.at, due.kind) == (NOW + WEEK, DueKind.KEEPALIVE)


def test_a_warm_connection_is_due_ten_minutes_before_its_access_token_expires() -> None:
    expires = NOW + timedelta(minutes=60)
    due = next_due(NOW, WEEK, now=NOW, last_used=NOW, access_expires=expires)
    assert (due.at, due.kind) == (expires - timedelta(minutes=10), DueKind.ACCESS)


def test_a_cold_connection_ignores_its_access_token_expiry() -> None:
    due = next_due(
        NOW,
        WEEK,
        now=NOW,
        last_used=NOW - timedelta(days=2),
        access_expires=NOW + timedelta(minutes=60),
    )
    assert due.kind is DueKind.KEEPALIVE


def test_backoff_doubles_and_is_capped() -> None:
    delays = [retry_after(n, NOW).at - NOW for n in (1, 2, 3, 20)]
    assert delays[:3] == [timedelta(minutes=5), timedelta(minutes=10), timedelta(minutes=20)]
    assert delays[3] == BACKOFF_MAX


def test_access_token_expiry_reads_the_earliest_expires_on_of_an_msal_cache() -> None:
    cache = {"AccessToken": {"a": {"expires_on": "2000000000"}, "b": {"expires_on": "1900000000"}}}
    assert access_token_expiry(json.dumps(cache).encode()) == datetime.fromtimestamp(
        1900000000, UTC
    )


def test_an_unreadable_cache_has_no_access_token_expiry() -> None:
    assert access_token_expiry(b"not json") is None
    assert access_token_expiry(b'{"AccessToken": {}}') is None
    assert access_token_expiry(b'{"AccessToken": {"a": {}}}') is None
