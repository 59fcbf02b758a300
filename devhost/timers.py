"""Timer triggers: NCRONTAB and TimeSpan schedules, and the loop that fires them.

NCRONTAB expressions have six fields, seconds first (``{second} {minute} {hour} {day}
{month} {day-of-week}``), evaluated in UTC; five-field expressions (no seconds) are also
accepted, as the host does. As in NCrontab, a date must match both the day-of-month and the
day-of-week fields. A TimeSpan schedule (``hh:mm:ss``) fires at that interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from azure.functions.timer import TimerRequest
from croniter import CroniterError, croniter

from devhost.invoke import call_function
from devhost.loader import TimerFunction, parse_timespan

logger = logging.getLogger(__name__)

# A timer that wakes up later than this after its due time is reported as past due.
PAST_DUE_TOLERANCE = timedelta(seconds=1)


class Schedule(Protocol):
    """When a timer fires next."""

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (UTC)."""
        ...


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB schedule evaluated in UTC."""

    expression: str

    def next_after(self, moment: datetime) -> datetime:
        fields = self.expression.split()
        # day_or=False: NCrontab requires day-of-month AND day-of-week to match, unlike
        # Vixie cron's OR.
        iterator = croniter(
            self.expression,
            moment.astimezone(UTC),
            day_or=False,
            second_at_beginning=len(fields) == 6,
        )
        next_moment: datetime = iterator.get_next(datetime)
        return next_moment.astimezone(UTC)


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: every ``interval``."""

    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_schedule(text: str) -> Schedule:
    """Parse an NCRONTAB or TimeSpan schedule; raise ValueError if it is neither."""
    stripped = text.strip()
    fields = stripped.split()
    if len(fields) == 1 and ":" in stripped:
        interval = parse_timespan(stripped)
        if interval <= timedelta(0):
            raise ValueError(f"a TimeSpan schedule must be positive: {text!r}")
        return IntervalSchedule(interval)
    if len(fields) not in (5, 6):
        raise ValueError(
            f"NCRONTAB schedule needs 6 fields (second minute hour day month day-of-week): {text!r}"
        )
    schedule = CronSchedule(" ".join(fields))
    try:
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError) as error:
        raise ValueError(f"invalid NCRONTAB schedule {text!r}: {error}") from error
    return schedule


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def timer_request(past_due: bool, last: datetime | None, next_due: datetime | None) -> TimerRequest:
    """The ``azure.functions.TimerRequest`` the handler receives."""
    now = datetime.now(UTC)
    return TimerRequest(
        past_due=past_due,
        schedule_status={"Last": _iso(last), "Next": _iso(next_due), "LastUpdated": _iso(now)},
        schedule={"AdjustForDST": True},
    )


class TimerScheduler:
    """Runs each timer function on its schedule until stopped."""

    def __init__(
        self,
        functions: list[TimerFunction],
        executor: Executor,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._functions = functions
        self._executor = executor
        self._clock = clock
        self._schedules = {
            function.name: parse_schedule(function.schedule) for function in functions
        }
        self._tasks: list[asyncio.Task[None]] = []

    def schedule_of(self, function: TimerFunction) -> Schedule:
        """The parsed schedule of ``function``."""
        return self._schedules[function.name]

    def start(self) -> None:
        """Start one loop per timer function (and run ``run_on_startup`` ones now)."""
        for function in self._functions:
            self._tasks.append(
                asyncio.create_task(self._run(function), name=f"devhost-timer-{function.name}")
            )

    async def stop(self) -> None:
        """Stop every loop; an invocation in progress in a thread is left to finish."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def invoke(
        self,
        function: TimerFunction,
        past_due: bool = False,
        last: datetime | None = None,
        next_due: datetime | None = None,
    ) -> None:
        """Invoke ``function`` once; a failure is logged, never raised."""
        request = timer_request(past_due, last, next_due)
        started = self._clock()
        try:
            await call_function(
                function.handler, function.name, function.parameter, request, self._executor
            )
        except Exception:
            # The host logs a failed timer invocation and keeps the schedule going.
            logger.exception("Timer function %s failed", function.name)
            return
        elapsed_ms = (self._clock() - started).total_seconds() * 1000
        logger.info("Timer function %s succeeded in %.0f ms", function.name, elapsed_ms)

    async def _run(self, function: TimerFunction) -> None:
        schedule = self._schedules[function.name]
        last: datetime | None = None
        if function.run_on_startup:
            await self.invoke(function, next_due=schedule.next_after(self._clock()))
            last = self._clock()
        due = schedule.next_after(self._clock())
        while True:
            # Loop: the event loop's monotonic clock may wake us a little early.
            while (delay := (due - self._clock()).total_seconds()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(delay)
            now = self._clock()
            # The host schedules the next occurrence from the time the invocation ends,
            # skipping occurrences missed while it ran.
            await self.invoke(
                function,
                past_due=now - due > PAST_DUE_TOLERANCE,
                last=last,
                next_due=schedule.next_after(now),
            )
            last = due
            due = schedule.next_after(max(self._clock(), due))
