"""MailWriter on a scripted Graph: a send opens the mailbox once however many Graph calls it
makes, is audited once with all their request ids counted, and is refused before any Graph
call when the grant or the mailbox does not allow it."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from shared.audit import Outcome
from shared.errors import Forbidden, GraphError, ValidationFailed
from shared.mail.compose import AttachmentIn, MessagePatchBody, SendMessageBody
from tests.unit.mail.support import MESSAGE_ID, READER_APP, Rig, answer, rig

DRAFT_ID = "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0ADRAFT"
TO = [{"emailAddress": {"address": "bob@contoso.test"}}]


def send_body(attachment_bytes: int = 0, **fields: object) -> SendMessageBody:
    attachments = (
        [{"name": "big.bin", "contentBytes": base64.b64encode(b"x" * attachment_bytes).decode()}]
        if attachment_bytes
        else []
    )
    return SendMessageBody.model_validate(
        {"toRecipients": TO, "subject": "hi", "attachments": attachments, **fields}
    )


def draft_graph(request: httpx.Request) -> httpx.Response:
    """Graph for the draft path: create, attach, send (each with its own request id)."""
    path = request.url.path
    if path.endswith("/me/messages"):
        return answer(201, {"id": DRAFT_ID, "internetMessageId": "<m@x>"}, "rid-draft")
    if path.endswith("/attachments"):
        return answer(201, {"id": "att-1"}, "rid-attach")
    return answer(202, None, "rid-send")


async def test_a_send_with_several_graph_calls_opens_the_mailbox_once_and_authorizes_once() -> None:
    r = rig(draft_graph)
    mb = await r.open(write=True)

    # 2.5 MB of attachment is over sendMail's 3 MB of JSON once base64-encoded: draft path.
    sent = await r.writer().send(mb, send_body(attachment_bytes=2_500_000))

    assert r.graph.paths() == [
        "POST /me/messages",
        f"POST /me/messages/{DRAFT_ID}/attachments",
        f"POST /me/messages/{DRAFT_ID}/send",
    ]
    assert r.connections.authorizations == 1
    assert r.tokens.issued == 1
    assert sent.as_json() == {"id": DRAFT_ID, "internetMessageId": "<m@x>"}


async def test_a_send_is_audited_once_with_every_graph_request_counted() -> None:
    r = rig(draft_graph)
    mb = await r.open(write=True)

    await r.writer().send(mb, send_body(attachment_bytes=2_500_000))

    [event] = r.audit.events
    assert (event.action, event.outcome, event.mailbox) == (
        "mail.sent",
        Outcome.SUCCESS,
        "alice@contoso.test",
    )
    assert event.graph_request_id == "rid-send"
    assert event.counts == {"recipients": 1, "attachments": 1, "graphRequests": 3}
    assert event.caller_oid == "alice-oid"


async def test_a_small_send_is_one_send_mail_on_the_connected_users_mailbox() -> None:
    r = rig(lambda _: answer(202, None))
    mb = await r.open(write=True)

    sent = await r.writer().send(mb, send_body(saveToSentItems=False))

    assert r.graph.paths() == ["POST /me/sendMail"]
    payload = json.loads(r.graph.requests[0].content)
    assert payload["saveToSentItems"] is False
    assert payload["message"]["toRecipients"] == TO
    assert sent.as_json() == {"id": None, "internetMessageId": None}


async def test_a_write_on_a_handle_opened_for_reading_is_refused_and_audited() -> None:
    r = rig(lambda _: answer(body={}))
    mb = await r.open(READER_APP)

    with pytest.raises(Forbidden):
        await r.writer().update_message(mb, MESSAGE_ID, MessagePatchBody(isRead=True))

    assert r.graph.requests == []
    [event] = r.audit.events
    assert (event.outcome, event.reason) == (Outcome.FAILURE, "forbidden")


async def test_a_large_attachment_for_a_shared_mailbox_is_refused_before_graph() -> None:
    r = rig(draft_graph)
    mb = await r.open(mailbox="support@contoso.test", write=True)

    with pytest.raises(ValidationFailed):
        await r.writer().send(mb, send_body(attachment_bytes=3 * 1024 * 1024 + 1))

    assert r.graph.requests == []


async def test_a_draft_whose_attachment_fails_is_discarded() -> None:
    def graph(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/attachments"):
            return httpx.Response(500, json={"error": {"code": "InternalServerError"}})
        return draft_graph(request)

    r = rig(graph)
    mb = await r.open(write=True)

    with pytest.raises(GraphError):
        await r.writer().send(mb, send_body(attachment_bytes=2_500_000))

    assert r.graph.paths()[-1] == f"DELETE /me/messages/{DRAFT_ID}"


async def test_a_refused_token_mid_send_is_refreshed_once_and_the_send_completes() -> None:
    refused = {"done": False}

    def graph(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/attachments") and not refused["done"]:
            refused["done"] = True
            return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})
        return draft_graph(request)

    r = rig(graph)
    mb = await r.open(write=True)

    await r.writer().send(mb, send_body(attachment_bytes=2_500_000))

    assert r.tokens.refreshes == 1
    tokens = [q.headers["authorization"] for q in r.graph.requests]
    assert tokens == ["Bearer token-1", "Bearer token-1", "Bearer token-2", "Bearer token-2"]


def writer_rig() -> Rig:
    return rig(lambda _: answer(body={}))


async def test_limits_are_checked_before_graph_is_called() -> None:
    r = writer_rig()
    mb = await r.open(write=True)
    many = [{"emailAddress": {"address": f"u{i}@contoso.test"}} for i in range(501)]

    with pytest.raises(ValidationFailed):
        await r.writer().send(mb, SendMessageBody.model_validate({"toRecipients": many}))

    assert r.graph.requests == []


async def test_a_single_attachment_is_added_to_the_named_message() -> None:
    r = rig(lambda _: answer(201, {"id": "att-9"}))
    mb = await r.open(write=True)
    attachment = AttachmentIn(name="a.txt", contentBytes=base64.b64encode(b"hello").decode())

    added = await r.writer().add_attachment(mb, MESSAGE_ID, attachment)

    assert added["id"] == "att-9" and added["size"] == 5
    assert r.graph.paths() == [f"POST /me/messages/{MESSAGE_ID}/attachments"]
