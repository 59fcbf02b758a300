"""Delta sync states that expire on demand, and `$value` MIME that is the same bytes each
time for an unchanged message (what an archiver's digests rely on)."""

from __future__ import annotations

import base64

from tests.sandbox.graph.support import ALICE, Graph, error_code, seed
from tests.support.sandbox import SandboxServer


def _expire(sandbox: SandboxServer, upn: str = ALICE) -> dict[str, object]:
    with sandbox.client() as control:
        response = control.post(f"/_sandbox/users/{upn}/delta/expire")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_expired_delta_token_answers_410_sync_state_not_found(
    sandbox: SandboxServer, alice: Graph
) -> None:
    first = alice.get("/me/mailFolders/inbox/messages/delta").json()
    while "@odata.nextLink" in first:
        first = alice.get(first["@odata.nextLink"]).json()
    delta_link = first["@odata.deltaLink"]

    _expire(sandbox)
    response = alice.get(delta_link)

    assert response.status_code == 410
    assert error_code(response) == "syncStateNotFound"


def test_an_expired_skip_token_answers_410_too(sandbox: SandboxServer, alice: Graph) -> None:
    page = alice.get(
        "/me/mailFolders/inbox/messages/delta",
        headers={"Prefer": 'odata.maxpagesize=5, IdType="ImmutableId"'},
    ).json()

    _expire(sandbox)
    response = alice.get(page["@odata.nextLink"])

    assert response.status_code == 410
    assert error_code(response) == "syncStateNotFound"


def test_a_fresh_round_after_expiry_works_and_sees_everything(
    sandbox: SandboxServer, alice: Graph
) -> None:
    _expire(sandbox)
    values = []
    body = alice.get("/me/mailFolders/inbox/messages/delta").json()
    values += body["value"]
    while "@odata.nextLink" in body:
        body = alice.get(body["@odata.nextLink"]).json()
        values += body["value"]

    assert len(values) == 30
    assert alice.get(body["@odata.deltaLink"]).status_code == 200


def test_expiring_an_unknown_user_is_404(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        response = control.post("/_sandbox/users/nobody@contoso.test/delta/expire")

    assert response.status_code == 404


def test_mime_of_an_unchanged_message_is_the_same_bytes_each_time(
    sandbox: SandboxServer, alice: Graph
) -> None:
    template = {
        "subject": "With attachment",
        "attachments": [
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": "a.txt",
                "contentType": "text/plain",
                "contentBytes": base64.b64encode(b"hello").decode(),
            }
        ],
    }
    [message_id] = seed(sandbox, ALICE, count=1, template=template)

    first = alice.get(f"/me/messages/{message_id}/$value")
    second = alice.get(f"/me/messages/{message_id}/$value")

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("message/rfc822")
    assert b"multipart/mixed" in first.content
    assert b'filename="a.txt"' in first.content
    assert first.content == second.content
