"""Call a user function the way the Python worker does.

Synchronous handlers run in a thread pool, coroutine functions are awaited on the
server's event loop. The trigger value is passed under the trigger binding's parameter
name, and a parameter named ``context`` receives an ``azure.functions.Context``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import azure.functions as func
from azure.functions import _abc as functions_abc


# TraceContext, RetryContext and RpcException are not re-exported by azure.functions.
class _TraceContext(functions_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _NoException(functions_abc.RpcException):
    @property
    def source(self) -> str:
        return ""

    @property
    def stack_trace(self) -> str:
        return ""

    @property
    def message(self) -> str:
        return ""


class _RetryContext(functions_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> functions_abc.RpcException:
        return _NoException()


class InvocationContext(func.Context):
    """The ``context`` argument: invocation id, function name and directory."""

    _thread_local = threading.local

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return _RetryContext()


def _wants_context(handler: Callable[..., Any], trigger_parameter: str) -> bool:
    if trigger_parameter == "context":
        return False
    try:
        parameters = inspect.signature(handler).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters


async def call_function(
    handler: Callable[..., Any],
    function_name: str,
    trigger_parameter: str,
    trigger_value: Any,
    executor: Executor,
) -> Any:
    """Invoke ``handler`` with the trigger value and return what it returned."""
    arguments: dict[str, Any] = {trigger_parameter: trigger_value}
    if _wants_context(handler, trigger_parameter):
        directory = (
            os.path.dirname(inspect.getfile(handler)) if hasattr(handler, "__code__") else ""
        )
        arguments["context"] = InvocationContext(function_name, directory)
    if inspect.iscoroutinefunction(handler):
        return await handler(**arguments)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(handler, **arguments))
