"""The lifecycle triggers: bound to the settings, and thin (each hands over to the service)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from shared.functions.lifecycle import blueprint
from shared.lifecycle.service import RunStarted
from tests.support.functions import app_functions


def binding(name: str) -> dict[str, Any]:
    return dict(app_functions()[name].get_bindings()[0].get_dict_repr())


def test_the_timer_runs_on_the_schedule_setting_with_the_monitor_on() -> None:
    timer = binding("lifecycle_timer")
    assert (timer["type"], timer["schedule"], timer["useMonitor"]) == (
        "timerTrigger",
        "%LIFECYCLE_SCHEDULE%",
        True,
    )


def test_the_workers_listen_on_the_queue_and_its_poison_queue() -> None:
    work, poison = binding("lifecycle_batch"), binding("lifecycle_poison")
    assert (work["queueName"], poison["queueName"]) == (
        "%LIFECYCLE_QUEUE%",
        "%LIFECYCLE_QUEUE%-poison",
    )
    assert work["connection"] == poison["connection"] == "AzureWebJobsStorage"


class RecordingLifecycle:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def run(self) -> RunStarted:
        self.calls.append(("run", None))
        return RunStarted("r" * 32, 0, 0)

    async def work(self, body: bytes) -> None:
        self.calls.append(("work", body))

    async def poisoned(self, body: bytes) -> None:
        self.calls.append(("poisoned", body))


@pytest.fixture
def lifecycle() -> RecordingLifecycle:
    return RecordingLifecycle()


async def test_each_handler_hands_its_trigger_to_the_service(
    lifecycle: RecordingLifecycle,
) -> None:
    services = SimpleNamespace(lifecycle=lifecycle)
    app = func.FunctionApp()
    app.register_functions(blueprint(lambda: services))  # type: ignore[arg-type,return-value]
    functions = {f.get_function_name(): f for f in app.get_functions()}
    message = func.QueueMessage(body=b"batch")

    await functions["lifecycle_timer"].get_user_function()(TimerRequest(past_due=True))
    await functions["lifecycle_batch"].get_user_function()(message)
    await functions["lifecycle_poison"].get_user_function()(message)

    assert lifecycle.calls == [("run", None), ("work", b"batch"), ("poisoned", b"batch")]
