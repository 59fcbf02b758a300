"""MailReader on a scripted Graph: one open per read, the documented fields only, cursors
that carry Graph's next link, and an audit event per read with Graph's request id."""

from __future__ import annotations

import httpx
import pytest

from shared.errors import ConnectionNotFound, InvalidCursor
from shared.graph import ListQuery
from tests.unit.mail.support import ALICE, CONNECTION_ID, MALLORY, MESSAGE_ID, answer, rig

ATTACHMENT_ID = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AATTACH"
NEXT = "https://graph.test/v1.0/me/mailFolders/inbox/messages?$skip=25"


async def test_a_read_with_two_graph_calls_opens_the_mailbox_once_and_authorizes_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/$value"):
            return httpx.Response(200, content=b"%PDF", headers={"request-id": "rid-2"})
        return answer(body={"id": ATTACHMENT_ID, "name": "a.pdf", "contentType": "application/pdf"})

    r = rig(handler)

    content = await r.reader().attachment_content(
        ALICE, CONNECTION_ID, MESSAGE_ID, ATTACHMENT_ID, None, "corr"
    )

    assert (content.data, content.content_type, content.filename) == (
        b"%PDF",
        "application/pdf",
        "a.pdf",
    )
    assert len(r.graph.requests) == 2
    assert r.connections.authorizations == 1
    assert r.tokens.issued == 1


async def test_someone_elses_connection_is_not_found_and_graph_is_not_called() -> None:
    r = rig(lambda _: answer(body={"value": []}))

    with pytest.raises(ConnectionNotFound):
        await r.reader().get_mime(MALLORY, CONNECTION_ID, MESSAGE_ID, None, "corr")

    assert r.graph.requests == []


async def test_only_documented_fields_reach_the_caller() -> None:
    r = rig(lambda _: answer(body={"id": MESSAGE_ID, "subject": "s", "internalThing": 1}))

    message = await r.reader().get_message(
        ALICE,
        CONNECTION_ID,
        MESSAGE_ID,
        body_type="text",
        include_attachments=False,
        mailbox=None,
        correlation_id="corr",
    )

    assert message == {"id": MESSAGE_ID, "subject": "s"}
    assert 'outlook.body-content-type="text"' in r.graph.requests[0].headers["prefer"]


async def test_a_page_keeps_only_documented_fields_in_graphs_order() -> None:
    item = {
        "@odata.etag": 'W/"x"',
        "subject": "s",
        "id": MESSAGE_ID,
        "internalThing": {"nested": 1},
        "isRead": False,
    }
    r = rig(lambda _: answer(body={"@odata.context": "ctx", "value": [item, dict(item)]}))

    page = await r.reader().list_messages(
        ALICE,
        CONNECTION_ID,
        folder="inbox",
        query=ListQuery(),
        cursor=None,
        mailbox=None,
        correlation_id="corr",
    )

    assert [list(m.items()) for m in page.items] == [
        [("subject", "s"), ("id", MESSAGE_ID), ("isRead", False)]
    ] * 2


async def test_a_page_with_a_next_link_gives_a_cursor_that_fetches_that_link() -> None:
    bodies = iter([{"value": [{"id": "m1"}], "@odata.nextLink": NEXT}, {"value": [{"id": "m2"}]}])
    r = rig(lambda _: answer(body=next(bodies)))
    reader = r.reader()

    async def page(cursor: str | None) -> tuple[list[str], str | None]:
        listed = await reader.list_messages(
            ALICE,
            CONNECTION_ID,
            folder="inbox",
            query=ListQuery(top=25),
            cursor=cursor,
            mailbox=None,
            correlation_id="corr",
        )
        return [m["id"] for m in listed.items], listed.next_cursor

    first, cursor = await page(None)
    second, last = await page(cursor)

    assert (first, second, last) == (["m1"], ["m2"], None)
    assert str(r.graph.requests[1].url) == NEXT


async def test_an_altered_cursor_is_refused_before_graph_is_called() -> None:
    r = rig(lambda _: answer(body={"value": []}))

    with pytest.raises(InvalidCursor):
        await r.reader().list_folders(
            ALICE, CONNECTION_ID, parent=None, cursor="abc.def", mailbox=None, correlation_id="c"
        )

    assert r.graph.requests == []


async def test_attachment_lists_page_with_their_cursor() -> None:
    link = f"https://graph.test/v1.0/me/messages/{MESSAGE_ID}/attachments?$skip=10"
    bodies = iter([{"value": [{"id": "a1"}], "@odata.nextLink": link}, {"value": [{"id": "a2"}]}])
    r = rig(lambda _: answer(body=next(bodies)))
    reader = r.reader()

    first = await reader.list_attachments(ALICE, CONNECTION_ID, MESSAGE_ID, None, None, "c")
    second = await reader.list_attachments(
        ALICE, CONNECTION_ID, MESSAGE_ID, first.next_cursor, None, "c"
    )

    assert [a["id"] for a in second.items] == ["a2"]
    assert str(r.graph.requests[1].url) == link
    # The first request never asks for contentBytes: a list of metadata only.
    assert "contentBytes" not in r.graph.requests[0].url.params["$select"]


async def test_a_shared_mailbox_is_read_under_users_and_audited_as_that_mailbox() -> None:
    r = rig(lambda _: answer(body={"value": [{"id": "f1"}]}, request_id="rid-9"))

    await r.reader().list_folders(
        ALICE,
        CONNECTION_ID,
        parent=None,
        cursor=None,
        mailbox="Support@Contoso.test",
        correlation_id="corr-7",
    )

    assert r.graph.paths() == ["GET /users/Support@Contoso.test/mailFolders?$top=100"]
    [event] = r.audit.events
    assert (event.action, event.mailbox, event.graph_request_id, event.correlation_id) == (
        "mail.read",
        "support@contoso.test",
        "rid-9",
        "corr-7",
    )
    assert event.counts == {"items": 1}
