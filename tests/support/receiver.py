"""A small local HTTP receiver standing in for a webhook endpoint (a flow's callback URL, or
the app's own Graph notification endpoint in sandbox tests).

It answers Graph's `validationToken` handshake (unless told not to), records every other
POST (raw body and headers), and can be made to fail with a status for a while, or have
each answer chosen by a `respond` function (a benchmark's receiver that fails some attempts
and hangs on others).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # time.monotonic() when it was answered (set when `respond` decides)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    handshakes: list[str] = field(default_factory=list)
    echo_handshake: bool = True
    fail_with: int | None = None  # answer every notification with this status
    failures: int = 0  # notifications refused while failing
    refused: list[Received] = field(default_factory=list)  # those refused notifications
    # When set, decides each notification's status instead of `fail_with`: called outside
    # the lock, on the request's own thread, so it may block (a receiver that hangs).
    respond: Callable[[Received], int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 15.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                snapshot = list(self.received)
            if predicate(snapshot):
                return snapshot
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"receiver got {len(self.received)} posts, not what was awaited")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver() -> Receiver:
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            query = parse_qs(urlsplit(self.path).query)
            if "validationToken" in query:
                token = query["validationToken"][0]
                with receiver.lock:
                    receiver.handshakes.append(token)
                if not receiver.echo_handshake:
                    self._answer(404, b"")
                    return
                self._answer(200, token.encode(), "text/plain; charset=utf-8")
                return
            if receiver.respond is not None:
                self._decided(Received(urlsplit(self.path).path, dict(self.headers.items()), body))
                return
            with receiver.lock:
                if receiver.fail_with is not None:
                    receiver.failures += 1
                    receiver.refused.append(
                        Received(urlsplit(self.path).path, dict(self.headers.items()), body)
                    )
                    status = receiver.fail_with
                else:
                    receiver.received.append(
                        Received(urlsplit(self.path).path, dict(self.headers.items()), body)
                    )
                    status = 202
            self._answer(status, b"")

        def _decided(self, got: Received) -> None:
            assert receiver.respond is not None
            status = receiver.respond(got)
            got.at = time.monotonic()
            with receiver.lock:
                if 200 <= status < 300:
                    receiver.received.append(got)
                else:
                    receiver.failures += 1
                    receiver.refused.append(got)
            # A sender that gave up waiting (a hang past its timeout) has closed the socket.
            with contextlib.suppress(OSError):
                self._answer(status, b"")

        def _answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver
