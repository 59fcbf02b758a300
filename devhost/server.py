"""Wires the dev host together and runs it: uvicorn for HTTP, plus timers and queue pollers.

``DevHost`` is the programmatic entry point: ``await host.start()`` / ``await host.stop()``
(or ``async with``) on the caller's event loop, or ``with host.running_in_thread():`` to
serve from a background thread (what the test suite does). ``port=0`` binds a free port;
``host.port`` then tells which.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import azure.functions as func
import uvicorn

from devhost.admin import AdminApi, is_admin_path
from devhost.http import (
    HttpFunctionRouter,
    HttpFunctionsApp,
    Receive,
    Scope,
    Send,
    read_request,
)
from devhost.keys import load_key_ring
from devhost.loader import (
    DevHostConfigError,
    HttpFunction,
    OtherFunction,
    QueueFunction,
    TimerFunction,
    describe_functions,
    load_host_config,
)
from devhost.queues import QueuePoller, invoke_with_input
from devhost.routing import RouteTemplateError
from devhost.timers import TimerScheduler

STOP_TIMEOUT_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the dev host's owner decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _AsgiApp:
    """Sends ``/admin/...`` to the admin API and everything else to the HTTP functions."""

    def __init__(self, functions: HttpFunctionsApp, admin: AdminApi) -> None:
        self._functions = functions
        self._admin = admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets; lifespan is switched off in the uvicorn config
        request = await read_request(scope, receive)
        if is_admin_path(request.raw_path):
            response = await self._admin.handle(request)
        else:
            response = await self._functions.handle(request)
        await response.send(send)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: accepted sockets inherit the listener's protocol, and asyncio sets
    # TCP_NODELAY only on sockets that say TCP. Without it every small response after the
    # first on a kept-alive connection waited for Nagle + delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class DevHost:
    """Serves a FunctionApp the way the Functions host would, for local development."""

    def __init__(
        self,
        app: func.FunctionApp,
        root: Path | str = ".",
        host: str = "127.0.0.1",
        port: int = 7071,
        enable_timers: bool = True,
        enable_queues: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self._requested_port = port
        self.enable_timers = enable_timers
        self.enable_queues = enable_queues
        self._env = dict(os.environ if env is None else env)
        self.config = load_host_config(self.root)
        self.functions = describe_functions(app, self._env)
        self.keys, self.keys_path = load_key_ring(self.root, self._env)
        self._executor = ThreadPoolExecutor(thread_name_prefix="devhost-function")
        self._storage_executor = ThreadPoolExecutor(
            max_workers=4, thread_name_prefix="devhost-storage"
        )
        try:
            self.router = HttpFunctionRouter(self.http_functions, self.config.route_prefix)
        except RouteTemplateError as error:
            raise DevHostConfigError(str(error)) from error
        try:
            self.timers = TimerScheduler(self.timer_functions, self._executor)
        except ValueError as error:
            raise DevHostConfigError(str(error)) from error
        self._queues: QueuePoller | None = None
        self.admin = AdminApi(
            self.functions,
            self.router,
            self.keys,
            invoke_timer=self.timers.invoke,
            invoke_queue=lambda function, body: invoke_with_input(function, body, self._executor),
            base_url=lambda: self.base_url,
            queue_in_flight=lambda: self._queues.in_flight() if self._queues else 0,
        )
        self._asgi = _AsgiApp(HttpFunctionsApp(self.router, self.keys, self._executor), self.admin)
        self._server: _Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def http_functions(self) -> list[HttpFunction]:
        """The HTTP-triggered functions."""
        return [f for f in self.functions if isinstance(f, HttpFunction)]

    @property
    def timer_functions(self) -> list[TimerFunction]:
        """The timer-triggered functions."""
        return [f for f in self.functions if isinstance(f, TimerFunction)]

    @property
    def queue_functions(self) -> list[QueueFunction]:
        """The queue-triggered functions."""
        return [f for f in self.functions if isinstance(f, QueueFunction)]

    @property
    def port(self) -> int:
        """The bound port (the requested one until :meth:`start`)."""
        if self._socket is not None:
            port: int = self._socket.getsockname()[1]
            return port
        return self._requested_port

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running dev host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind, start serving HTTP, then start timers and queue pollers as enabled."""
        self._socket = _bind(self.host, self._requested_port)
        config = uvicorn.Config(
            self._asgi,
            log_config=None,
            lifespan="off",
            access_log=False,
            server_header=False,
            # The admin API trusts loopback peers: use the real peer address, never a
            # forwarded header.
            proxy_headers=False,
            timeout_graceful_shutdown=int(STOP_TIMEOUT_SECONDS),
        )
        self._server = _Server(config)
        self._serve_task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._serve_task.done():
                self._serve_task.result()  # re-raise why uvicorn could not start
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        if self.enable_timers:
            self.timers.start()
        if self.enable_queues:
            self._queues = QueuePoller(
                self.queue_functions,
                self.config.queues,
                self._env,
                self._executor,
                self._storage_executor,
            )
            self._queues.start()

    async def wait(self) -> None:
        """Wait until the HTTP server stops."""
        if self._serve_task is not None:
            await asyncio.shield(self._serve_task)

    async def stop(self) -> None:
        """Stop pollers and timers, finish in-flight requests, release threads and socket."""
        if self._queues is not None:
            await self._queues.stop()
            self._queues = None
        await self.timers.stop()
        if self._server is not None and self._serve_task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._serve_task), STOP_TIMEOUT_SECONDS + 1)
            except TimeoutError:
                self._server.force_exit = True
                await self._serve_task
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.admin.drain(), STOP_TIMEOUT_SECONDS)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._storage_executor.shutdown(wait=False, cancel_futures=True)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._serve_task = None

    async def __aenter__(self) -> DevHost:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def running_in_thread(self, timeout: float = 10.0) -> Iterator[DevHost]:
        """Serve from a background thread with its own event loop for the ``with`` block."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # handed to the caller's thread below
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=serve, name="devhost", daemon=True)
        thread.start()
        if not started.wait(timeout):
            raise TimeoutError("dev host did not start in time")
        if failure:
            thread.join(timeout)
            loop.close()
            raise failure[0]
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()

    def banner(self) -> str:
        """The start-up text: every function and where it answers; never a key value."""
        lines = [
            f"Dev host (local development only) serving on {self.base_url}",
            "",
            "HTTP functions:",
        ]
        for function in self.http_functions:
            methods = ",".join(sorted(function.methods)) if function.methods else "ALL"
            url = f"{self.base_url}{self.router.url_path(function)}"
            lines.append(f"  {methods} {url}  [{function.name}, auth: {function.auth_level}]")
        if not self.http_functions:
            lines.append("  (none)")
        for timer in self.timer_functions:
            state = "" if self.enable_timers else " (disabled: --no-timers)"
            lines.append(f"Timer: {timer.name} schedule '{timer.schedule}'{state}")
        for queue in self.queue_functions:
            state = "" if self.enable_queues else " (disabled: --no-queues)"
            lines.append(
                f"Queue: {queue.name} queue '{queue.queue_name}' "
                f"(connection {queue.connection}){state}"
            )
        for other in self.functions:
            if isinstance(other, OtherFunction):
                lines.append(f"Not run by the dev host: {other.name} ({other.trigger_type})")
        lines.append("")
        if self.keys_path is not None:
            lines.append(f"Keys (master + default function key): {self.keys_path}")
        else:
            lines.append("Keys: from DEVHOST_MASTER_KEY and DEVHOST_FUNCTION_KEY")
        lines.append(f"Admin API: {self.base_url}/admin/functions (no key from loopback)")
        return "\n".join(lines)
