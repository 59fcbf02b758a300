"""The ASGI middleware in process: the loopback rule, and bodies streaming through intact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.context import SandboxContext
from sandbox.controls import MAX_LOGGED_BODY_BYTES
from sandbox.middleware import SandboxMiddleware, is_loopback
from sandbox.settings import SandboxSettings


@pytest.fixture
def ctx(tmp_path: Path) -> SandboxContext:
    return SandboxContext.create(SandboxSettings(state_dir=tmp_path))


class EchoApp:
    """Reads the whole body and answers with its length."""

    def __init__(self) -> None:
        self.received = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            self.received += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(self.received)).encode()})


async def _call(
    app: Any,
    path: str,
    *,
    client: str = "127.0.0.1",
    chunks: list[bytes] | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": headers or [],
        "client": (client, 50000),
    }
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks or [b""]) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("10.0.0.5", False),
        ("192.168.1.2", False),
        (None, False),
        ("", False),
    ],
)
def test_is_loopback(host: str | None, allowed: bool) -> None:
    assert is_loopback(host) is allowed


async def test_control_api_refuses_remote_clients(ctx: SandboxContext) -> None:
    inner = EchoApp()
    app = SandboxMiddleware(inner, ctx)

    sent = await _call(app, "/_sandbox/reset", client="10.0.0.5")

    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"])["error"] == "forbidden"


async def test_product_routes_are_open_to_remote_clients(ctx: SandboxContext) -> None:
    app = SandboxMiddleware(EchoApp(), ctx)

    sent = await _call(app, "/v1.0/me", client="10.0.0.5")

    assert sent[0]["status"] == 200


async def test_large_bodies_stream_through_whole_and_are_logged_as_null(
    ctx: SandboxContext,
) -> None:
    inner = EchoApp()
    app = SandboxMiddleware(inner, ctx)
    chunk = b"x" * (512 * 1024)
    chunks = [chunk] * 5

    sent = await _call(
        app, "/v1.0/upload", chunks=chunks, headers=[(b"content-type", b"application/json")]
    )

    assert sent[1]["body"] == str(len(chunk) * 5).encode()
    assert inner.received == b"".join(chunks)
    assert len(inner.received) > MAX_LOGGED_BODY_BYTES
    assert ctx.controls.requests[-1]["body"] is None


async def test_prefetched_json_body_reaches_the_route_unchanged(ctx: SandboxContext) -> None:
    inner = EchoApp()
    app = SandboxMiddleware(inner, ctx)
    body = json.dumps({"subject": "hello"}).encode()

    await _call(
        app,
        "/v1.0/me/messages",
        chunks=[body[:5], body[5:]],
        headers=[(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    )

    assert inner.received == body
    assert ctx.controls.requests[-1]["body"] == {"subject": "hello"}


async def test_request_log_is_bounded(ctx: SandboxContext) -> None:
    app = SandboxMiddleware(EchoApp(), ctx)
    size = ctx.controls.requests.maxlen
    assert size is not None

    for _ in range(size + 5):
        await _call(app, "/v1.0/me")

    assert len(ctx.controls.requests) == size
