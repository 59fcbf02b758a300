"""The mail control routes: bulk seeding and the mailbox view that other suites rely on."""

from __future__ import annotations

import base64

from tests.sandbox.graph.support import ALICE, Graph, mailbox, seed, user_token
from tests.support.sandbox import SandboxServer


def test_seed_returns_immutable_ids_that_graph_serves(sandbox: SandboxServer, alice: Graph) -> None:
    ids = seed(sandbox, ALICE, count=3, folder="junkemail", template={"subject": "Spam?"})

    listed = alice.get("/me/mailFolders/junkemail/messages").json()["value"]
    assert [m["id"] for m in listed] == ids
    assert {m["subject"] for m in listed} == {"Spam?"}
    assert all(m["isRead"] is False for m in listed)


def test_seed_defaults_to_one_message_in_the_inbox(sandbox: SandboxServer, alice: Graph) -> None:
    [new] = seed(sandbox, ALICE)

    message = alice.get(f"/me/messages/{new}").json()
    assert message["parentFolderId"] == alice.get("/me/mailFolders/inbox").json()["id"]


def test_seed_template_takes_graph_fields_and_attachments(
    sandbox: SandboxServer, alice: Graph
) -> None:
    [new] = seed(
        sandbox,
        ALICE,
        template={
            "subject": "Invoice",
            "from": {"emailAddress": {"name": "Billing", "address": "billing@example.test"}},
            "receivedDateTime": "2025-06-01T10:00:00Z",
            "importance": "high",
            "isRead": True,
            "flag": {"flagStatus": "flagged"},
            "categories": ["Finance"],
            "attachments": [
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "invoice.pdf",
                    "contentType": "application/pdf",
                    "contentBytes": base64.b64encode(b"%PDF").decode(),
                }
            ],
        },
    )

    message = alice.get(f"/me/messages/{new}").json()
    assert message["receivedDateTime"] == "2025-06-01T10:00:00Z"
    assert message["from"]["emailAddress"]["address"] == "billing@example.test"
    assert message["importance"] == "high"
    assert message["hasAttachments"] is True


def test_seed_rejects_unknown_template_fields(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        response = client.post(
            f"/_sandbox/users/{ALICE}/messages", json={"template": {"shoeSize": 1}}
        )

    assert response.status_code == 400


def test_unknown_user_or_folder_is_404(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        no_user = client.post("/_sandbox/users/nobody@contoso.test/messages", json={})
        no_view = client.get("/_sandbox/users/nobody@contoso.test/mailbox")
        no_folder = client.post(f"/_sandbox/users/{ALICE}/messages", json={"folder": "nope"})

    assert no_user.status_code == 404
    assert no_view.status_code == 404
    assert no_folder.status_code == 404


def test_mailbox_view_shape(sandbox: SandboxServer) -> None:
    state = mailbox(sandbox, ALICE)

    folder = state["folders"][0]
    assert {"id", "displayName", "wellKnownName", "parentFolderId"} <= set(folder)
    well_known = {f["wellKnownName"] for f in state["folders"]}
    assert {
        "inbox",
        "drafts",
        "sentitems",
        "deleteditems",
        "archive",
        "junkemail",
        "recoverableitemsdeletions",
        "outbox",
    } <= well_known
    message = state["messages"][0]
    assert {
        "id",
        "parentFolderId",
        "isRead",
        "isDraft",
        "flag",
        "categories",
        "importance",
        "subject",
        "from",
        "toRecipients",
    } <= set(message)


def test_a_new_user_gets_a_mailbox_with_well_known_folders(sandbox: SandboxServer) -> None:
    with sandbox.client() as client:
        client.post("/_sandbox/users", json={"upn": "carol@contoso.test"}).raise_for_status()

    graph = Graph(sandbox, user_token(sandbox, "carol@contoso.test"))
    try:
        folders = graph.get("/me/mailFolders").json()["value"]
    finally:
        graph.close()
    assert {f["displayName"] for f in folders} >= {"Inbox", "Drafts", "Sent Items"}
    assert mailbox(sandbox, "carol@contoso.test")["messages"] == []


def test_reset_restores_the_seed(sandbox: SandboxServer, alice: Graph) -> None:
    seed(sandbox, ALICE, count=5)
    before = alice.get("/me/mailFolders/inbox").json()["totalItemCount"]

    sandbox.reset()

    assert before == 35
    assert alice.get("/me/mailFolders/inbox").json()["totalItemCount"] == 30
