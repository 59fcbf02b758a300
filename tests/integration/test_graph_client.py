"""The Graph client against the sandbox over real HTTPS: the queries Graph receives, paging
with cursors, retries on injected faults, the per-mailbox limiter, bytes intact, and the
shared mailbox permission."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest

from sandbox.graph.ids import immutable_message_id
from sandbox.graph.seed import large_payload
from shared.config import Settings, load_settings
from shared.errors import (
    Forbidden,
    GraphThrottled,
    GraphUnavailable,
    InvalidCursor,
    NotFound,
    ValidationFailed,
)
from shared.graph import (
    CursorCodec,
    GraphClient,
    GraphRequest,
    ListQuery,
    MailboxPath,
    MessageFilters,
)
from shared.graph.retry import RetryPolicy
from tests.sandbox.graph.support import ALICE, BOB, SUPPORT, user_token
from tests.support.app import sample_settings
from tests.support.sandbox import SandboxServer

pytestmark = pytest.mark.slow

ME = MailboxPath.of(None)


def settings_for(sandbox: SandboxServer, **overrides: str) -> Settings:
    return load_settings(
        {
            **sample_settings(),
            "GRAPH_BASE_URL": sandbox.graph_url,
            "CA_BUNDLE": str(sandbox.ca_bundle_path),
            **overrides,
        }
    )


@pytest.fixture
async def graph(sandbox: SandboxServer) -> AsyncIterator[GraphClient]:
    client = GraphClient.from_settings(settings_for(sandbox))
    yield client
    await client.aclose()


@pytest.fixture
def alice_token(sandbox: SandboxServer) -> str:
    return user_token(sandbox, ALICE)


@pytest.fixture
def control(sandbox: SandboxServer) -> Callable[..., Any]:
    """Call the sandbox's control API: control("POST", "/faults", json=...)."""

    def call(method: str, path: str, **kwargs: Any) -> Any:
        with sandbox.client() as client:
            response = client.request(method, f"/_sandbox{path}", **kwargs)
            response.raise_for_status()
            return response.json() if response.content else None

    return call


def graph_requests(control: Callable[..., Any]) -> list[dict[str, Any]]:
    return [r for r in control("GET", "/requests") if r["path"].startswith("/v1.0/")]


async def test_listing_with_filters_sends_the_expected_graph_query(
    graph: GraphClient, alice_token: str, control: Callable[..., Any]
) -> None:
    control("DELETE", "/requests")
    query = ListQuery(
        top=50,
        filters=MessageFilters(unread=True, from_address="carol@fabrikam.test"),
        select=["subject", "from", "isRead"],
        order_by="receivedDateTime desc",
    )

    response = await graph.send(
        GraphRequest("GET", ME.folder_messages("inbox"), query.params()),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-list-1",
    )

    items = response.json()["value"]
    assert items and all(not m["isRead"] for m in items)
    assert {m["from"]["emailAddress"]["address"] for m in items} == {"carol@fabrikam.test"}
    assert response.request_id
    [seen] = graph_requests(control)
    assert seen["method"] == "GET"
    assert seen["path"] == "/v1.0/me/mailFolders/inbox/messages"
    assert dict(parse_qsl(seen["query"])) == {
        "$top": "50",
        "$select": "id,subject,from,isRead",
        "$filter": "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false"
        " and from/emailAddress/address eq 'carol@fabrikam.test'",
        "$orderby": "receivedDateTime desc",
    }
    assert seen["headers"]["prefer"] == 'IdType="ImmutableId"'
    assert seen["headers"]["client-request-id"] == "corr-list-1"
    assert seen["headers"]["authorization"] == "<redacted>"


async def test_every_filter_at_once_is_accepted_by_graph(
    graph: GraphClient, alice_token: str
) -> None:
    filters = MessageFilters(
        unread=True,
        from_address="o'brien@fabrikam.test",
        to_address=ALICE,
        subject_contains="it's",
        has_attachments=False,
        importance="normal",
        received_after=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        received_before=datetime.fromisoformat("2026-03-01T00:00:00+01:00"),
    )
    for order_by in (None, "receivedDateTime asc"):
        params = ListQuery(filters=filters, order_by=order_by).params()  # type: ignore[arg-type]

        response = await graph.send(
            GraphRequest("GET", ME.messages(), params),
            token=alice_token,
            mailbox_key=ALICE,
            correlation_id="corr-all",
        )

        assert response.json()["value"] == []


