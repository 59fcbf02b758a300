"""The admin API: listing functions, running non-HTTP functions now, host status, access."""

from __future__ import annotations

import httpx

from devhost.http import IncomingRequest
from devhost.server import DevHost
from tests.devhost import sample_app
from tests.devhost.conftest import FUNCTION_KEY, MASTER_KEY
from tests.support.processes import wait_until


def remote_request(path: str, key: str | None = None) -> IncomingRequest:
    headers = {"x-functions-key": key} if key else {}
    return IncomingRequest(
        method="GET",
        raw_path=path,
        url=f"http://devhost{path}",
        headers=headers,
        query={},
        body=b"",
        client_host="192.0.2.10",
    )


def test_function_list_describes_each_trigger(client: httpx.Client) -> None:
    response = client.get("/admin/functions")

    assert response.status_code == 200
    functions = {f["name"]: f for f in response.json()}
    assert functions["item_by_id"]["triggerType"] == "httpTrigger"
    assert functions["item_by_id"]["route"] == "items/{id}"
    assert functions["item_by_id"]["methods"] == ["GET"]
    assert functions["item_by_id"]["authLevel"] == "anonymous"
    assert functions["nightly"]["triggerType"] == "timerTrigger"
    assert functions["nightly"]["schedule"] == "0 0 3 * * *"
    assert functions["work_item"]["triggerType"] == "queueTrigger"
    assert functions["work_item"]["queueName"] == "devhost-work"


def test_function_list_gives_invoke_url_of_http_functions(
    client: httpx.Client, http_host: DevHost
) -> None:
    functions = {f["name"]: f for f in client.get("/admin/functions").json()}

    assert functions["item_by_id"]["invoke_url_template"] == (
        f"{http_host.base_url}/api/items/{{id}}"
    )


def test_single_function_is_described_by_name(client: httpx.Client) -> None:
    response = client.get("/admin/functions/Nightly")

    assert response.json()["name"] == "nightly"


def test_posting_to_a_timer_function_runs_it_with_a_timer_request(client: httpx.Client) -> None:
    response = client.post("/admin/functions/nightly", json={"input": ""})

    assert (response.status_code, response.content) == (202, b"")
    [call] = sample_app.recorder.wait_for("nightly")
    assert call.details == {"past_due": False, "kind": "TimerRequest"}


def test_posting_to_a_queue_function_runs_it_with_the_input_as_message(
    client: httpx.Client,
) -> None:
    response = client.post("/admin/functions/work_item", json={"input": "hello queue"})

    assert response.status_code == 202
    [call] = sample_app.recorder.wait_for("work_item")
    assert call.details["body"] == "hello queue"
    assert call.details["kind"] == "QueueMessage"
    assert call.details["dequeue_count"] == 1


def test_posting_to_an_unknown_function_is_404(client: httpx.Client) -> None:
    response = client.post("/admin/functions/no_such_function", json={"input": ""})

    assert response.status_code == 404


def test_posting_to_an_http_function_is_refused(client: httpx.Client) -> None:
    response = client.post("/admin/functions/echo", json={"input": ""})

    assert response.status_code == 400


def test_posting_invalid_json_is_400(client: httpx.Client) -> None:
    response = client.post("/admin/functions/nightly", content=b"{not json")

    assert response.status_code == 400


def test_invocations_count_background_runs_until_they_finish(client: httpx.Client) -> None:
    sample_app.release.clear()
    assert client.get("/admin/host/invocations").json() == {"admin": 0, "queue": 0}

    client.post("/admin/functions/work_item", json={"input": "hold on"})
    sample_app.recorder.wait_for("work_item")
    running = client.get("/admin/host/invocations").json()
    sample_app.release.set()

    assert running == {"admin": 1, "queue": 0}
    wait_until(
        lambda: client.get("/admin/host/invocations").json()["admin"] == 0, 10, "the run to end"
    )


def test_host_status_reports_running(client: httpx.Client) -> None:
    response = client.get("/admin/host/status")

    assert response.json() == {"state": "Running"}


async def test_non_loopback_client_without_master_key_is_401(http_host: DevHost) -> None:
    response = await http_host.admin.handle(remote_request("/admin/functions"))

    assert response.status == 401


async def test_non_loopback_client_with_function_key_is_401(http_host: DevHost) -> None:
    response = await http_host.admin.handle(remote_request("/admin/functions", FUNCTION_KEY))

    assert response.status == 401


async def test_non_loopback_client_with_master_key_is_served(http_host: DevHost) -> None:
    response = await http_host.admin.handle(remote_request("/admin/functions", MASTER_KEY))

    assert response.status == 200
