"""HTTP functions over real HTTP: routing, keys, the request the handler sees, the response."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.server import DevHost, _bind
from tests.devhost import sample_app
from tests.devhost.conftest import FUNCTION_KEY, MASTER_KEY, base_env, write_host_json


def test_parameter_route_passes_the_route_value(client: httpx.Client) -> None:
    response = client.get("/api/items/5")

    assert response.status_code == 200
    assert response.json()["id"] == "5"


def test_literal_route_wins_over_parameter_route(client: httpx.Client) -> None:
    response = client.get("/api/items/new")

    assert response.json() == {"handler": "new_item_form"}


def test_route_and_prefix_match_case_insensitively(client: httpx.Client) -> None:
    response = client.get("/API/Items/NEW")

    assert response.json() == {"handler": "new_item_form"}


def test_int_constraint_accepts_a_number(client: httpx.Client) -> None:
    response = client.get("/api/items/count/7")

    assert response.json() == {"handler": "count_items", "n": 7}


def test_int_constraint_falls_back_to_another_matching_route(client: httpx.Client) -> None:
    # items/count/x does not satisfy {n:int}; nothing else has three segments: 404.
    response = client.get("/api/items/count/x")

    assert response.status_code == 404


def test_optional_parameter_absent_and_present(client: httpx.Client) -> None:
    absent = client.get("/api/greet")
    present = client.get("/api/greet/ada")

    assert absent.json() == {"name": None}
    assert present.json() == {"name": "ada"}


def test_catch_all_receives_the_decoded_rest_of_the_path(client: httpx.Client) -> None:
    response = client.get("/api/echo/a%20b/c%2Fd")

    assert response.json()["route_params"] == {"rest": "a b/c/d"}


def test_catch_all_may_be_empty(client: httpx.Client) -> None:
    response = client.get("/api/echo")

    assert response.status_code == 200
    assert response.json()["route_params"] == {}


def test_guid_constraint_on_a_blueprint_function(client: httpx.Client) -> None:
    good = client.get("/api/renamed/8c6f2c5e-4d3b-4a51-9a8e-2f0f6b1d2c3a")
    bad = client.get("/api/renamed/42")

    assert good.json()["handler"] == "renamed"
    assert bad.status_code == 404


def test_function_without_route_answers_at_its_name(client: httpx.Client) -> None:
    response = client.get("/api/blueprint_default_route")

    assert response.json() == {"handler": "blueprint_default_route"}


def test_unknown_path_is_404_with_empty_body(client: httpx.Client) -> None:
    response = client.get("/api/no/such/route")

    assert (response.status_code, response.content) == (404, b"")


def test_path_outside_the_route_prefix_is_404(client: httpx.Client) -> None:
    response = client.get("/items/5")

    assert response.status_code == 404


def test_method_not_allowed_is_answered_like_the_host_with_404(client: httpx.Client) -> None:
    response = client.get("/api/submit")

    assert (response.status_code, response.content) == (404, b"")


def test_head_on_a_get_only_route_is_404_like_the_host(client: httpx.Client) -> None:
    response = client.head("/api/items/5")

    assert response.status_code == 404


def test_function_level_without_key_is_401_with_empty_body(client: httpx.Client) -> None:
    response = client.get("/api/secure")

    assert (response.status_code, response.content) == (401, b"")


def test_function_level_with_wrong_key_is_401(client: httpx.Client) -> None:
    response = client.get("/api/secure", headers={"x-functions-key": "wrong"})

    assert response.status_code == 401


def test_function_key_in_header_opens_function_level(client: httpx.Client) -> None:
    response = client.get("/api/secure", headers={"x-functions-key": FUNCTION_KEY})

    assert response.json() == {"handler": "secure"}


def test_function_key_in_code_parameter_opens_function_level(client: httpx.Client) -> None:
    response = client.get("/api/secure", params={"code": FUNCTION_KEY})

    assert response.json() == {"handler": "secure"}


def test_master_key_opens_function_level(client: httpx.Client) -> None:
    response = client.get("/api/secure", params={"code": MASTER_KEY})

    assert response.status_code == 200


def test_function_key_does_not_open_admin_level(client: httpx.Client) -> None:
    response = client.get("/api/admin-only", headers={"x-functions-key": FUNCTION_KEY})

    assert response.status_code == 401


def test_master_key_opens_admin_level(client: httpx.Client) -> None:
    response = client.get("/api/admin-only", headers={"x-functions-key": MASTER_KEY})

    assert response.json() == {"handler": "admin_only"}


def test_handler_sees_method_url_params_headers_and_body(
    client: httpx.Client, http_host: DevHost
) -> None:
    response = client.put(
        "/api/echo/x/y?b=2&a=1&a=3&empty=",
        headers={"X-Custom": "value", "Content-Type": "text/plain"},
        content=b"payload \xc3\xa9",
    )

    seen = response.json()
    assert seen["method"] == "PUT"
    assert seen["url"] == f"{http_host.base_url}/api/echo/x/y?b=2&a=1&a=3&empty="
    assert seen["params"] == {"b": "2", "a": "1,3", "empty": ""}
    assert seen["route_params"] == {"rest": "x/y"}
    assert seen["headers"]["x-custom"] == "value"
    assert seen["headers"]["content-type"] == "text/plain"
    assert seen["body"] == "payload é"


def test_handler_asking_for_context_gets_one_per_invocation(client: httpx.Client) -> None:
    first = client.get("/api/context").json()
    second = client.get("/api/context").json()

    assert first["function"] == "with_context"
    assert first["invocation_id"] != second["invocation_id"]


def test_sync_handler_runs_in_a_worker_thread(client: httpx.Client) -> None:
    response = client.get("/api/echo")

    assert response.json()["thread"].startswith("devhost-function")


def test_async_handler_runs_on_the_event_loop(client: httpx.Client) -> None:
    response = client.get("/api/items/1")

    assert response.json()["thread"] == "devhost"


def test_response_status_headers_mimetype_and_body_are_sent(client: httpx.Client) -> None:
    response = client.post("/api/submit", content=b'{"a": 1}')

    assert response.status_code == 201
    assert response.headers["location"] == "/api/items/42"
    assert response.headers["x-request-id"] == "abc"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"a": 1}'


def test_text_response_gets_the_default_mimetype_and_charset(client: httpx.Client) -> None:
    response = client.get("/api/hello")

    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "héllo"


def test_handler_returning_nothing_is_204(client: httpx.Client) -> None:
    response = client.get("/api/nothing")

    assert (response.status_code, response.content) == (204, b"")


def test_handler_exception_is_500_with_empty_body_and_logged(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="devhost.http"):
        response = client.get("/api/boom")

    assert (response.status_code, response.content) == (500, b"")
    assert any(
        record.exc_info and "secret detail" in str(record.exc_info[1]) for record in caplog.records
    )


def test_request_log_has_route_template_but_no_query_or_key(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="devhost.http"):
        client.get("/api/secure", params={"code": FUNCTION_KEY, "q": "private"})

    messages = [record.getMessage() for record in caplog.records if record.name == "devhost.http"]
    assert any("GET secure -> 200" in message for message in messages)
    assert not any(FUNCTION_KEY in m or "private" in m for m in messages)


@pytest.fixture(scope="module")
def unprefixed_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevHost]:
    root: Path = write_host_json(tmp_path_factory.mktemp("devhost-noprefix"), route_prefix="")
    host = DevHost(
        sample_app.app, root=root, port=0, enable_timers=False, enable_queues=False, env=base_env()
    )
    with host.running_in_thread():
        yield host


def test_empty_route_prefix_serves_routes_at_the_root(unprefixed_host: DevHost) -> None:
    response = httpx.get(f"{unprefixed_host.base_url}/items/new")

    assert response.json() == {"handler": "new_item_form"}


def test_the_listening_socket_says_tcp_so_responses_are_not_delayed_by_nagle() -> None:
    # asyncio turns TCP_NODELAY on only for accepted sockets whose protocol is TCP, and they
    # inherit it from the listener: with protocol 0 each small response after the first on
    # a kept-alive connection waited ~40 ms (Nagle + delayed ACK).
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        sock.listen()
        with socket.create_connection(sock.getsockname()):
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
