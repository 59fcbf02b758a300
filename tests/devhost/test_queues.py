"""Queue triggers against Azurite: processing, retries, poison queue, unreachable storage."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.queues import MessageDecodeError, decode_body
from devhost.server import DevHost
from tests.devhost import sample_app
from tests.devhost.conftest import base_env, write_host_json
from tests.support.azurite import AzuriteServer as Azurite
from tests.support.processes import free_port, wait_until

FAST_POLLING = '"queues": {"maxPollingInterval": "00:00:00.200"}'


def start_queue_host(root: Path, connection_string: str, queue_name: str) -> DevHost:
    return DevHost(
        sample_app.app,
        root=write_host_json(root, queues=FAST_POLLING),
        port=0,
        enable_timers=False,
        env=base_env(DevhostStorage=connection_string, WORK_QUEUE=queue_name),
    )


@pytest.fixture
def queue_host(tmp_path: Path, azurite: Azurite, work_queue_name: str) -> Iterator[DevHost]:
    host = start_queue_host(tmp_path, azurite.connection_string, work_queue_name)
    with host.running_in_thread():
        yield host


def sender(azurite: Azurite, queue_name: str) -> QueueClient:
    """A client for an existing queue that encodes like the host's default (base64)."""
    client = QueueClient.from_connection_string(
        azurite.connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def wait_for_queue(azurite: Azurite, queue_name: str, timeout: float = 10.0) -> list[str]:
    client = QueueClient.from_connection_string(azurite.connection_string, queue_name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            messages = [m.content for m in client.peek_messages(max_messages=32)]
        except ResourceNotFoundError:  # not created yet
            messages = []
        if messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.05)


def test_message_is_decoded_and_processed_then_deleted(
    queue_host: DevHost, azurite: Azurite, work_queue_name: str
) -> None:
    with sender(azurite, work_queue_name) as queue:
        queue.send_message("hello from azurite")

        [call] = sample_app.recorder.wait_for("work_item", timeout=10)

        assert call.details["body"] == "hello from azurite"
        assert call.details["kind"] == "QueueMessage"
        assert call.details["dequeue_count"] == 1
        assert call.details["id"]
        deadline = time.monotonic() + 5
        while queue.get_queue_properties().approximate_message_count and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert queue.get_queue_properties().approximate_message_count == 0


def test_a_message_being_worked_on_is_counted_in_flight_and_stays_in_its_queue(
    queue_host: DevHost, azurite: Azurite, work_queue_name: str
) -> None:
    sample_app.release.clear()
    with sender(azurite, work_queue_name) as queue:
        queue.send_message("hold this one")
        sample_app.recorder.wait_for("work_item", timeout=10)

        with httpx.Client(base_url=queue_host.base_url) as client:
            running = client.get("/admin/host/invocations").json()
            waiting = queue.get_queue_properties().approximate_message_count
            sample_app.release.set()

            # What AppServer.wait_idle relies on: while a message is worked on, the host
            # counts it and the queue still holds it.
            assert running == {"admin": 0, "queue": 1}
            assert waiting == 1
            wait_until(
                lambda: client.get("/admin/host/invocations").json()["queue"] == 0, 10, "done"
            )


def test_a_slow_message_does_not_hold_back_the_next_batch(
    queue_host: DevHost, azurite: Azurite, work_queue_name: str
) -> None:
    # The host receives another batch once the messages in flight are down to
    # newBatchThreshold (8 here): messages sent while one is still being worked on run
    # beside it, not after it.
    sample_app.release.clear()
    try:
        with sender(azurite, work_queue_name) as queue:
            queue.send_message("hold the line")
            sample_app.recorder.wait_for("work_item", timeout=10)
            for n in range(5):
                queue.send_message(f"after {n}")

            calls = sample_app.recorder.wait_for("work_item", count=6, timeout=5)

            with httpx.Client(base_url=queue_host.base_url) as client:
                # The five finish while the first is still being worked on.
                wait_until(
                    lambda: client.get("/admin/host/invocations").json()["queue"] == 1,
                    5,
                    "the five done, the held one still running",
                )
            assert sorted(call.details["body"] for call in calls[1:]) == [
                f"after {n}" for n in range(5)
            ]
    finally:
        sample_app.release.set()


def test_queue_is_created_when_missing(
    queue_host: DevHost, azurite: Azurite, work_queue_name: str
) -> None:
    client = QueueClient.from_connection_string(azurite.connection_string, work_queue_name)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.get_queue_properties()
            break
        except ResourceNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

    assert client.get_queue_properties().name == work_queue_name


def test_failing_message_is_retried_then_moved_to_poison_after_five_attempts(
    queue_host: DevHost, azurite: Azurite, work_queue_name: str
) -> None:
    with sender(azurite, work_queue_name) as queue:
        queue.send_message("fail always")

        calls = sample_app.recorder.wait_for("work_item", count=5, timeout=20)
        poisoned = wait_for_queue(azurite, f"{work_queue_name}-poison")

    assert [call.details["dequeue_count"] for call in calls] == [1, 2, 3, 4, 5]
    assert [base64.b64decode(content).decode() for content in poisoned] == ["fail always"]
    assert len(sample_app.recorder.calls("work_item")) == 5


def test_unreachable_storage_never_stops_http(tmp_path: Path, work_queue_name: str) -> None:
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        f"QueueEndpoint=http://127.0.0.1:{free_port()}/devstoreaccount1;"
    )
    host = start_queue_host(tmp_path, dead, work_queue_name)

    with host.running_in_thread():
        response = httpx.get(f"{host.base_url}/api/items/new", timeout=5)

    assert response.json() == {"handler": "new_item_form"}


def test_base64_encoding_decodes_the_body() -> None:
    assert decode_body(base64.b64encode("é".encode()).decode(), "base64") == "é".encode()


def test_none_encoding_keeps_the_body() -> None:
    assert decode_body("plain", "none") == b"plain"


def test_invalid_base64_is_a_decode_error() -> None:
    with pytest.raises(MessageDecodeError):
        decode_body("not base64!", "base64")
