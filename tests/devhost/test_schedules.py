"""NCRONTAB and TimeSpan schedules, and %SETTING% expressions in trigger metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devhost.loader import MissingSettingError, resolve_setting_expressions
from devhost.timers import parse_schedule

START = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)  # a Thursday


def occurrences(schedule: str, count: int = 3) -> list[datetime]:
    parsed = parse_schedule(schedule)
    found: list[datetime] = []
    moment = START
    for _ in range(count):
        moment = parsed.next_after(moment)
        found.append(moment)
    return found


def test_six_field_expression_reads_seconds_first() -> None:
    assert occurrences("*/15 * * * * *") == [
        START + timedelta(seconds=15),
        START + timedelta(seconds=30),
        START + timedelta(seconds=45),
    ]


def test_every_five_minutes_fires_on_the_minute() -> None:
    assert occurrences("0 */5 * * * *", 2) == [
        START + timedelta(minutes=5),
        START + timedelta(minutes=10),
    ]


def test_lists_and_ranges_are_supported() -> None:
    assert occurrences("0 30 9,17 * * 1-5", 3) == [
        datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
        datetime(2026, 1, 1, 17, 30, tzinfo=UTC),
        datetime(2026, 1, 2, 9, 30, tzinfo=UTC),
    ]


def test_weekday_names_are_supported() -> None:
    assert occurrences("0 0 0 * * Mon", 1) == [datetime(2026, 1, 5, tzinfo=UTC)]


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # NCrontab semantics: Friday the 13th only, not every Friday and every 13th.
    assert occurrences("0 0 0 13 * 5", 1) == [datetime(2026, 2, 13, tzinfo=UTC)]


def test_five_field_expression_is_accepted_without_seconds() -> None:
    assert occurrences("*/10 * * * *", 1) == [START + timedelta(minutes=10)]


def test_timespan_schedule_fires_at_that_interval() -> None:
    assert occurrences("00:00:30", 2) == [
        START + timedelta(seconds=30),
        START + timedelta(seconds=60),
    ]


@pytest.mark.parametrize("schedule", ["* * *", "99 * * * * *", "nonsense", "00:00:00"])
def test_invalid_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(schedule)


def test_setting_expression_is_replaced_by_the_setting() -> None:
    env = {"SCHEDULE": "0 */5 * * * *"}

    assert resolve_setting_expressions("%SCHEDULE%", env, "f") == "0 */5 * * * *"


def test_setting_expressions_may_be_embedded() -> None:
    env = {"ENV": "dev"}

    assert resolve_setting_expressions("refresh-%ENV%-jobs", env, "f") == "refresh-dev-jobs"


def test_missing_setting_is_reported_by_name() -> None:
    with pytest.raises(MissingSettingError, match="NOT_SET"):
        resolve_setting_expressions("%NOT_SET%", {}, "my_function")
