"""Retries: Retry-After honoured and capped, jittered backoff, a deadline, and POSTs that
are repeated only when Graph said it did not process them."""

from __future__ import annotations

import random

import httpx
import pytest

from shared.errors import GraphError, GraphThrottled, GraphUnavailable, NotFound
from shared.graph.client import GraphClient, GraphRequest, GraphResponse
from shared.graph.errors import GraphUnauthorized
from shared.graph.retry import RetryPolicy
from tests.unit.graph.support import TOKEN, VirtualTime, graph_error, make_client, ok

LIST = GraphRequest("GET", "/me/messages")
SEND = GraphRequest("POST", "/me/sendMail", json={"message": {"subject": "x"}})


async def call(client: GraphClient, request: GraphRequest = LIST) -> GraphResponse:
    return await client.send(request, token=TOKEN, mailbox_key="alice", correlation_id="corr-1")


async def test_retry_after_is_honoured_then_success() -> None:
    client, graph, vt = make_client(
        [graph_error(429, "ApplicationThrottled", {"Retry-After": "3"}), ok()]
    )

    response = await call(client)

    assert response.status == 200
    assert vt.sleeps == [3.0]
    assert len(graph.requests) == 2


async def test_retry_after_longer_than_the_cap_is_not_waited_for() -> None:
    client, graph, vt = make_client(
        [graph_error(429, "ApplicationThrottled", {"Retry-After": "120"}), ok()]
    )

    with pytest.raises(GraphThrottled) as caught:
        await call(client)

    assert vt.sleeps == []
    assert caught.value.http_status == 429
    assert caught.value.headers["Retry-After"] == "120"
    assert len(graph.requests) == 1


async def test_503_three_times_then_success_backs_off_with_bounded_jitter() -> None:
    client, _, vt = make_client([graph_error(503, "ServiceUnavailable")] * 3 + [ok()])

    response = await call(client)

    assert response.status == 200
    assert len(vt.sleeps) == 3
    for attempt, delay in enumerate(vt.sleeps, start=1):
        assert 0 <= delay <= min(8.0, 0.5 * 2 ** (attempt - 1))


def test_backoff_is_full_jitter_below_an_exponential_ceiling_capped_at_8s() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)

    samples = {n: [policy.backoff(n, rng) for _ in range(200)] for n in (1, 2, 3, 5, 9)}

    assert max(samples[1]) <= 0.5
    assert max(samples[3]) <= 2.0
    assert max(samples[9]) <= 8.0
    assert max(samples[9]) > 4.0  # the cap, not the exponent, bounds late attempts
    assert min(samples[5]) < 1.0  # full jitter: small waits stay possible


async def test_persistent_503_ends_with_graph_unavailable_within_the_deadline() -> None:
    vt = VirtualTime()
    client, graph, _ = make_client(
        [graph_error(503, "ServiceUnavailable")],
        time=vt,
        retry=RetryPolicy(deadline_seconds=10, max_attempts=100),
    )
    started = vt.now

    with pytest.raises(GraphUnavailable):
        await call(client)

    assert vt.now - started < 10
    assert len(graph.requests) > 3


async def test_persistent_503_with_retry_after_ends_as_throttled_503() -> None:
    client, _, vt = make_client(
        [graph_error(503, "ServiceUnavailable", {"Retry-After": "4"})],
        retry=RetryPolicy(deadline_seconds=10),
    )

    with pytest.raises(GraphThrottled) as caught:
        await call(client)

    assert caught.value.http_status == 503
    assert caught.value.headers["Retry-After"] == "4"
    assert sum(vt.sleeps) < 10


async def test_get_is_retried_after_a_read_timeout() -> None:
    client, graph, _ = make_client([httpx.ReadTimeout("slow"), ok()])

    assert (await call(client)).status == 200
    assert len(graph.requests) == 2


async def test_get_is_retried_after_a_connection_reset() -> None:
    client, graph, _ = make_client([httpx.ReadError("reset by peer"), ok()])

    assert (await call(client)).status == 200
    assert len(graph.requests) == 2


async def test_network_errors_until_the_deadline_become_graph_unavailable() -> None:
    client, _, vt = make_client([httpx.ConnectError("refused")], retry=RetryPolicy(5))

    with pytest.raises(GraphUnavailable):
        await call(client)

    assert sum(vt.sleeps) < 5


async def test_post_is_not_retried_on_500() -> None:
    client, graph, _ = make_client([graph_error(500, "InternalServerError"), ok()])

    with pytest.raises(GraphError) as caught:
        await call(client, SEND)

    assert caught.value.extensions["graphCode"] == "InternalServerError"
    assert len(graph.requests) == 1


async def test_post_is_not_retried_after_a_timeout() -> None:
    client, graph, _ = make_client([httpx.ReadTimeout("slow"), ok()])

    with pytest.raises(GraphUnavailable):
        await call(client, SEND)

    assert len(graph.requests) == 1


async def test_post_is_not_retried_on_503_without_retry_after() -> None:
    client, graph, _ = make_client([graph_error(503, "ServiceUnavailable"), ok()])

    with pytest.raises(GraphUnavailable):
        await call(client, SEND)

    assert len(graph.requests) == 1


async def test_post_is_not_retried_on_504_even_with_retry_after() -> None:
    client, graph, _ = make_client([graph_error(504, "GatewayTimeout", {"Retry-After": "1"})])

    with pytest.raises(GraphThrottled):
        await call(client, SEND)

    assert len(graph.requests) == 1


async def test_post_is_retried_on_429() -> None:
    client, graph, vt = make_client(
        [graph_error(429, "ApplicationThrottled", {"Retry-After": "2"}), httpx.Response(202)]
    )

    response = await call(client, SEND)

    assert response.status == 202
    assert vt.sleeps == [2.0]
    assert graph.requests[0].content == graph.requests[1].content


async def test_post_is_retried_on_503_with_retry_after() -> None:
    client, graph, _ = make_client(
        [graph_error(503, "ServiceUnavailable", {"Retry-After": "1"}), httpx.Response(202)]
    )

    assert (await call(client, SEND)).status == 202
    assert len(graph.requests) == 2


async def test_patch_marked_idempotent_is_retried_on_500() -> None:
    request = GraphRequest(
        "PATCH", "/me/messages/AAkALgAAAA", json={"isRead": True}, idempotent=True
    )
    client, graph, _ = make_client([graph_error(500, "InternalServerError"), ok()])

    assert (await call(client, request)).status == 200
    assert len(graph.requests) == 2


async def test_401_is_signalled_at_once_for_the_token_service() -> None:
    client, graph, vt = make_client([graph_error(401, "InvalidAuthenticationToken"), ok()])

    with pytest.raises(GraphUnauthorized) as caught:
        await call(client)

    assert caught.value.extensions["graphCode"] == "InvalidAuthenticationToken"
    assert len(graph.requests) == 1
    assert vt.sleeps == []


async def test_404_is_not_retried() -> None:
    client, graph, _ = make_client([graph_error(404, "ErrorItemNotFound"), ok()])

    with pytest.raises(NotFound):
        await call(client)

    assert len(graph.requests) == 1