async def test_search_reaches_graph_as_quoted_kql(graph: GraphClient, alice_token: str) -> None:
    response = await graph.send(
        GraphRequest("GET", ME.messages(), ListQuery(search="from:bob@contoso.test").params()),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-search",
    )

    senders = {m["from"]["emailAddress"]["address"] for m in response.json()["value"]}
    assert senders == {BOB}


async def test_paging_1200_messages_through_cursors(
    graph: GraphClient, alice_token: str, control: Callable[..., Any]
) -> None:
    control("POST", f"/users/{ALICE}/messages", json={"count": 1200, "folder": "archive"})
    codec = CursorCodec(b"c" * 32, graph.base_url, ttl_seconds=600)
    query = ListQuery(top=100, select=["subject"]).params()
    request = GraphRequest("GET", ME.folder_messages("archive"), query)
    ids: list[str] = []
    pages = 0
    while True:
        response = await graph.send(
            request, token=alice_token, mailbox_key=ALICE, correlation_id="corr-page"
        )
        pages += 1
        ids += [m["id"] for m in response.json()["value"]]
        link = response.json().get("@odata.nextLink")
        if link is None:
            break
        cursor = codec.encode(link, "conn-alice")
        with pytest.raises(InvalidCursor):
            codec.decode(cursor, "conn-bob")
        request = GraphRequest("GET", codec.decode(cursor, "conn-alice"))

    assert pages == 12
    assert len(ids) == len(set(ids)) == 1200


async def test_429_with_retry_after_then_success(
    graph: GraphClient, alice_token: str, control: Callable[..., Any]
) -> None:
    control(
        "POST",
        "/faults",
        json={
            "pathRegex": "/me/messages$",
            "status": 429,
            "headers": {"Retry-After": "1"},
            "body": {"error": {"code": "ApplicationThrottled", "message": "slow down"}},
            "times": 1,
        },
    )
    control("DELETE", "/requests")
    started = time.monotonic()

    response = await graph.send(
        GraphRequest("GET", ME.messages(), {"$top": "5"}),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-429",
    )

    assert response.status == 200
    assert time.monotonic() - started >= 1.0
    assert len(graph_requests(control)) == 2


async def test_503_three_times_then_success(
    sandbox: SandboxServer, alice_token: str, control: Callable[..., Any]
) -> None:
    control("POST", "/faults", json={"pathRegex": "/me/messages$", "status": 503, "times": 3})
    control("DELETE", "/requests")
    client = GraphClient(
        sandbox.graph_url,
        ca_bundle=sandbox.ca_bundle_path,
        retry=RetryPolicy(deadline_seconds=20, backoff_base_seconds=0.05),
    )
    async with client:
        response = await client.send(
            GraphRequest("GET", ME.messages(), {"$top": "5"}),
            token=alice_token,
            mailbox_key=ALICE,
            correlation_id="corr-503",
        )

    assert response.status == 200
    assert len(graph_requests(control)) == 4


async def test_persistent_503_gives_our_503_within_the_deadline(
    sandbox: SandboxServer, alice_token: str, control: Callable[..., Any]
) -> None:
    control("POST", "/faults", json={"pathRegex": "/me/messages$", "status": 503})
    settings = settings_for(sandbox, GRAPH_RETRY_DEADLINE_SECONDS="2")
    started = time.monotonic()

    async with GraphClient.from_settings(settings) as client:
        with pytest.raises(GraphUnavailable) as caught:
            await client.send(
                GraphRequest("GET", ME.messages()),
                token=alice_token,
                mailbox_key=ALICE,
                correlation_id="corr-503-forever",
            )

    assert time.monotonic() - started < 2.5
    assert caught.value.http_status == 503


async def test_persistent_503_with_retry_after_gives_throttled_503(
    sandbox: SandboxServer, alice_token: str, control: Callable[..., Any]
) -> None:
    control(
        "POST",
        "/faults",
        json={"pathRegex": "/me/messages$", "status": 503, "headers": {"Retry-After": "1"}},
    )
    settings = settings_for(sandbox, GRAPH_RETRY_DEADLINE_SECONDS="2.5")

    async with GraphClient.from_settings(settings) as client:
        with pytest.raises(GraphThrottled) as caught:
            await client.send(
                GraphRequest("GET", ME.messages()),
                token=alice_token,
                mailbox_key=ALICE,
                correlation_id="corr-503-ra",
            )

    assert caught.value.http_status == 503
    assert caught.value.headers["Retry-After"] == "1"


