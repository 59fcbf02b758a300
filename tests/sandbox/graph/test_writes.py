"""Writes: sendMail and delivery, drafts, PATCH, move/copy and ids, delete flavours, the
reply/forward family, and folder management."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.graph.support import ALICE, BOB, Graph, error_code, mailbox
from tests.support.sandbox import SandboxServer


def _to(*addresses: str) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": a}} for a in addresses]


def _first(graph: Graph, folder: str = "inbox", **params: Any) -> dict[str, Any]:
    return dict(
        graph.get(f"/me/mailFolders/{folder}/messages", params={"$top": 1, **params}).json()[
            "value"
        ][0]
    )


def _in_folder(sandbox: SandboxServer, upn: str, well_known: str) -> list[dict[str, Any]]:
    state = mailbox(sandbox, upn)
    folder = next(f["id"] for f in state["folders"] if f["wellKnownName"] == well_known)
    return [m for m in state["messages"] if m["parentFolderId"] == folder]


def test_send_mail_to_bob_lands_in_his_inbox_and_in_sent_items(
    sandbox: SandboxServer, alice: Graph, bob: Graph
) -> None:
    response = alice.post(
        "/me/sendMail",
        json={
            "message": {
                "subject": "Lunch?",
                "body": {"contentType": "text", "content": "Noon at the usual place."},
                "toRecipients": _to(BOB),
            }
        },
    )

    assert response.status_code == 202
    assert response.content == b""
    received = _first(bob)
    assert received["subject"] == "Lunch?"
    assert received["isRead"] is False
    assert received["from"]["emailAddress"]["address"] == ALICE
    sent = _in_folder(sandbox, ALICE, "sentitems")
    assert [m["subject"] for m in sent] == ["Lunch?"]
    assert sent[0]["isDraft"] is False


def test_send_mail_without_saving_leaves_sent_items_empty(
    sandbox: SandboxServer, alice: Graph
) -> None:
    alice.post(
        "/me/sendMail",
        json={"message": {"subject": "x", "toRecipients": _to(BOB)}, "saveToSentItems": False},
    )

    assert _in_folder(sandbox, ALICE, "sentitems") == []


def test_send_mail_with_an_attachment_delivers_it(alice: Graph, bob: Graph) -> None:
    alice.post(
        "/me/sendMail",
        json={
            "message": {
                "subject": "File",
                "toRecipients": _to(BOB),
                "attachments": [
                    {
                        "@odata.type": "#microsoft.graph.fileAttachment",
                        "name": "a.txt",
                        "contentType": "text/plain",
                        "contentBytes": "aGVsbG8=",
                    }
                ],
            }
        },
    )

    received = _first(bob)
    assert received["hasAttachments"] is True
    attachment = bob.get(f"/me/messages/{received['id']}/attachments").json()["value"][0]
    assert attachment["name"] == "a.txt"
    assert attachment["contentBytes"] == "aGVsbG8="


def test_send_mail_without_recipients_is_refused(alice: Graph) -> None:
    response = alice.post("/me/sendMail", json={"message": {"subject": "nobody"}})

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidRecipients"


def test_send_mail_with_an_unknown_property_is_refused(alice: Graph) -> None:
    response = alice.post(
        "/me/sendMail", json={"message": {"subject": "x", "toRecipients": _to(BOB), "colour": 1}}
    )

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"


def test_send_mail_with_an_unknown_parameter_is_refused(alice: Graph) -> None:
    response = alice.post(
        "/me/sendMail", json={"message": {"toRecipients": _to(BOB)}, "urgent": True}
    )

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"


def test_invalid_json_is_a_bad_request(alice: Graph) -> None:
    response = alice.post(
        "/me/sendMail", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert error_code(response) == "BadRequest"


def test_draft_lifecycle_create_patch_send(
    sandbox: SandboxServer, alice: Graph, bob: Graph
) -> None:
    created = alice.post("/me/messages", json={"subject": "Draft", "toRecipients": _to(BOB)})
    assert created.status_code == 201
    draft = created.json()
    assert draft["isDraft"] is True
    assert [m["id"] for m in _in_folder(sandbox, ALICE, "drafts")] == [draft["id"]]

    patched = alice.patch(f"/me/messages/{draft['id']}", json={"subject": "Final"})
    assert patched.status_code == 200
    assert patched.json()["subject"] == "Final"

    sent = alice.post(f"/me/messages/{draft['id']}/send")
    assert sent.status_code == 202
    assert _in_folder(sandbox, ALICE, "drafts") == []
    assert [m["subject"] for m in _in_folder(sandbox, ALICE, "sentitems")] == ["Final"]
    assert _first(bob)["subject"] == "Final"
    # The draft's immutable id now finds the copy in Sent Items (Microsoft's documented flow).
    copy = alice.get(f"/me/messages/{draft['id']}").json()
    assert copy["isDraft"] is False
    assert copy["parentFolderId"] == alice.get("/me/mailFolders/sentitems").json()["id"]


def test_sending_a_draft_without_recipients_is_refused(alice: Graph) -> None:
    draft = alice.post("/me/messages", json={"subject": "Nobody"}).json()

    response = alice.post(f"/me/messages/{draft['id']}/send")

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidRecipients"


def test_patch_read_flag_categories_importance(alice: Graph) -> None:
    message = _first(alice, **{"$filter": "isRead eq false"})

    response = alice.patch(
        f"/me/messages/{message['id']}",
        json={
            "isRead": True,
            "flag": {"flagStatus": "flagged"},
            "categories": ["Green category"],
            "importance": "low",
        },
    )

    body = response.json()
    assert response.status_code == 200
    assert body["isRead"] is True
    assert body["flag"]["flagStatus"] == "flagged"
    assert body["categories"] == ["Green category"]
    assert body["importance"] == "low"
    assert body["changeKey"] != message["changeKey"]
    assert body["lastModifiedDateTime"] >= message["lastModifiedDateTime"]


def test_patch_subject_of_a_received_message_is_refused(alice: Graph) -> None:
    message = _first(alice)

    response = alice.patch(f"/me/messages/{message['id']}", json={"subject": "edited"})

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidPropertyUpdateSentMessage"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"isRead": "yes"}, "RequestBodyRead"),
        ({"importance": "urgent"}, "RequestBodyRead"),
        ({"flag": {"flagStatus": "flagged", "colour": "red"}}, "RequestBodyRead"),
        ({"shoeSize": 42}, "RequestBodyRead"),
        ({"id": "AAMkAxyz"}, "ErrorInvalidPropertySet"),
    ],
)
def test_invalid_patch_bodies_are_refused(alice: Graph, body: dict[str, Any], code: str) -> None:
    message = _first(alice)

    response = alice.patch(f"/me/messages/{message['id']}", json=body)

    assert response.status_code == 400
    assert error_code(response) == code


def test_move_keeps_the_immutable_id_and_changes_the_regular_one(
    alice: Graph, alice_regular: Graph
) -> None:
    immutable_before = _first(alice)["id"]
    regular_before = _first(alice_regular)["id"]

    moved = alice.post(f"/me/messages/{immutable_before}/move", json={"destinationId": "archive"})

    assert moved.status_code == 201
    assert moved.json()["id"] == immutable_before
    assert moved.json()["parentFolderId"] == alice.get("/me/mailFolders/archive").json()["id"]
    regular_after = _first(alice_regular, "archive")["id"]
    assert regular_after != regular_before
    assert alice_regular.get(f"/me/messages/{regular_before}").status_code == 404
    assert alice.get(f"/me/messages/{immutable_before}").status_code == 200


def test_move_to_an_unknown_folder_fails(alice: Graph) -> None:
    message = _first(alice)

    response = alice.post(f"/me/messages/{message['id']}/move", json={"destinationId": "nope"})

    assert response.status_code == 400
    assert error_code(response) == "ErrorInvalidIdMalformed"


def test_copy_makes_a_new_message(alice: Graph) -> None:
    message = _first(alice)

    copied = alice.post(f"/me/messages/{message['id']}/copy", json={"DestinationId": "archive"})

    assert copied.status_code == 201
    assert copied.json()["id"] != message["id"]
    assert copied.json()["subject"] == message["subject"]
    assert alice.get(f"/me/messages/{message['id']}").status_code == 200


def test_delete_is_a_soft_delete_into_recoverable_items(
    sandbox: SandboxServer, alice: Graph
) -> None:
    message = _first(alice)

    response = alice.delete(f"/me/messages/{message['id']}")

    assert response.status_code == 204
    assert [m["id"] for m in _in_folder(sandbox, ALICE, "recoverableitemsdeletions")] == [
        message["id"]
    ]
    visible = alice.get("/me/messages?$top=100&$select=id").json()["value"]
    assert message["id"] not in {m["id"] for m in visible}
    deleted_items = alice.get("/me/mailFolders/deleteditems").json()
    assert deleted_items["totalItemCount"] == 0


def test_permanent_delete_purges(sandbox: SandboxServer, alice: Graph) -> None:
    message = _first(alice)

    response = alice.post(f"/me/messages/{message['id']}/permanentDelete")

    assert response.status_code == 204
    ids = {m["id"] for m in mailbox(sandbox, ALICE)["messages"]}
    assert message["id"] not in ids


def test_create_reply_makes_a_draft_to_the_sender(sandbox: SandboxServer, alice: Graph) -> None:
    original = _first(alice, **{"$filter": "from/emailAddress/address eq 'bob@contoso.test'"})

    response = alice.post(f"/me/messages/{original['id']}/createReply", json={"comment": "Thanks!"})

    draft = response.json()
    assert response.status_code == 201
    assert draft["isDraft"] is True
    assert draft["subject"] == f"RE: {original['subject']}"
    assert [r["emailAddress"]["address"] for r in draft["toRecipients"]] == [BOB]
    assert "Thanks!" in draft["body"]["content"]
    assert draft["conversationId"] == original["conversationId"]
    assert draft["id"] in {m["id"] for m in _in_folder(sandbox, ALICE, "drafts")}


def test_create_reply_all_includes_the_other_recipients_but_not_me(alice: Graph) -> None:
    original = _first(
        alice,
        **{"$filter": "ccRecipients/any(r:r/emailAddress/address eq 'support@contoso.test')"},
    )

    draft = alice.post(f"/me/messages/{original['id']}/createReplyAll").json()

    to = {r["emailAddress"]["address"] for r in draft["toRecipients"]}
    cc = {r["emailAddress"]["address"] for r in draft["ccRecipients"]}
    assert to == {original["from"]["emailAddress"]["address"]}
    assert cc == {"support@contoso.test"}
    assert ALICE not in to | cc


def test_create_forward_carries_the_attachments(alice: Graph) -> None:
    original = _first(alice, **{"$filter": "hasAttachments eq true"})

    draft = alice.post(
        f"/me/messages/{original['id']}/createForward", json={"toRecipients": _to(BOB)}
    ).json()

    assert draft["subject"] == f"FW: {original['subject']}"
    assert draft["hasAttachments"] is True
    assert [r["emailAddress"]["address"] for r in draft["toRecipients"]] == [BOB]


def test_comment_and_body_together_are_refused(alice: Graph) -> None:
    original = _first(alice)

    response = alice.post(
        f"/me/messages/{original['id']}/createReply",
        json={"comment": "x", "message": {"body": {"contentType": "text", "content": "y"}}},
    )

    assert response.status_code == 400


def test_reply_sends_at_once(sandbox: SandboxServer, alice: Graph, bob: Graph) -> None:
    original = _first(alice, **{"$filter": "from/emailAddress/address eq 'bob@contoso.test'"})

    response = alice.post(f"/me/messages/{original['id']}/reply", json={"comment": "Sure"})

    assert response.status_code == 202
    assert _in_folder(sandbox, ALICE, "drafts") == []
    assert _first(bob)["subject"] == f"RE: {original['subject']}"


def test_forward_sends_to_the_given_recipients(alice: Graph, bob: Graph) -> None:
    original = _first(alice)

    response = alice.post(
        f"/me/messages/{original['id']}/forward",
        json={"comment": "FYI", "toRecipients": _to(BOB)},
    )

    assert response.status_code == 202
    assert _first(bob)["subject"] == f"FW: {original['subject']}"


def test_folder_create_rename_delete(alice: Graph) -> None:
    created = alice.post("/me/mailFolders", json={"displayName": "Receipts"})
    assert created.status_code == 201
    folder = created.json()

    duplicate = alice.post("/me/mailFolders", json={"displayName": "receipts"})
    assert duplicate.status_code == 409
    assert error_code(duplicate) == "ErrorFolderExists"

    renamed = alice.patch(f"/me/mailFolders/{folder['id']}", json={"displayName": "Bills"})
    assert renamed.json()["displayName"] == "Bills"

    child = alice.post(f"/me/mailFolders/{folder['id']}/childFolders", json={"displayName": "2026"})
    assert child.json()["parentFolderId"] == folder["id"]

    assert alice.delete(f"/me/mailFolders/{folder['id']}").status_code == 204
    deleted_items = alice.get("/me/mailFolders/deleteditems/childFolders").json()["value"]
    assert [f["displayName"] for f in deleted_items] == ["Bills"]


def test_well_known_folders_cannot_be_deleted_or_renamed(alice: Graph) -> None:
    assert alice.delete("/me/mailFolders/inbox").status_code == 400
    assert alice.patch("/me/mailFolders/inbox", json={"displayName": "x"}).status_code == 400


def test_folder_with_unknown_property_is_refused(alice: Graph) -> None:
    response = alice.post("/me/mailFolders", json={"displayName": "x", "colour": "red"})

    assert response.status_code == 400
    assert error_code(response) == "RequestBodyRead"
