"""The ASGI layer in front of every sandbox route: the loopback rule for the control API, the
request log, added latency and scripted faults.

Pure ASGI (not BaseHTTPMiddleware) so that request bodies stream through untouched: upload
sessions send up to 150 MB, and the log only keeps a copy of bodies up to 1 MB.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from sandbox.controls import MAX_LOGGED_BODY_BYTES, Fault, parse_logged_body

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from sandbox.context import SandboxContext

logger = logging.getLogger(__name__)

CONTROL_PREFIX = "/_sandbox"
GRAPH_PREFIX = "/v1.0"


def is_loopback(host: str | None) -> bool:
    """The control API can reset the tenant and mint tokens: only this machine may call it."""
    if not host:
        return False
    return host == "::1" or host.startswith("127.") or host == "::ffff:127.0.0.1"


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, ctx: SandboxContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            client = scope.get("client")
            if not is_loopback(client[0] if client else None):
                logger.warning("control API refused for non-loopback client %s", client)
                await _send_json(send, 403, {"error": "forbidden", "message": "loopback only"})
                return
            await self.app(scope, receive, send)
            return

        controls = self.ctx.controls
        method: str = scope["method"]
        entry = controls.record_request(
            method, path, scope.get("query_string", b"").decode("latin-1"), scope["headers"]
        )
        capture = _BodyCapture(receive, entry)

        latency = controls.latency
        delay_ms = latency.graph_ms if path.startswith(GRAPH_PREFIX + "/") else latency.identity_ms
        if path == GRAPH_PREFIX:
            delay_ms = latency.graph_ms
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)

        if capture.wants_prefetch(scope):
            await capture.prefetch()

        fault = controls.take_fault(method, path)
        if fault is not None:
            await capture.drain()
            if fault.latency_ms > 0:
                await asyncio.sleep(fault.latency_ms / 1000)
            logger.info("fault %s answers %s %s with %s", fault.id, method, path, fault.status)
            await _send_fault(send, fault)
            return
        await self.app(scope, capture.receive, send)


class _BodyCapture:
    """Wraps `receive` to keep a bounded copy of the body for the request log.

    Small JSON bodies are read before the route runs (and replayed to it), so that the log
    has them even when the route answers without reading the body (401, 404, throttling).
    Everything else streams through and is captured only as far as the route reads it.
    """

    def __init__(self, receive: Receive, entry: dict[str, Any]) -> None:
        self._receive = receive
        self._entry = entry
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False
        self._replay: list[Message] = []

    def wants_prefetch(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        if b"json" not in headers.get(b"content-type", b"").lower():
            return False
        length = headers.get(b"content-length")
        try:
            return length is not None and 0 < int(length) <= MAX_LOGGED_BODY_BYTES
        except ValueError:
            return False

    async def prefetch(self) -> None:
        while not self._done:
            self._replay.append(await self._capture(await self._receive()))

    async def receive(self) -> Message:
        if self._replay:
            return self._replay.pop(0)
        return await self._capture(await self._receive())

    async def _capture(self, message: Message) -> Message:
        if message["type"] == "http.request" and not self._done:
            chunk: bytes = message.get("body", b"")
            self._size += len(chunk)
            if self._size <= MAX_LOGGED_BODY_BYTES:
                self._chunks.append(chunk)
            else:
                self._chunks.clear()
            if not message.get("more_body", False):
                self._done = True
                if self._size <= MAX_LOGGED_BODY_BYTES:
                    parse_logged_body(self._entry, b"".join(self._chunks))
                self._chunks.clear()
        elif message["type"] == "http.disconnect":
            self._done = True
        return message

    async def drain(self) -> None:
        """Read the whole body (so the log has it) when a fault answers instead of a route."""
        while not self._done:
            await self.receive()


async def _send_json(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _send_fault(send: Send, fault: Fault) -> None:
    headers = {name.lower(): value for name, value in fault.headers.items()}
    if fault.body is None:
        payload = b""
    elif isinstance(fault.body, str):
        payload = fault.body.encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    else:
        payload = json.dumps(fault.body).encode()
        headers.setdefault("content-type", "application/json")
    headers["content-length"] = str(len(payload))
    await send(
        {
            "type": "http.response.start",
            "status": fault.status,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": payload})
