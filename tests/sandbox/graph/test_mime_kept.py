"""`$value` renderings kept with the message (sandbox/graph/mime.py): the same bytes as a
fresh rendering, and a new rendering as soon as the message changes."""

from __future__ import annotations

import base64

from sandbox.graph.mime import _render, message_mime
from sandbox.graph.store import Message
from tests.sandbox.graph.support import ALICE, Graph, seed
from tests.support.sandbox import SandboxServer


def _message() -> Message:
    props = {
        "subject": "Quarterly report",
        "from": {"emailAddress": {"name": "Ann", "address": "ann@contoso.test"}},
        "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
        "sentDateTime": "2026-01-02T03:04:05Z",
        "internetMessageId": "<q1@contoso.test>",
        "body": {"contentType": "text", "content": "A long line of text. " * 40},
    }
    return Message(b"key", "imm", "reg", "folder", props, seq=7, changed=7)


def test_a_kept_rendering_is_the_bytes_a_fresh_one_gives() -> None:
    message = _message()

    first = message_mime(message)

    assert message_mime(message) is first  # served from the message
    assert first == _render(message)


def test_a_changed_message_is_rendered_again() -> None:
    message = _message()
    message_mime(message)

    message.props["subject"] = "Corrected report"
    message.changed = 8  # as MailStore.touch does on every change

    assert b"Subject: Corrected report" in message_mime(message)
    assert message_mime(message) == _render(message)


def test_a_message_rendered_at_seeding_gains_its_new_attachment(
    sandbox: SandboxServer, alice: Graph
) -> None:
    [message_id] = seed(sandbox, ALICE, count=1, renderMime=True)
    before = alice.get(f"/me/messages/{message_id}/$value")
    assert alice.get(f"/me/messages/{message_id}/$value").content == before.content

    added = alice.post(
        f"/me/messages/{message_id}/attachments",
        json={
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": "later.txt",
            "contentBytes": base64.b64encode(b"added later").decode(),
        },
    )
    assert added.status_code == 201, added.text
    after = alice.get(f"/me/messages/{message_id}/$value")

    assert b'filename="later.txt"' in after.content
    assert after.content != before.content


def test_render_mime_must_be_a_boolean(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        response = control.post(
            f"/_sandbox/users/{ALICE}/messages", json={"count": 1, "renderMime": "yes"}
        )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
