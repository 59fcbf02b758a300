"""GraphClient: what every request carries, where it may go, and what comes back."""

from __future__ import annotations

import logging

import httpx
import pytest

from shared.config import load_settings
from shared.errors import NotFound
from shared.graph.client import GraphClient, GraphRequest, encode_query, path_template
from shared.graph.odata import ListQuery, MessageFilters
from shared.graph.paths import MailboxPath
from tests.support.app import sample_settings
from tests.unit.graph.support import BASE, TOKEN, graph_error, make_client, ok


async def send(client: GraphClient, request: GraphRequest) -> None:
    await client.send(request, token=TOKEN, mailbox_key="alice", correlation_id="corr-42")


async def test_every_request_carries_token_immutable_ids_and_correlation_id() -> None:
    client, graph, _ = make_client([ok()])

    await send(client, GraphRequest("GET", "/me/messages"))

    headers = graph.requests[0].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["prefer"] == 'IdType="ImmutableId"'
    assert headers["client-request-id"] == "corr-42"


async def test_other_preferences_are_merged_into_one_prefer_header() -> None:
    client, graph, _ = make_client([ok()])

    await send(
        client,
        GraphRequest("GET", "/me/messages", prefer=['outlook.body-content-type="text"']),
    )

    assert graph.requests[0].headers.get_list("prefer") == [
        'IdType="ImmutableId", outlook.body-content-type="text"'
    ]


async def test_a_caller_header_cannot_replace_the_token_or_correlation_id() -> None:
    client, graph, _ = make_client([ok()])

    with pytest.raises(ValueError):
        await send(client, GraphRequest("GET", "/me/messages", headers={"Authorization": "x"}))

    assert graph.requests == []


async def test_query_is_encoded_with_dollar_kept_and_spaces_as_percent_20() -> None:
    client, graph, _ = make_client([ok()])
    params = ListQuery(
        top=5, filters=MessageFilters(from_address="o'brien+x@contoso.test")
    ).params()

    await send(client, GraphRequest("GET", "/me/messages", params))

    url = str(graph.requests[0].url)
    assert url.startswith(f"{BASE}/me/messages?$top=5&$filter=")
    assert "from/emailAddress/address%20eq%20'o''brien%2Bx@contoso.test'" in url
    assert "+" not in url.split("?", 1)[1]


def test_encode_query_escapes_separators_in_values() -> None:
    assert encode_query({"$search": '"a&b=c#d"'}) == "$search=%22a%26b%3Dc%23d%22"


async def test_a_next_link_on_the_graph_base_url_is_followed_as_is() -> None:
    client, graph, _ = make_client([ok()])
    link = f"{BASE}/me/messages?$top=10&$skip=10"

    await send(client, GraphRequest("GET", link))

    assert str(graph.requests[0].url) == link


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.test/v1.0/me/messages",
        "http://graph.test/v1.0/me/messages",
        "https://graph.test:8443/v1.0/me/messages",
        "https://graph.test/beta/me/messages",
        "https://graph.test/v1.0/../beta/me",
        "https://user@graph.test/v1.0/me/messages",
        "https://graph.test.evil.test/v1.0/me",
        "//evil.test/v1.0/me",
        "/me/../../users/bob@contoso.test/messages",
        "/me/messages?$filter=x",
        "me/messages",
    ],
)
async def test_no_token_is_sent_outside_the_graph_base_url(url: str) -> None:
    client, graph, _ = make_client([ok()])

    with pytest.raises(ValueError):
        await send(client, GraphRequest("GET", url))

    assert graph.requests == []


async def test_redirects_are_not_followed() -> None:
    client, graph, _ = make_client(
        [httpx.Response(302, headers={"Location": "https://evil.test/steal"})]
    )

    response = await client.send(
        GraphRequest("GET", "/me/messages"), token=TOKEN, mailbox_key="a", correlation_id="c"
    )

    assert response.status == 302
    assert len(graph.requests) == 1


async def test_content_is_returned_as_bytes_without_json_parsing() -> None:
    mime = b"From: a@b\r\nSubject: \xff\r\n\r\nbody"
    client, _, _ = make_client(
        [httpx.Response(200, content=mime, headers={"content-type": "message/rfc822"})]
    )

    response = await client.send(
        GraphRequest("GET", MailboxPath.of(None).message_mime("AAkALgAAAA")),
        token=TOKEN,
        mailbox_key="a",
        correlation_id="c",
    )

    assert response.content == mime
    assert response.headers.get("content-type") == "message/rfc822"


async def test_graph_request_id_is_returned_for_audit() -> None:
    client, _, _ = make_client(
        [ok({"value": [], "@odata.nextLink": f"{BASE}/me/messages?$skip=5"})]
    )

    response = await client.send(
        GraphRequest("GET", "/me/messages"), token=TOKEN, mailbox_key="a", correlation_id="c"
    )

    assert response.request_id == "rid-1"
    assert response.json()["@odata.nextLink"] == f"{BASE}/me/messages?$skip=5"


async def test_errors_carry_graph_code_and_request_id_but_never_graph_message() -> None:
    error = graph_error(404, "ErrorItemNotFound")
    error.headers["request-id"] = "rid-404"
    client, _, _ = make_client([error])

    with pytest.raises(NotFound) as caught:
        await send(client, GraphRequest("GET", "/me/messages/AAkALgAAAA"))

    assert caught.value.extensions == {
        "graphCode": "ErrorItemNotFound",
        "graphRequestId": "rid-404",
    }
    assert "carol" not in caught.value.detail
    assert "secret" not in str(caught.value)


async def test_logs_hold_neither_token_nor_query_nor_mailbox(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _, _ = make_client([ok()])
    caplog.set_level(logging.DEBUG, logger="shared.graph")
    path = MailboxPath.of("support@contoso.test").messages()
    params = ListQuery(filters=MessageFilters(from_address="carol@fabrikam.test")).params()

    await send(client, GraphRequest("GET", path, params))

    text = caplog.text
    assert "/users/{mailbox}/messages" in text
    assert TOKEN not in text
    assert "carol" not in text
    assert "support@" not in text


def test_path_template_hides_ids_and_mailboxes() -> None:
    url = f"{BASE}/users/bob@contoso.test/messages/AAkALgAAAAAAAAAAAAAAAAAAAA%3D/attachments"

    assert path_template(url, BASE) == "/users/{mailbox}/messages/{id}/attachments"


async def test_client_from_settings_uses_the_configured_base_url_and_pool() -> None:
    env = {**sample_settings(), "CA_BUNDLE": "", "GRAPH_MAX_CONCURRENCY_PER_MAILBOX": "2"}
    settings = load_settings(env)

    async with GraphClient.from_settings(settings) as client:
        assert client.base_url == "https://127.0.0.1:5443/v1.0"
        assert client.limiter.max_in_flight == 2
        assert client.retry.deadline_seconds == 60
        assert client.retry.max_retry_after_seconds == 30
