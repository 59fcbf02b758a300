"""The host's admin API, as far as local development needs it.

``GET /admin/functions`` lists the functions, ``GET /admin/functions/{name}`` shows one,
``POST /admin/functions/{name}`` with ``{"input": "..."}`` runs a non-HTTP function now
(202 Accepted, the run happens in the background) and ``GET /admin/host/status`` reports
the host state. As with ``func start``, a loopback client needs no key; any other client
must present the master key.

Not in the real host: ``GET /admin/host/invocations`` counts the function runs still going
in the background (admin-API runs and queue messages being worked on), so that tests can
wait until work they caused has finished.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from devhost.http import HttpFunctionRouter, IncomingRequest, Response, json_response
from devhost.keys import KeyRing, presented_key
from devhost.loader import (
    FunctionDescriptor,
    HttpFunction,
    OtherFunction,
    QueueFunction,
    TimerFunction,
)

logger = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin"

TimerInvoker = Callable[[TimerFunction], Awaitable[None]]
QueueInvoker = Callable[[QueueFunction, str], Awaitable[None]]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8 or ::1)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_admin_path(raw_path: str) -> bool:
    """Whether the path belongs to the admin API (the host reserves ``/admin``)."""
    lowered = raw_path.lower()
    return lowered == ADMIN_PREFIX or lowered.startswith(ADMIN_PREFIX + "/")


class AdminApi:
    """Answers admin API requests."""

    def __init__(
        self,
        functions: list[FunctionDescriptor],
        router: HttpFunctionRouter,
        keys: KeyRing,
        invoke_timer: TimerInvoker,
        invoke_queue: QueueInvoker,
        base_url: Callable[[], str],
        queue_in_flight: Callable[[], int] = lambda: 0,
    ) -> None:
        self._functions = {function.name.lower(): function for function in functions}
        self._router = router
        self._keys = keys
        self._invoke_timer = invoke_timer
        self._invoke_queue = invoke_queue
        self._base_url = base_url
        self._queue_in_flight = queue_in_flight
        self._running: set[asyncio.Task[None]] = set()

    async def handle(self, request: IncomingRequest) -> Response:
        """Answer one admin request."""
        if not is_loopback(request.client_host) and not self._keys.is_master_key(
            presented_key(request.headers, request.query)
        ):
            return Response(401)
        parts = [part for part in request.raw_path.split("/") if part][1:]
        lowered = [part.lower() for part in parts]
        if lowered == ["host", "status"] and request.method == "GET":
            return json_response(200, {"state": "Running"})
        if lowered == ["host", "invocations"] and request.method == "GET":
            return json_response(
                200, {"admin": len(self._running), "queue": self._queue_in_flight()}
            )
        if lowered == ["functions"] and request.method == "GET":
            return json_response(200, [self._describe(f) for f in self._functions.values()])
        if len(parts) == 2 and lowered[0] == "functions":
            function = self._functions.get(lowered[1])
            if function is None:
                return Response(404)
            if request.method == "GET":
                return json_response(200, self._describe(function))
            if request.method == "POST":
                return self._start_invocation(function, request.body)
        return Response(404)

    def _start_invocation(self, function: FunctionDescriptor, body: bytes) -> Response:
        try:
            document = json.loads(body or b"{}")
        except ValueError:
            return json_response(400, {"error": 'body must be JSON like {"input": "..."}'})
        raw_input = document.get("input", "") if isinstance(document, dict) else None
        if raw_input is None:
            raw_input = ""
        if not isinstance(raw_input, str):
            raw_input = json.dumps(raw_input)
        run: Awaitable[None]
        if isinstance(function, TimerFunction):
            run = self._invoke_timer(function)
        elif isinstance(function, QueueFunction):
            run = self._invoke_queue(function, raw_input)
        else:
            return json_response(
                400, {"error": f"{function.name} is not a timer or queue function"}
            )
        logger.info("Admin invocation of %s accepted", function.name)
        task = asyncio.ensure_future(run)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return Response(202)

    async def drain(self) -> None:
        """Wait for background invocations started through the admin API."""
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _describe(self, function: FunctionDescriptor) -> dict[str, Any]:
        description: dict[str, Any] = {
            "name": function.name,
            "triggerType": function.trigger_type,
            "language": "python",
            "isDisabled": False,
            "href": f"{self._base_url()}{ADMIN_PREFIX}/functions/{function.name}",
            "config": function.config,
        }
        if isinstance(function, HttpFunction):
            url_path = self._router.url_path(function)
            description.update(
                route=function.route,
                methods=sorted(function.methods) if function.methods else None,
                authLevel=function.auth_level,
                invoke_url_template=f"{self._base_url()}{url_path}",
            )
        elif isinstance(function, TimerFunction):
            description.update(schedule=function.schedule, runOnStartup=function.run_on_startup)
        elif isinstance(function, QueueFunction):
            description.update(queueName=function.queue_name, connection=function.connection)
        elif isinstance(function, OtherFunction):
            description.update(supported=False)
        return description
