"""Who may touch which mailbox: tokens, delegated scopes, shared-mailbox grants, app roles."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sandbox.graph.support import (
    ALICE,
    BOB,
    SUPPORT,
    Graph,
    app_token,
    error_code,
    user_token,
)
from tests.support.sandbox import SandboxServer

SEND = {
    "message": {
        "subject": "Hi",
        "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
    }
}


def test_missing_token_is_invalid_authentication_token(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    with sandbox.client() as client:
        response = client.get("/v1.0/me/messages")

    assert response.status_code == 401
    assert error_code(response) == "InvalidAuthenticationToken"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_garbage_token_is_rejected(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    graph = make_graph("not.a.jwt")

    response = graph.get("/me/messages")

    assert response.status_code == 401
    assert error_code(response) == "InvalidAuthenticationToken"


def test_mail_read_may_read_but_not_write(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    graph = make_graph(user_token(sandbox, ALICE, ["Mail.Read"]))
    message = graph.get("/me/messages?$top=1").json()["value"][0]

    response = graph.patch(f"/me/messages/{message['id']}", json={"isRead": True})

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"
    assert response.json()["error"]["message"] == (
        "Access is denied. Check credentials and try again."
    )


def test_send_mail_without_mail_send_is_denied(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    graph = make_graph(user_token(sandbox, ALICE, ["Mail.ReadWrite"]))

    response = graph.post("/me/sendMail", json=SEND)

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"


def test_reading_without_any_mail_scope_is_denied(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    graph = make_graph(user_token(sandbox, ALICE, ["User.Read"]))

    response = graph.get("/me/messages")

    assert response.status_code == 403


def test_alice_reads_the_shared_mailbox_she_was_granted(alice: Graph) -> None:
    response = alice.get(f"/users/{SUPPORT}/mailFolders/inbox/messages?$count=true")

    assert response.status_code == 200
    assert response.json()["@odata.count"] == 10


def test_alice_sends_from_the_shared_mailbox(alice: Graph, bob: Graph) -> None:
    response = alice.post(f"/users/{SUPPORT}/sendMail", json=SEND)

    assert response.status_code == 202
    inbox = bob.get("/me/mailFolders/inbox/messages?$top=1").json()["value"][0]
    assert inbox["from"]["emailAddress"]["address"] == SUPPORT


def test_shared_mailbox_needs_a_shared_scope(
    sandbox: SandboxServer, make_graph: Callable[..., Graph]
) -> None:
    graph = make_graph(user_token(sandbox, ALICE, ["Mail.ReadWrite", "Mail.Send"]))

    response = graph.get(f"/users/{SUPPORT}/messages")

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"


def test_bob_has_no_grant_on_the_shared_mailbox(bob: Graph) -> None:
    response = bob.get(f"/users/{SUPPORT}/messages")

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"


def test_bob_cannot_read_alices_mailbox(bob: Graph) -> None:
    response = bob.get(f"/users/{ALICE}/messages")

    assert response.status_code == 403


def test_users_by_object_id_is_the_same_mailbox(sandbox: SandboxServer, alice: Graph) -> None:
    from sandbox.directory import stable_id

    by_upn = alice.get(f"/users/{ALICE}/messages?$top=1").json()["value"]
    by_id = alice.get(f"/users/{stable_id(ALICE)}/messages?$top=1").json()["value"]

    assert by_upn == by_id


def test_app_token_reaches_every_mailbox(app: Graph) -> None:
    for upn in (ALICE, BOB, SUPPORT):
        assert app.get(f"/users/{upn}/messages?$top=1").status_code == 200


def test_app_token_on_me_is_a_bad_request(app: Graph) -> None:
    response = app.get("/me/messages")

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


@pytest.mark.parametrize(
    ("roles", "method", "path", "allowed"),
    [
        (["Mail.Read"], "GET", "/users/bob@contoso.test/messages", True),
        (["Mail.Read"], "POST", "/users/bob@contoso.test/sendMail", False),
        (["Mail.Send"], "GET", "/users/bob@contoso.test/messages", False),
        (["Mail.Send"], "POST", "/users/bob@contoso.test/sendMail", True),
    ],
)
def test_app_roles_are_enforced(
    sandbox: SandboxServer,
    make_graph: Callable[..., Graph],
    roles: list[str],
    method: str,
    path: str,
    allowed: bool,
) -> None:
    graph = make_graph(app_token(sandbox, roles))
    payload = {"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": ALICE}}]}}

    response = graph.http.request(method, path, json=payload if method == "POST" else None)

    assert (response.status_code < 400) is allowed, response.text
    if not allowed:
        assert error_code(response) == "ErrorAccessDenied"
