"""Load the FunctionApp and host.json and describe each function the way the host indexes it.

Function metadata comes from the app itself (``app.get_functions()``), never from a copy:
route, methods and auth level of HTTP triggers, schedules of timers, queue names and
connections of queue triggers. ``%SETTING%`` binding expressions are resolved from the
environment, as the host resolves them from app settings.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.queue import QueueTrigger
from azure.functions.decorators.timer import TimerTrigger

logger = logging.getLogger(__name__)

DEFAULT_APP_SPEC = "function_app:app"
DEFAULT_CONNECTION = "AzureWebJobsStorage"
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(
    r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$"
)


class DevHostConfigError(Exception):
    """The app, host.json or a setting it needs is unusable; start-up stops."""


class MissingSettingError(DevHostConfigError):
    """A ``%SETTING%`` binding expression names an app setting that is not set."""

    def __init__(self, setting: str, function_name: str) -> None:
        super().__init__(
            f"function {function_name!r}: app setting {setting!r} (used as %{setting}%) "
            "is not set; set it as an environment variable"
        )
        self.setting = setting


def resolve_setting_expressions(value: str, env: Mapping[str, str], function_name: str) -> str:
    """Replace every ``%NAME%`` in ``value`` with the setting ``NAME``; raise if one is missing."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise MissingSettingError(name, function_name)
        return env[name]

    return _SETTING_EXPRESSION.sub(substitute, value)


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET TimeSpan string such as ``00:00:02`` or ``1.02:00:00``."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"not a TimeSpan (expected hh:mm:ss): {text!r}")
    return timedelta(
        days=int(match.group("days") or 0),
        hours=int(match.group("h")),
        minutes=int(match.group("m")),
        seconds=float(match.group("s")),
    )


@dataclass(frozen=True)
class QueueSettings:
    """host.json ``extensions.queues``, with the host's defaults except the polling interval."""

    message_encoding: str = "base64"
    batch_size: int = 16
    # The host's default is batchSize / 2 (per instance core; the dev host counts one).
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: timedelta = timedelta(0)
    # The host's default is one minute; locally a short ceiling keeps the loop responsive.
    max_polling_interval: timedelta = timedelta(seconds=2)
    min_polling_interval: timedelta = timedelta(milliseconds=100)


@dataclass(frozen=True)
class HostConfig:
    """What the dev host reads from host.json."""

    route_prefix: str = "api"
    queues: QueueSettings = field(default_factory=QueueSettings)


def _case_insensitive_get(mapping: Mapping[str, Any], key: str) -> Any:
    for name, value in mapping.items():
        if name.lower() == key.lower():
            return value
    return None


def load_host_config(root: Path) -> HostConfig:
    """Read ``root/host.json`` (missing file = host defaults)."""
    path = root / "host.json"
    if not path.is_file():
        return HostConfig()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DevHostConfigError(f"cannot read {path}: {error}") from error
    extensions = _case_insensitive_get(document, "extensions") or {}
    http = _case_insensitive_get(extensions, "http") or {}
    prefix = _case_insensitive_get(http, "routePrefix")
    queues = _case_insensitive_get(extensions, "queues") or {}
    try:
        return HostConfig(
            route_prefix="api" if prefix is None else str(prefix).strip("/"),
            queues=_queue_settings(queues),
        )
    except (TypeError, ValueError) as error:
        raise DevHostConfigError(f"invalid extensions.queues in {path}: {error}") from error


def _queue_settings(section: Mapping[str, Any]) -> QueueSettings:
    defaults = QueueSettings()
    encoding = _case_insensitive_get(section, "messageEncoding")
    batch = _case_insensitive_get(section, "batchSize")
    threshold = _case_insensitive_get(section, "newBatchThreshold")
    dequeue = _case_insensitive_get(section, "maxDequeueCount")
    visibility = _case_insensitive_get(section, "visibilityTimeout")
    polling = _case_insensitive_get(section, "maxPollingInterval")
    encoding_name = defaults.message_encoding if encoding is None else str(encoding).lower()
    if encoding_name not in {"base64", "none"}:
        raise ValueError(f"messageEncoding must be 'base64' or 'none', not {encoding!r}")
    max_polling = defaults.max_polling_interval if polling is None else _interval(polling)
    batch_size = defaults.batch_size if batch is None else int(batch)
    if not 1 <= batch_size <= 32:
        raise ValueError(f"batchSize must be 1 to 32 (the queue service's limit), not {batch!r}")
    new_batch_threshold = batch_size // 2 if threshold is None else int(threshold)
    if new_batch_threshold < 0:
        raise ValueError(f"newBatchThreshold must not be negative, not {threshold!r}")
    return QueueSettings(
        message_encoding=encoding_name,
        batch_size=batch_size,
        new_batch_threshold=new_batch_threshold,
        max_dequeue_count=defaults.max_dequeue_count if dequeue is None else int(dequeue),
        visibility_timeout=(
            defaults.visibility_timeout if visibility is None else _interval(visibility)
        ),
        max_polling_interval=max_polling,
        min_polling_interval=min(defaults.min_polling_interval, max_polling),
    )