async def test_twenty_concurrent_requests_never_exceed_four_in_flight_at_graph(
    graph: GraphClient, alice_token: str, control: Callable[..., Any]
) -> None:
    # Each answer is held 400 ms at the sandbox. While a request is held, its client slot is
    # held too; so if more than 4 requests ever arrived within 350 ms, 5 would have been in
    # flight at once.
    latency_ms, window_ms = 400, 350
    control(
        "POST",
        "/faults",
        json={
            "pathRegex": "/me/messages$",
            "status": 200,
            "body": {"value": []},
            "latencyMs": latency_ms,
        },
    )
    control("DELETE", "/requests")

    async def one(n: int) -> int:
        response = await graph.send(
            GraphRequest("GET", ME.messages()),
            token=alice_token,
            mailbox_key=ALICE,
            correlation_id=f"corr-c{n}",
        )
        return response.status

    statuses = await asyncio.gather(*(one(n) for n in range(20)))

    assert statuses == [200] * 20
    arrivals = sorted(
        datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() * 1000
        for r in graph_requests(control)
    )
    assert len(arrivals) == 20
    peak = max(
        sum(1 for other in arrivals if start <= other < start + window_ms) for start in arrivals
    )
    assert 2 <= peak <= 4
    assert graph.limiter.tracked_mailboxes == 0


async def test_the_large_attachment_arrives_intact(
    graph: GraphClient, alice_token: str, control: Callable[..., Any]
) -> None:
    mailbox = control("GET", f"/users/{ALICE}/mailbox")
    [(message_id, attachment)] = [
        (m["id"], a)
        for m in mailbox["messages"]
        for a in m.get("attachments", [])
        if a["name"] == "dataset.bin"
    ]

    response = await graph.send(
        GraphRequest("GET", ME.attachment_content(message_id, attachment["id"])),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-att",
    )

    assert len(response.content) == attachment["size"] >= 4 * 1024 * 1024
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(large_payload()).digest()
    assert response.headers.get("content-type") == "application/octet-stream"


async def test_message_mime_comes_back_as_bytes(graph: GraphClient, alice_token: str) -> None:
    listed = await graph.send(
        GraphRequest("GET", ME.messages(), {"$top": "1", "$select": "id"}),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-mime",
    )
    message_id = listed.json()["value"][0]["id"]

    response = await graph.send(
        GraphRequest("GET", ME.message_mime(message_id)),
        token=alice_token,
        mailbox_key=ALICE,
        correlation_id="corr-mime",
    )

    assert response.headers.get("content-type", "").startswith("message/rfc822")
    assert b"Subject:" in response.content


async def test_shared_mailbox_allowed_for_alice_and_forbidden_for_bob(
    graph: GraphClient, sandbox: SandboxServer, alice_token: str
) -> None:
    shared = MailboxPath.of(SUPPORT)

    allowed = await graph.send(
        GraphRequest("GET", shared.messages(), {"$top": "50"}),
        token=alice_token,
        mailbox_key=SUPPORT,
        correlation_id="corr-shared",
    )
    with pytest.raises(Forbidden) as caught:
        await graph.send(
            GraphRequest("GET", shared.messages()),
            token=user_token(sandbox, BOB),
            mailbox_key=SUPPORT,
            correlation_id="corr-shared-bob",
        )

    assert len(allowed.json()["value"]) == 10
    assert caught.value.extensions["graphCode"] == "ErrorAccessDenied"
    assert "Access is denied" not in caught.value.detail


async def test_malformed_id_from_graph_is_a_validation_failure_and_unknown_is_not_found(
    graph: GraphClient, alice_token: str
) -> None:
    unknown = immutable_message_id(b"\x00" * 8, b"\x00" * 16)

    with pytest.raises(ValidationFailed) as malformed:
        await graph.send(
            GraphRequest("GET", ME.message("AAkALgnotreallyanid")),
            token=alice_token,
            mailbox_key=ALICE,
            correlation_id="corr-404",
        )
    with pytest.raises(NotFound):
        await graph.send(
            GraphRequest("GET", ME.message(unknown)),
            token=alice_token,
            mailbox_key=ALICE,
            correlation_id="corr-404",
        )

    assert malformed.value.extensions["graphCode"] == "ErrorInvalidIdMalformed"
