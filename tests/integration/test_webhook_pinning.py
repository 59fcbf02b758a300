"""A webhook POST over real TLS connects to the address the check approved while the name
stays what TLS sees: SNI is the name and the certificate must be valid for the name (not
for the address, and not for any other name). A local HTTPS server stands in for the
caller's webhook, with a certificate from a throwaway CA (trustme)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from shared.notifications.webhooks import CheckedWebhook, post_event, webhook_client


@dataclass
class TlsHook:
    port: int
    ca: trustme.CA
    hosts: list[str] = field(default_factory=list)  # Host headers of the POSTs received
    sni: list[str | None] = field(default_factory=list)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def hook() -> Iterator[TlsHook]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hook.test").configure_cert(server_context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = TlsHook(server.server_address[1], ca)
    server_context.sni_callback = lambda sock, name, ctx: state.sni.append(name)  # type: ignore[assignment,return-value]
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.state.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()


async def _post(hook: TlsHook, host: str) -> bool:
    # The name does not resolve at all here: only the pinned address can be reached.
    target = CheckedWebhook(f"https://{host}:{hook.port}/flow?sig=s", host, "127.0.0.1")
    async with webhook_client(5, hook.client_context()) as client:
        attempt = await post_event(client, target, b"{}", "sha256=x", "e1")
    return attempt.delivered


async def test_the_pinned_address_is_reached_with_the_name_as_sni_and_host(hook: TlsHook) -> None:
    assert await _post(hook, "hook.test")

    assert hook.sni == ["hook.test"]
    assert hook.hosts == [f"hook.test:{hook.port}"]


async def test_a_certificate_for_another_name_is_refused_at_the_pinned_address(
    hook: TlsHook,
) -> None:
    assert not await _post(hook, "other.test")

    assert hook.hosts == []  # the handshake failed: nothing was sent
