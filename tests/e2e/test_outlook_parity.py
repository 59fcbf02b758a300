"""What Office 365 Outlook offers, through the app over real HTTP (dev host + sandbox +
Azurite): categories, automatic replies, mail tips, reply text without history, the simple
message actions, and recipients written as one `;`-separated string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from shared.mail.models import Message
from shared.mail.settings_models import AutomaticRepliesSetting, CategoryList, MailTipsList
from tests.support.app import AppServer
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
SUPPORT = "support@contoso.test"
HISTORY = (
    "<html><body><p>The printer on floor 3 is jammed again.</p>"
    '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> IT Desk'
    "<br><b>Subject:</b> Ticket 42</div><p>Is the printer fixed now?</p></body></html>"
)


@pytest.fixture
def alice(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, ALICE)


@pytest.fixture
def bob(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, BOB)


def graph_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        logged: list[dict[str, Any]] = control.get("/_sandbox/requests").json()
    return [r for r in logged if r["path"].startswith("/v1.0/")]


def clear_requests(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()


def mailbox(sandbox: SandboxServer, upn: str) -> dict[str, Any]:
    with sandbox.client() as control:
        view: dict[str, Any] = control.get(f"/_sandbox/users/{upn}/mailbox").json()
    return view


def stored(sandbox: SandboxServer, upn: str, message_id: str) -> dict[str, Any]:
    return next(m for m in mailbox(sandbox, upn)["messages"] if m["id"] == message_id)


def seed(sandbox: SandboxServer, upn: str, template: dict[str, Any]) -> str:
    with sandbox.client() as control:
        response = control.post(f"/_sandbox/users/{upn}/messages", json={"template": template})
        response.raise_for_status()
        ids: list[str] = response.json()["ids"]
    return ids[0]


# --- categories ---------------------------------------------------------------------------
def test_categories_list_the_mailboxs_master_categories(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    response = alice.get("/categories")

    assert response.status_code == 200, response.text
    listed = CategoryList.model_validate(response.json())
    colors = {c.displayName: c.color for c in listed.value}
    assert colors["Project"] == "preset9"
    assert colors["Red category"] == "preset0"
    assert all(c.id for c in listed.value)
    assert [r["path"] for r in graph_requests(sandbox)] == ["/v1.0/me/outlook/masterCategories"]


def test_a_shared_mailboxs_categories_are_asked_of_that_mailbox(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    response = alice.get("/categories", mailbox=SUPPORT)

    # Graph has no MailboxSettings.*.Shared permission: a delegated grant cannot read
    # another mailbox's settings, and the app says so as 403 rather than guessing.
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert graph_requests(sandbox)[0]["path"] == f"/v1.0/users/{SUPPORT}/outlook/masterCategories"


def test_someone_elses_connection_answers_404_for_settings(
    alice: Caller, bob: Caller, sandbox: SandboxServer, app_server: AppServer
) -> None:
    clear_requests(sandbox)

    response = bob.client.get(
        f"{app_server.url}/api/connections/{alice.connection_id}/automaticReplies"
    )

    assert response.status_code == 404
    assert response.json()["code"] == "connection_not_found"
    assert graph_requests(sandbox) == []


def test_what_the_folder_picker_reads_leads_to_a_child_folders_mail(alice: Caller) -> None:
    # The connector's tree: FoldersList (open), then FoldersChildren with the picked id
    # (browse), reading id, displayName and childFolderCount; the value lands in `folder`.
    top = alice.get("/folders").json()["value"]
    inbox = next(f for f in top if f["displayName"] == "Inbox")
    children = alice.get(f"/folders/{inbox['id']}/children").json()["value"]
    projects = next(f for f in children if f["displayName"] == "Projects")

    listed = alice.get("/messages", folder=projects["id"])

    assert inbox["childFolderCount"] >= 1
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["value"]) == 2


def test_what_the_category_picker_reads_assigns_a_category(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, ALICE, {"subject": "Pick one"})
    picked = alice.get("/categories").json()["value"][0]["displayName"]

    response = alice.post(f"/messages/{message_id}/assignCategory", {"category": picked})

    assert response.json()["categories"] == [picked]


# --- automatic replies and mail tips ------------------------------------------------------
def test_automatic_replies_start_off(alice: Caller) -> None:
    response = alice.get("/automaticReplies")

    assert response.status_code == 200, response.text
    setting = AutomaticRepliesSetting.model_validate(response.json())
    assert setting.status == "disabled"
    assert setting.scheduledStartDateTime is not None


def test_turning_automatic_replies_on_shows_in_a_colleagues_mail_tips(
    alice: Caller, bob: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    changed = bob.patch(
        "/automaticReplies",
        {
            "status": "scheduled",
            "internalReplyMessage": "Away until Monday; ask Alice.",
            "scheduledStartDateTime": {"dateTime": "2026-01-01T00:00:00", "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": "2099-01-01T00:00:00", "timeZone": "UTC"},
        },
    )
    tips = alice.post(
        "/mailTips",
        {
            "emailAddresses": f"{BOB}; carol@fabrikam.test",
            "mailTipsOptions": ["automaticReplies", "recipientScope"],
        },
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "scheduled"
    assert changed.json()["externalAudience"] == "all"  # not sent, so unchanged
    assert bob.get("/automaticReplies").json()["internalReplyMessage"].startswith("Away")
    assert tips.status_code == 200, tips.text
    bob_tips, carol_tips = MailTipsList.model_validate(tips.json()).value
    assert bob_tips.automaticReplies is not None
    assert bob_tips.automaticReplies.message == "Away until Monday; ask Alice."
    assert bob_tips.recipientScope == "internal"
    assert carol_tips.recipientScope == "external"
    sent = [r for r in graph_requests(sandbox) if r["method"] in ("PATCH", "POST")]
    assert sent[0]["path"] == "/v1.0/me/mailboxSettings"
    assert set(sent[0]["body"]) == {"automaticRepliesSetting"}
    assert sent[1]["body"] == {
        "EmailAddresses": [BOB, "carol@fabrikam.test"],
        "MailTipsOptions": "automaticReplies, recipientScope",
    }


def test_settings_are_audited_without_their_texts(
    alice: Caller, settings_env: dict[str, str]
) -> None:
    message = "Back on the 12th; for invoices write to billing."
    alice.patch("/automaticReplies", {"status": "alwaysEnabled", "internalReplyMessage": message})
    alice.get("/categories")
    audit = Path(settings_env["AUDIT_LOG_PATH"]).read_text()

    events = [json.loads(line) for line in audit.splitlines()]
    mine = [e for e in events if e.get("connection_id") == alice.connection_id]
    assert mine[-2]["action"] == "mailbox.automatic_replies_updated"
    assert mine[-2]["outcome"] == "success" and mine[-2]["graph_request_id"]
    assert mine[-1]["action"] == "mail.read" and mine[-1]["counts"]["items"] >= 7
    assert message not in audit


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "status": "scheduled",
                "scheduledStartDateTime": {"dateTime": "2026-03-02T00:00:00"},
                "scheduledEndDateTime": {"dateTime": "2026-03-01T00:00:00"},
            },
            ["body"],
        ),
        ({"status": "sometimes"}, ["body", "status"]),
        ({}, ["body"]),
    ],
)
def test_bad_automatic_replies_are_refused_before_graph(
    alice: Caller, sandbox: SandboxServer, body: dict[str, Any], field: list[str]
) -> None:
    clear_requests(sandbox)

    response = alice.patch("/automaticReplies", body)

    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"][0]["loc"] == field
    assert graph_requests(sandbox) == []


def test_mail_tips_refuse_an_address_that_is_none(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)

    response = alice.post("/mailTips", {"emailAddresses": "bob@contoso.test; bob at contoso"})

    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", "emailAddresses"]
    assert "entry 2 is not an email address" in error["msg"]
    assert "bob at contoso" not in response.text
    assert graph_requests(sandbox) == []


# --- reply text without history -----------------------------------------------------------
def test_body_unique_answers_the_new_text_without_the_quoted_history(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, ALICE, {"body": {"contentType": "html", "content": HISTORY}})
    clear_requests(sandbox)

    unique = alice.get(f"/messages/{message_id}", body="unique", bodyType="text")
    full = alice.get(f"/messages/{message_id}", bodyType="text")

    assert unique.status_code == 200, unique.text
    Message.model_validate(unique.json())
    assert "body" not in unique.json()
    assert unique.json()["uniqueBody"]["content"] == "The printer on floor 3 is jammed again."
    assert "Is the printer fixed now?" in full.json()["body"]["content"]
    select = parse_qs(graph_requests(sandbox)[0]["query"])["$select"][0].split(",")
    assert "uniqueBody" in select and "body" not in select
    assert unique.json()["subject"] == full.json()["subject"]


def test_a_replys_unique_body_is_what_the_replier_wrote(
    alice: Caller, bob: Caller, sandbox: SandboxServer
) -> None:
    asked = alice.post(
        "/messages/send",
        {"subject": "Printer", "body": {"content": "Is it fixed?"}, "toRecipients": BOB},
    )
    assert asked.status_code == 202, asked.text
    question = bob.get("/messages", subjectContains="Printer").json()["value"][0]
    replied = bob.post(f"/messages/{question['id']}/reply", {"comment": "Fixed this morning."})
    assert replied.status_code == 202, replied.text
    answer = alice.get("/messages", subjectContains="RE: Printer").json()["value"][0]

    response = alice.get(f"/messages/{answer['id']}", body="unique", bodyType="text")

    assert response.json()["uniqueBody"]["content"] == "Fixed this morning."


def test_body_takes_only_full_or_unique(alice: Caller) -> None:
    message_id = alice.get("/messages", top=1).json()["value"][0]["id"]

    response = alice.get(f"/messages/{message_id}", body="latest")

    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["query", "body"]


# --- flag, mark read or unread, assign a category -----------------------------------------
def test_flag_email_flags_it_and_can_complete_and_clear(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, ALICE, {"subject": "Follow me up"})

    flagged = alice.post(f"/messages/{message_id}/flag", {})
    completed = alice.post(f"/messages/{message_id}/flag", {"flagStatus": "complete"})
    after_complete = stored(sandbox, ALICE, message_id)["flag"]["flagStatus"]
    cleared = alice.post(f"/messages/{message_id}/flag", {"flagStatus": "notFlagged"})

    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["flag"]["flagStatus"] == "flagged"
    assert completed.json()["flag"]["flagStatus"] == "complete"
    assert after_complete == "complete"
    assert cleared.json()["flag"]["flagStatus"] == "notFlagged"
    assert stored(sandbox, ALICE, message_id)["flag"]["flagStatus"] == "notFlagged"


def test_mark_as_read_or_unread(alice: Caller, sandbox: SandboxServer) -> None:
    message_id = seed(sandbox, ALICE, {"subject": "Unread at first"})  # seeded unread

    read = alice.post(f"/messages/{message_id}/markRead", {})
    is_read_then = stored(sandbox, ALICE, message_id)["isRead"]
    unread = alice.post(f"/messages/{message_id}/markRead", {"isRead": False})

    assert read.status_code == 200, read.text
    assert is_read_then is True
    assert unread.json()["isRead"] is False
    assert stored(sandbox, ALICE, message_id)["isRead"] is False


def test_assign_a_category_keeps_the_ones_it_has_and_adds_no_duplicate(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, ALICE, {"categories": ["Blue category"]})

    first = alice.post(f"/messages/{message_id}/assignCategory", {"category": "Project"})
    again = alice.post(f"/messages/{message_id}/assignCategory", {"category": "project"})

    assert first.status_code == 200, first.text
    assert first.json()["categories"] == ["Blue category", "Project"]
    assert again.json()["categories"] == ["Blue category", "Project"]
    assert stored(sandbox, ALICE, message_id)["categories"] == ["Blue category", "Project"]


def test_actions_on_a_shared_mailbox_go_to_that_mailbox(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, SUPPORT, {"subject": "Ticket"})

    response = alice.post(f"/messages/{message_id}/flag", {}, mailbox=SUPPORT)

    assert response.status_code == 200, response.text
    assert stored(sandbox, SUPPORT, message_id)["flag"]["flagStatus"] == "flagged"


def test_an_action_with_a_bad_body_is_a_400_before_graph(
    alice: Caller, sandbox: SandboxServer
) -> None:
    message_id = seed(sandbox, ALICE, {"subject": "x"})
    clear_requests(sandbox)

    flag = alice.post(f"/messages/{message_id}/flag", {"flagStatus": "urgent"})
    category = alice.post(f"/messages/{message_id}/assignCategory", {"category": ""})

    assert flag.status_code == 400 and flag.json()["code"] == "validation_failed"
    assert category.status_code == 400
    assert graph_requests(sandbox) == []


# --- recipients as a string ---------------------------------------------------------------
def test_send_takes_recipients_as_a_semicolon_separated_string(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    response = alice.post(
        "/messages/send",
        {
            "subject": "Semicolons",
            "body": {"content": "Hello"},
            "toRecipients": f"{BOB}; Carol Jones <carol@fabrikam.test>",
            "ccRecipients": [{"emailAddress": {"address": SUPPORT}}],
        },
    )

    assert response.status_code == 202, response.text
    (send,) = [r for r in graph_requests(sandbox) if r["path"].endswith("/sendMail")]
    assert send["body"]["message"]["toRecipients"] == [
        {"emailAddress": {"address": BOB}},
        {"emailAddress": {"address": "carol@fabrikam.test", "name": "Carol Jones"}},
    ]
    assert any(m["subject"] == "Semicolons" for m in mailbox(sandbox, BOB)["messages"])


def test_a_draft_and_a_forward_take_the_string_form_too(
    alice: Caller, sandbox: SandboxServer
) -> None:
    draft = alice.post("/drafts", {"subject": "Draft", "toRecipients": f"{BOB};{SUPPORT}"})
    original = alice.get("/messages", top=1).json()["value"][0]
    forward = alice.post(f"/messages/{original['id']}/forward", {"toRecipients": BOB})

    assert draft.status_code == 201, draft.text
    assert [r["emailAddress"]["address"] for r in draft.json()["toRecipients"]] == [BOB, SUPPORT]
    assert forward.status_code == 202, forward.text


def test_an_invalid_address_in_the_string_is_a_clear_field_error(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    response = alice.post(
        "/messages/send",
        {"subject": "x", "toRecipients": f"{BOB}; bob(at)contoso.test"},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_failed"
    assert body["errors"] == [
        {
            "loc": ["body", "toRecipients"],
            "msg": "Value error, entry 2 is not an email address (write name@domain, "
            "separated by ';')",
        }
    ]
    assert graph_requests(sandbox) == []
