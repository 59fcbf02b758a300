"""Outlook throttling per app + mailbox, on a private sandbox with scaled-down limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.sandbox.graph.support import ALICE, BOB, Graph, error_code, user_token
from tests.support.sandbox import SandboxServer, start_sandbox

REQUESTS_PER_WINDOW = 8
WINDOW_SECONDS = 600
UPLOAD_BYTES = 4 * 1024 * 1024
KIB320 = 320 * 1024


@pytest.fixture(scope="module")
def throttled_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = start_sandbox(
        tmp_path_factory.mktemp("throttled"),
        {
            "SANDBOX_THROTTLE_CONCURRENCY": "2",
            "SANDBOX_THROTTLE_REQUESTS": str(REQUESTS_PER_WINDOW),
            "SANDBOX_THROTTLE_WINDOW_SECONDS": str(WINDOW_SECONDS),
            "SANDBOX_THROTTLE_UPLOAD_BYTES": str(UPLOAD_BYTES),
            "SANDBOX_THROTTLE_UPLOAD_WINDOW_SECONDS": "300",
        },
    )
    yield server
    server.stop()


@pytest.fixture
def throttled(throttled_server: SandboxServer) -> SandboxServer:
    throttled_server.reset()
    return throttled_server


def _shift_clock(server: SandboxServer, seconds: float) -> None:
    with server.client() as client:
        client.post("/_sandbox/clock", json={"offsetSeconds": seconds}).raise_for_status()


def test_requests_over_the_window_get_429_with_retry_after(throttled: SandboxServer) -> None:
    alice = Graph(throttled, user_token(throttled, ALICE))
    try:
        statuses = [alice.get("/me/mailFolders").status_code for _ in range(REQUESTS_PER_WINDOW)]
        refused = alice.get("/me/mailFolders")
    finally:
        alice.close()

    assert statuses == [200] * REQUESTS_PER_WINDOW
    assert refused.status_code == 429
    assert error_code(refused) == "ApplicationThrottled"
    assert 0 < int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    assert "request-id" in refused.json()["error"]["innerError"]


def test_the_window_is_per_mailbox(throttled: SandboxServer) -> None:
    alice = Graph(throttled, user_token(throttled, ALICE))
    bob = Graph(throttled, user_token(throttled, BOB))
    try:
        for _ in range(REQUESTS_PER_WINDOW):
            alice.get("/me/mailFolders")
        assert alice.get("/me/mailFolders").status_code == 429
        assert bob.get("/me/mailFolders").status_code == 200
    finally:
        alice.close()
        bob.close()


def test_the_window_reopens_when_it_has_passed(throttled: SandboxServer) -> None:
    alice = Graph(throttled, user_token(throttled, ALICE))
    try:
        for _ in range(REQUESTS_PER_WINDOW + 1):
            alice.get("/me/mailFolders")
        _shift_clock(throttled, WINDOW_SECONDS + 1)
        response = alice.get("/me/mailFolders")
    finally:
        _shift_clock(throttled, 0)
        alice.close()

    assert response.status_code == 200


def test_batch_sub_requests_count_individually(throttled: SandboxServer) -> None:
    alice = Graph(throttled, user_token(throttled, ALICE))
    requests = [
        {"id": str(i), "method": "GET", "url": "/me/mailFolders"}
        for i in range(REQUESTS_PER_WINDOW + 2)
    ]
    try:
        response = alice.post("/$batch", json={"requests": requests})
    finally:
        alice.close()

    statuses = [r["status"] for r in response.json()["responses"]]
    assert statuses == [200] * REQUESTS_PER_WINDOW + [429, 429]


def _upload_url(graph: Graph, size: int) -> str:
    draft = graph.post("/me/messages", json={"subject": "upload"}).json()
    session = graph.post(
        f"/me/messages/{draft['id']}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": "f.bin", "size": size}},
    )
    return str(session.json()["uploadUrl"])


def test_upload_bytes_over_the_window_get_429(throttled: SandboxServer) -> None:
    alice = Graph(throttled, user_token(throttled, ALICE))
    size = 5 * 1024 * 1024
    chunk = b"\0" * (10 * KIB320)  # 3.125 MiB
    try:
        url = _upload_url(alice, size)
        with httpx.Client(verify=throttled.ssl_context(), timeout=30) as uploader:
            first = uploader.put(
                url, content=chunk, headers={"Content-Range": f"bytes 0-{len(chunk) - 1}/{size}"}
            )
            rest = b"\0" * (size - len(chunk))
            second = uploader.put(
                url,
                content=rest,
                headers={"Content-Range": f"bytes {len(chunk)}-{size - 1}/{size}"},
            )
    finally:
        alice.close()

    assert first.status_code == 200
    assert second.status_code == 429
    assert error_code(second) == "ApplicationThrottled"
    assert int(second.headers["retry-after"]) > 0


def test_concurrent_requests_over_the_limit_get_429(throttled: SandboxServer) -> None:
    token = user_token(throttled, ALICE)
    alice = Graph(throttled, token)
    size = 4 * 1024 * 1024
    try:
        urls = [_upload_url(alice, size), _upload_url(alice, size)]
    finally:
        alice.close()

    async def scenario() -> tuple[int, str, list[int]]:
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"\0" * 1024
            await release.wait()
            yield b"\0" * (KIB320 - 1024)

        async with httpx.AsyncClient(verify=throttled.ssl_context(), timeout=30) as client:
            uploads = [
                asyncio.create_task(
                    client.put(
                        url,
                        content=slow_body(),
                        headers={"Content-Range": f"bytes 0-{KIB320 - 1}/{size}"},
                    )
                )
                for url in urls
            ]
            deadline = time.monotonic() + 10
            while True:
                state = (await client.get(f"{throttled.url}/_sandbox/graph/throttle")).json()
                if sum(e["inFlight"] for e in state["inFlight"]) >= 2:
                    break
                assert time.monotonic() < deadline, "uploads never became in flight"
                await asyncio.sleep(0.02)
            third = await client.get(
                f"{throttled.graph_url}/me/mailFolders",
                headers={"Authorization": f"Bearer {token}"},
            )
            release.set()
            finished = [(await task).status_code for task in uploads]
            return third.status_code, third.json()["error"]["message"], finished

    status, message, finished = asyncio.run(scenario())

    assert status == 429
    assert message == "Application is over its MailboxConcurrency limit."
    assert finished == [200, 200]
