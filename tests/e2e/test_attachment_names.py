"""Attachment names and types come from whoever sent the mail: control characters in them must
not break (or inject into) the download's headers. Dev host + sandbox + Azurite."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from tests.support.app import AppServer
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
HOSTILE_NAME = "report\r\nX-Injected: yes\x07\t\x7f.txt"


@pytest.fixture
def alice(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, ALICE)


def seed_attachment(sandbox: SandboxServer, name: str, content_type: str) -> str:
    """A message in Alice's inbox with one file attachment; its id."""
    template = {
        "subject": "Attachment with a hostile name",
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": content_type,
                "contentBytes": base64.b64encode(b"quarterly numbers\n").decode(),
            }
        ],
    }
    with sandbox.client() as control:
        seeded = control.post(f"/_sandbox/users/{ALICE}/messages", json={"template": template})
    assert seeded.status_code == 201, seeded.text
    [message_id] = seeded.json()["ids"]
    return str(message_id)


def test_control_characters_in_an_attachment_name_do_not_break_its_download(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed_attachment(sandbox, HOSTILE_NAME, "text/plain")
    [attachment] = alice.get(f"/messages/{message_id}/attachments").json()["value"]

    content = alice.get(f"/messages/{message_id}/attachments/{attachment['id']}/content")

    assert content.status_code == 200, content.text
    assert content.content == b"quarterly numbers\n"
    assert "x-injected" not in content.headers
    disposition = content.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="report')
    assert all(" " <= c < "\x7f" for c in disposition)
    assert f"filename*=UTF-8''{quote(HOSTILE_NAME, safe='')}" in disposition
    assert content.headers["content-type"] == "text/plain"