def _interval(value: Any) -> timedelta:
    # The host accepts a TimeSpan string or, for maxPollingInterval, milliseconds.
    if isinstance(value, int | float):
        return timedelta(milliseconds=value)
    return parse_timespan(str(value))


def load_app(spec: str, root: Path) -> func.FunctionApp:
    """Import ``module:attribute`` with ``root`` on ``sys.path`` and return the FunctionApp."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise DevHostConfigError(f"--app must look like module:attribute, not {spec!r}")
    root_text = str(root.resolve())
    if root_text not in sys.path:
        sys.path.insert(0, root_text)
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        # Anything the app raises at import (e.g. a settings check) stops start-up, as the
        # worker's indexing failure does; the cause keeps the traceback.
        raise DevHostConfigError(
            f"importing {module_name} failed: {type(error).__name__}: {error}"
        ) from error
    app = getattr(module, attribute, None)
    if not isinstance(app, func.FunctionApp):
        raise DevHostConfigError(f"{spec} is not an azure.functions.FunctionApp")
    return app


Handler = Callable[..., Any]


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function as the host sees it."""

    name: str
    route: str
    methods: frozenset[str] | None  # None = every method
    auth_level: str  # "anonymous" | "function" | "admin"
    parameter: str
    handler: Handler
    config: dict[str, Any]

    trigger_type = "httpTrigger"


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function; ``schedule`` has its setting expressions resolved."""

    name: str
    schedule: str
    run_on_startup: bool
    use_monitor: bool
    parameter: str
    handler: Handler
    config: dict[str, Any]

    trigger_type = "timerTrigger"


@dataclass(frozen=True)
class QueueFunction:
    """A queue-triggered function; queue name and connection setting are resolved."""

    name: str
    queue_name: str
    connection: str  # name of the setting that holds the connection string
    parameter: str
    handler: Handler
    config: dict[str, Any]

    trigger_type = "queueTrigger"


@dataclass(frozen=True)
class OtherFunction:
    """A function whose trigger the dev host does not run (listed, never invoked)."""

    name: str
    trigger_type: str
    handler: Handler
    config: dict[str, Any]


FunctionDescriptor = HttpFunction | TimerFunction | QueueFunction | OtherFunction


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _config_of(function: func.Function) -> dict[str, Any]:
    # Round-trip through JSON so enums become the strings the host sees in function.json.
    document: dict[str, Any] = json.loads(function.get_function_json())
    return document


def describe_functions(app: func.FunctionApp, env: Mapping[str, str]) -> list[FunctionDescriptor]:
    """Index the app's functions; raise :class:`DevHostConfigError` on unusable metadata."""
    # get_functions() records the names it has validated on the app and refuses them on a
    # second call; clearing that record lets several dev hosts (tests) index one app.
    if hasattr(app, "functions_bindings"):
        app.functions_bindings = None
    try:
        functions = app.get_functions()
    except ValueError as error:
        raise DevHostConfigError(str(error)) from error
    return [_describe(function, env) for function in functions]


def _describe(function: func.Function, env: Mapping[str, str]) -> FunctionDescriptor:
    name = function.get_function_name() or function.get_user_function().__name__
    trigger = function.get_trigger()
    handler = function.get_user_function()
    config = _config_of(function)
    trigger_type = trigger.get_binding_name() if trigger is not None else "none"
    if trigger is None:
        return OtherFunction(name, trigger_type, handler, config)
    if trigger_type == "httpTrigger":
        methods = getattr(trigger, "methods", None)
        method_set = frozenset(_enum_text(m).upper() for m in methods) if methods else None
        route = getattr(trigger, "route", None)
        return HttpFunction(
            name=name,
            route=name if route is None else str(route),
            methods=method_set,
            auth_level=_enum_text(getattr(trigger, "auth_level", None) or "function").lower(),
            parameter=trigger.name,
            handler=handler,
            config=config,
        )
    if isinstance(trigger, TimerTrigger):
        return TimerFunction(
            name=name,
            schedule=resolve_setting_expressions(str(trigger.schedule), env, name),
            run_on_startup=bool(getattr(trigger, "run_on_startup", False)),
            use_monitor=bool(getattr(trigger, "use_monitor", None)),
            parameter=trigger.name,
            handler=handler,
            config=config,
        )
    if isinstance(trigger, QueueTrigger):
        connection = getattr(trigger, "connection", None) or DEFAULT_CONNECTION
        return QueueFunction(
            name=name,
            queue_name=resolve_setting_expressions(str(trigger.queue_name), env, name),
            connection=resolve_setting_expressions(str(connection), env, name),
            parameter=trigger.name,
            handler=handler,
            config=config,
        )
    return OtherFunction(name, trigger_type, handler, config)
