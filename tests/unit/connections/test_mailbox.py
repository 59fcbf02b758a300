"""ConnectedMailbox: opened once per request, it authorizes once, picks the mailbox path,
refreshes a refused token once (never twice) and collects Graph's request ids."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.errors import ConnectionNotFound, Forbidden, GraphError, ValidationFailed
from shared.graph import GraphRequest
from shared.graph.errors import GraphUnauthorized
from tests.unit.mail.support import (
    CONNECTION_ID,
    MALLORY,
    MESSAGE_ID,
    READER_APP,
    alice_connection,
    answer,
    rig,
)


def unauthorized() -> httpx.Response:
    return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})


async def test_the_own_mailbox_is_addressed_as_me_and_keyed_by_the_connections_upn() -> None:
    r = rig(lambda _: answer(body={"value": []}))

    mb = await r.open()
    await mb.send(GraphRequest("GET", mb.path.messages()))

    assert r.graph.paths() == ["GET /me/messages"]
    assert mb.key == "alice@contoso.test"
    assert not mb.is_shared


async def test_a_named_mailbox_is_addressed_under_users_and_is_the_limiter_key() -> None:
    r = rig(lambda _: answer(body={"value": []}))

    mb = await r.open(mailbox="Support@Contoso.test")
    await mb.send(GraphRequest("GET", mb.path.messages()))

    assert r.graph.paths() == ["GET /users/Support@Contoso.test/messages"]
    assert mb.key == "support@contoso.test"
    assert mb.is_shared


async def test_naming_the_connected_users_own_mailbox_is_not_a_shared_mailbox() -> None:
    r = rig(lambda _: answer())

    mb = await r.open(mailbox="alice@contoso.test")

    assert mb.path.root == "/users/alice@contoso.test"
    assert not mb.is_shared


async def test_a_malformed_mailbox_is_refused_before_any_token_or_graph_call() -> None:
    r = rig(lambda _: answer())

    with pytest.raises(ValidationFailed):
        await r.open(mailbox="../me")

    assert r.tokens.issued == 0 and r.graph.requests == []


async def test_someone_elses_connection_is_not_found_and_nothing_is_sent() -> None:
    r = rig(lambda _: answer())

    with pytest.raises(ConnectionNotFound):
        await r.mailboxes.open(MALLORY, CONNECTION_ID, correlation_id="c")

    assert r.tokens.issued == 0 and r.graph.requests == []


async def test_a_write_on_a_read_only_grant_is_refused_when_opening() -> None:
    r = rig(lambda _: answer())

    with pytest.raises(Forbidden):
        await r.open(READER_APP, write=True)

    assert r.graph.requests == []


async def test_a_handle_opened_for_reading_refuses_to_send_a_write() -> None:
    r = rig(lambda _: answer())
    mb = await r.open(READER_APP)

    with pytest.raises(Forbidden):
        await mb.send(GraphRequest("PATCH", mb.path.message(MESSAGE_ID), json={"isRead": True}))

    assert r.graph.requests == []


async def test_a_handle_opened_for_reading_sends_a_post_action_that_only_reads() -> None:
    r = rig(lambda _: answer(body={"value": []}))
    mb = await r.open(READER_APP)

    await mb.send(GraphRequest("POST", f"{mb.path.root}/getMailTips", json={}, reads_only=True))
    with pytest.raises(Forbidden):
        await mb.send(GraphRequest("POST", f"{mb.path.root}/getMailTips", json={}))

    assert r.graph.paths() == ["POST /me/getMailTips"]


async def test_sends_reuse_one_token_and_one_authorization() -> None:
    r = rig(lambda _: answer(body={}))
    mb = await r.open(write=True)

    for _ in range(3):
        await mb.send(GraphRequest("GET", mb.path.message(MESSAGE_ID)))

    assert r.connections.authorizations == 1
    assert r.tokens.issued == 1
    assert {req.headers["authorization"] for req in r.graph.requests} == {"Bearer token-1"}


async def test_a_refused_token_is_refreshed_once_and_the_request_sent_again() -> None:
    answers = iter([unauthorized(), answer(body={"id": "m"}, request_id="rid-2")])
    r = rig(lambda _: next(answers))
    mb = await r.open()

    response = await mb.send(GraphRequest("GET", mb.path.message(MESSAGE_ID)))

    assert response.json() == {"id": "m"}
    assert r.tokens.refreshes == 1
    assert r.tokens.forgotten == [CONNECTION_ID]
    auth = [req.headers["authorization"] for req in r.graph.requests]
    assert auth == ["Bearer token-1", "Bearer token-2"]


async def test_a_claims_challenge_is_answered_by_one_refresh_carrying_the_claims() -> None:
    import base64

    claims = '{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}'
    challenge = (
        'Bearer realm="", error="insufficient_claims", '
        f'claims="{base64.b64encode(claims.encode()).decode()}"'
    )
    answers = iter(
        [
            httpx.Response(401, headers={"WWW-Authenticate": challenge}),
            httpx.Response(401, headers={"WWW-Authenticate": challenge}),
        ]
    )
    r = rig(lambda _: next(answers))
    mb = await r.open()

    with pytest.raises(GraphUnauthorized):
        await mb.send(GraphRequest("GET", mb.path.messages()))

    assert len(r.tokens.claims) == 1 and "nbf" in r.tokens.claims[0]
    assert len(r.graph.requests) == 2  # one retry with the claims, never a loop


async def test_a_token_refused_again_after_the_refresh_is_not_refreshed_twice() -> None:
    r = rig(lambda _: unauthorized())
    mb = await r.open()

    with pytest.raises(GraphUnauthorized):
        await mb.send(GraphRequest("GET", mb.path.messages()))
    with pytest.raises(GraphUnauthorized):
        await mb.send(GraphRequest("GET", mb.path.messages()))

    assert r.tokens.refreshes == 1
    assert len(r.graph.requests) == 3  # first try, the retry, then the next send once


async def test_concurrent_sends_refused_together_share_one_refresh() -> None:
    stale: list[httpx.Request] = []
    all_sent = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] == "Bearer token-1":
            # Hold every first try until all four are out: all of them hold the old token.
            stale.append(request)
            if len(stale) == 4:
                all_sent.set()
            await all_sent.wait()
            return unauthorized()
        return answer(body={})

    r = rig(handler)
    mb = await r.open(write=True)

    await asyncio.gather(*(mb.send(GraphRequest("GET", mb.path.messages())) for _ in range(4)))

    assert r.tokens.refreshes == 1
    assert len(r.graph.requests) == 8


async def test_request_ids_of_successful_answers_are_collected_in_order() -> None:
    answers = iter(
        [
            answer(body={}, request_id="rid-a"),
            httpx.Response(404, json={"error": {"code": "ErrorItemNotFound"}}),
            answer(body={}, request_id="rid-b"),
        ]
    )
    r = rig(lambda _: next(answers))
    mb = await r.open()

    await mb.send(GraphRequest("GET", mb.path.messages()))
    with pytest.raises(Exception):  # noqa: B017 - the 404's type is not what this test is about
        await mb.send(GraphRequest("GET", mb.path.message(MESSAGE_ID)))
    await mb.send(GraphRequest("GET", mb.path.folders()))

    assert mb.request_ids == ("rid-a", "rid-b")
    assert mb.last_request_id == "rid-b"


async def test_a_system_handle_needs_no_caller_and_may_write() -> None:
    r = rig(lambda _: answer(status=201, body={"id": "sub"}))
    mb = r.mailboxes.system(alice_connection(), correlation_id="timer")

    await mb.send(GraphRequest("POST", "/subscriptions", json={}))

    assert mb.caller is None
    assert r.connections.authorizations == 0
    assert r.graph.paths() == ["POST /subscriptions"]


async def test_other_graph_errors_are_not_taken_for_a_refused_token() -> None:
    r = rig(lambda _: httpx.Response(500, json={"error": {"code": "InternalServerError"}}))
    mb = await r.open(write=True)

    with pytest.raises(GraphError):
        await mb.send(GraphRequest("POST", mb.path.send_mail(), json={}))

    assert r.tokens.refreshes == 0


async def test_pages_follow_next_links_with_the_first_prefer_until_the_delta_link() -> None:
    base = "https://graph.test/v1.0/me/mailFolders/inbox/messages/delta"
    bodies = iter(
        [
            {"value": [{"id": "a"}], "@odata.nextLink": f"{base}?$skiptoken=1"},
            {"value": [{"id": "b"}], "@odata.deltaLink": f"{base}?$deltatoken=2"},
        ]
    )
    r = rig(lambda _: answer(body=next(bodies)))
    mb = r.mailboxes.system(alice_connection(), correlation_id="timer")
    first = GraphRequest(
        "GET", "/me/mailFolders/inbox/messages/delta", prefer=("odata.maxpagesize=1000",)
    )

    pages = [page async for page in mb.pages(first, max_pages=10)]

    assert [p["value"][0]["id"] for p in pages] == ["a", "b"]
    assert pages[-1]["@odata.deltaLink"].endswith("$deltatoken=2")
    assert str(r.graph.requests[1].url).endswith("$skiptoken=1")
    assert all("odata.maxpagesize=1000" in q.headers["prefer"] for q in r.graph.requests)


async def test_pages_stop_at_max_pages() -> None:
    link = "https://graph.test/v1.0/me/messages?$skip=1"
    r = rig(lambda _: answer(body={"value": [], "@odata.nextLink": link}))
    mb = await r.open()

    pages = [page async for page in mb.pages(GraphRequest("GET", "/me/messages"), max_pages=3)]

    assert len(pages) == 3 and len(r.graph.requests) == 3
