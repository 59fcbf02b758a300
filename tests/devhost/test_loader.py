"""Indexing the app's functions and reading host.json."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from devhost.loader import (
    DevHostConfigError,
    FunctionDescriptor,
    HttpFunction,
    MissingSettingError,
    QueueFunction,
    TimerFunction,
    describe_functions,
    load_host_config,
)
from devhost.server import DevHost
from tests.devhost import sample_app
from tests.devhost.conftest import base_env, write_host_json


def by_name(env: dict[str, str] | None = None) -> dict[str, FunctionDescriptor]:
    return {f.name: f for f in describe_functions(sample_app.app, env or base_env())}


def http_function(name: str) -> HttpFunction:
    function = by_name()[name]
    assert isinstance(function, HttpFunction)
    return function


def test_blueprint_functions_are_indexed_with_the_app_functions() -> None:
    functions = by_name()

    assert {"echo", "blueprint_default_route", "renamed", "work_item"} <= functions.keys()


def test_http_function_without_route_answers_at_its_function_name() -> None:
    function = by_name()["blueprint_default_route"]

    assert isinstance(function, HttpFunction)
    assert function.route == "blueprint_default_route"


def test_function_name_decorator_names_the_function() -> None:
    function = by_name()["renamed"]

    assert isinstance(function, HttpFunction)
    assert function.handler.__name__ == "renamed_handler"
    assert function.route == "renamed/{id:guid}"


def test_app_default_auth_level_applies_when_a_function_sets_none() -> None:
    levels = [http_function(name).auth_level for name in ("secure", "admin_only", "echo")]

    assert levels == ["function", "admin", "anonymous"]


def test_trigger_parameter_name_and_methods_come_from_the_decorator() -> None:
    function = by_name()["echo"]
    submit = by_name()["submit"]

    assert isinstance(function, HttpFunction) and isinstance(submit, HttpFunction)
    assert (function.parameter, function.methods) == ("request", None)
    assert submit.methods == frozenset({"POST"})


def test_timer_schedule_setting_is_resolved() -> None:
    function = by_name(base_env(SCHEDULE_SETTING="*/5 * * * * *"))["tick"]

    assert isinstance(function, TimerFunction)
    assert (function.schedule, function.parameter) == ("*/5 * * * * *", "timer")


def test_queue_name_setting_is_resolved() -> None:
    function = by_name(base_env(WORK_QUEUE="jobs"))["work_item"]

    assert isinstance(function, QueueFunction)
    assert (function.queue_name, function.connection, function.parameter) == (
        "jobs",
        "DevhostStorage",
        "msg",
    )


def test_missing_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    env = {k: v for k, v in base_env().items() if k != "SCHEDULE_SETTING"}

    with pytest.raises(MissingSettingError, match="SCHEDULE_SETTING"):
        DevHost(sample_app.app, root=write_host_json(tmp_path), port=0, env=env)


def test_invalid_schedule_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(DevHostConfigError, match="schedule"):
        DevHost(
            sample_app.app,
            root=write_host_json(tmp_path),
            port=0,
            env=base_env(SCHEDULE_SETTING="every minute"),
        )


def test_host_json_missing_gives_host_defaults(tmp_path: Path) -> None:
    config = load_host_config(tmp_path)

    assert config.route_prefix == "api"
    assert (config.queues.message_encoding, config.queues.batch_size) == ("base64", 16)
    assert config.queues.max_dequeue_count == 5
    assert config.queues.visibility_timeout == timedelta(0)


def test_host_json_route_prefix_may_be_empty(tmp_path: Path) -> None:
    assert load_host_config(write_host_json(tmp_path, route_prefix="")).route_prefix == ""


def test_host_json_queue_settings_are_read(tmp_path: Path) -> None:
    queues = (
        '"queues": {"messageEncoding": "none", "batchSize": 4, "maxDequeueCount": 2, '
        '"visibilityTimeout": "00:00:03", "maxPollingInterval": "00:00:00.500"}'
    )

    settings = load_host_config(write_host_json(tmp_path, queues=queues)).queues

    assert settings.message_encoding == "none"
    assert (settings.batch_size, settings.max_dequeue_count) == (4, 2)
    assert settings.visibility_timeout == timedelta(seconds=3)
    assert settings.max_polling_interval == timedelta(milliseconds=500)
    assert settings.new_batch_threshold == 2  # the host's default, batchSize / 2


def test_host_json_new_batch_threshold_is_read_and_batch_size_bounded(tmp_path: Path) -> None:
    queues = '"queues": {"batchSize": 8, "newBatchThreshold": 1}'
    settings = load_host_config(write_host_json(tmp_path / "a", queues=queues)).queues
    assert (settings.batch_size, settings.new_batch_threshold) == (8, 1)

    too_big = write_host_json(tmp_path / "b", queues='"queues": {"batchSize": 33}')
    with pytest.raises(DevHostConfigError, match="batchSize"):
        load_host_config(too_big)


def test_unknown_message_encoding_is_refused(tmp_path: Path) -> None:
    root = write_host_json(tmp_path, queues='"queues": {"messageEncoding": "xml"}')

    with pytest.raises(DevHostConfigError, match="messageEncoding"):
        load_host_config(root)
