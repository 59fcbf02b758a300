"""Timer triggers firing on their schedules inside a running dev host."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devhost.loader import TimerFunction
from devhost.server import DevHost
from devhost.timers import TimerScheduler
from tests.devhost import sample_app
from tests.devhost.conftest import base_env, write_host_json


@pytest.fixture
def timer_host(tmp_path: Path) -> Iterator[DevHost]:
    """Function-scoped: its every-second timers must not outlive the test."""
    root = write_host_json(tmp_path)
    env = base_env(SCHEDULE_SETTING="* * * * * *")
    host = DevHost(sample_app.app, root=root, port=0, enable_queues=False, env=env)
    with host.running_in_thread():
        yield host


def test_timer_fires_every_second_with_a_timer_request(timer_host: DevHost) -> None:
    calls = sample_app.recorder.wait_for("tick", count=2, timeout=5)

    assert [call.details["kind"] for call in calls] == ["TimerRequest", "TimerRequest"]
    assert calls[0].details["past_due"] is False


def test_failing_timer_keeps_its_schedule(timer_host: DevHost) -> None:
    calls = sample_app.recorder.wait_for("failing_tick", count=2, timeout=5)

    assert len(calls) == 2


def test_disabled_timers_do_not_fire_but_admin_runs_them(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = write_host_json(tmp_path_factory.mktemp("devhost-no-timers"))
    env = base_env(SCHEDULE_SETTING="* * * * * *")
    host = DevHost(
        sample_app.app, root=root, port=0, enable_timers=False, enable_queues=False, env=env
    )
    with host.running_in_thread():
        response = httpx.post(f"{host.base_url}/admin/functions/tick", json={"input": ""})
        sample_app.recorder.wait_for("tick", count=1)

        # Absence cannot be awaited: give an every-second schedule 1.5 s to (not) fire.
        with pytest.raises(TimeoutError):
            sample_app.recorder.wait_for("tick", count=2, timeout=1.5)

    assert response.status_code == 202


async def test_run_on_startup_invokes_immediately() -> None:
    invoked = asyncio.Event()
    seen: list[str] = []

    async def on_start(timer: object) -> None:
        seen.append(type(timer).__name__)
        invoked.set()

    function = TimerFunction(
        name="on_start",
        schedule="0 0 0 1 1 *",
        run_on_startup=True,
        use_monitor=False,
        parameter="timer",
        handler=on_start,
        config={},
    )
    with ThreadPoolExecutor(max_workers=1) as executor:
        scheduler = TimerScheduler([function], executor)
        scheduler.start()
        try:
            await asyncio.wait_for(invoked.wait(), timeout=5)
        finally:
            await scheduler.stop()

    assert seen == ["TimerRequest"]
