"""Outlook settings in the sandbox: masterCategories, mailboxSettings (automatic replies),
getMailTips, and uniqueBody — with MailboxSettings permissions enforced as Graph does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.graph.unique_body import unique_body
from tests.sandbox.graph.support import (
    ALICE,
    ALL_MAIL,
    BOB,
    SUPPORT,
    Graph,
    app_token,
    error_code,
    seed,
    user_token,
)
from tests.sandbox.graph.test_csdl_fidelity import load_csdl
from tests.support.sandbox import SandboxServer

SETTINGS = [*ALL_MAIL, "MailboxSettings.ReadWrite"]


def _utc(day: int) -> dict[str, str]:
    return {"dateTime": f"2026-03-{day:02d}T00:00:00", "timeZone": "UTC"}


ON = {
    "status": "alwaysEnabled",
    "internalReplyMessage": "Out until Monday.",
    "externalReplyMessage": "I am away.",
}


@pytest.fixture
def settings_client(sandbox: SandboxServer) -> Iterator[Callable[[str], Graph]]:
    made: list[Graph] = []

    def make(upn: str) -> Graph:
        client = Graph(sandbox, user_token(sandbox, upn, SETTINGS), immutable=True)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_master_categories_list_outlooks_defaults_and_the_seeded_ones(
    settings_client: Callable[[str], Graph],
) -> None:
    response = settings_client(ALICE).get("/me/outlook/masterCategories")

    assert response.status_code == 200
    names = {c["displayName"]: c["color"] for c in response.json()["value"]}
    assert names["Red category"] == "preset0"
    assert names["Project"] == "preset9"
    assert all(set(c) == {"id", "displayName", "color"} for c in response.json()["value"])


def test_a_created_category_is_listed_and_a_duplicate_is_refused(
    settings_client: Callable[[str], Graph],
) -> None:
    alice = settings_client(ALICE)

    created = alice.post("/me/outlook/masterCategories", json={"displayName": "Escalated"})
    again = alice.post(
        "/me/outlook/masterCategories", json={"displayName": "escalated", "color": "preset2"}
    )

    assert created.status_code == 201
    assert created.json()["color"] == "none"
    assert again.status_code == 409
    listed = alice.get("/me/outlook/masterCategories").json()["value"]
    assert [c["displayName"] for c in listed].count("Escalated") == 1


def test_categories_need_a_mailbox_settings_permission(alice: Graph) -> None:
    response = alice.get("/me/outlook/masterCategories")  # Mail.* scopes only

    assert response.status_code == 403
    assert error_code(response) == "ErrorAccessDenied"


def test_another_users_settings_are_denied_to_a_delegated_token(
    settings_client: Callable[[str], Graph],
) -> None:
    alice = settings_client(ALICE)

    settings = alice.get(f"/users/{SUPPORT}/mailboxSettings")
    categories = alice.get(f"/users/{SUPPORT}/outlook/masterCategories")

    assert settings.status_code == 403
    assert categories.status_code == 403


def test_an_app_with_the_role_reads_any_users_settings(sandbox: SandboxServer) -> None:
    app = Graph(sandbox, app_token(sandbox, ["MailboxSettings.Read"]))
    try:
        response = app.get(f"/users/{BOB}/mailboxSettings/automaticRepliesSetting")
    finally:
        app.close()

    assert response.status_code == 200
    assert response.json()["status"] == "disabled"


def test_automatic_replies_start_disabled_with_every_csdl_property(
    settings_client: Callable[[str], Graph],
) -> None:
    whole = settings_client(ALICE).get("/me/mailboxSettings").json()
    csdl = load_csdl()

    replies = whole["automaticRepliesSetting"]
    assert replies["status"] == "disabled"
    assert set(replies) == set(csdl.types["automaticRepliesSetting"].properties)
    assert set(whole) - {"@odata.context"} <= set(csdl.types["mailboxSettings"].properties)


def test_patching_automatic_replies_merges_and_answers_what_changed(
    settings_client: Callable[[str], Graph],
) -> None:
    alice = settings_client(ALICE)

    response = alice.patch("/me/mailboxSettings", json={"automaticRepliesSetting": ON})

    assert response.status_code == 200
    assert set(response.json()) == {"@odata.context", "automaticRepliesSetting"}
    stored = alice.get("/me/mailboxSettings/automaticRepliesSetting").json()
    assert stored["status"] == "alwaysEnabled"
    assert stored["internalReplyMessage"] == "Out until Monday."
    assert stored["externalAudience"] == "all"  # not sent, kept


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"automaticRepliesSetting": {"status": "sometimes"}}, "RequestBodyRead"),
        ({"automaticRepliesSetting": {"mood": "away"}}, "RequestBodyRead"),
        ({"favouriteColour": "blue"}, "RequestBodyRead"),
        (
            {
                "automaticRepliesSetting": {
                    "status": "scheduled",
                    "scheduledStartDateTime": _utc(2),
                    "scheduledEndDateTime": _utc(1),
                }
            },
            "ErrorInvalidParameter",
        ),
    ],
)
def test_invalid_settings_are_refused(
    settings_client: Callable[[str], Graph], body: dict[str, Any], code: str
) -> None:
    response = settings_client(ALICE).patch("/me/mailboxSettings", json=body)

    assert response.status_code == 400
    assert error_code(response) == code


def test_patching_settings_needs_read_write(sandbox: SandboxServer) -> None:
    reader = Graph(sandbox, user_token(sandbox, ALICE, [*ALL_MAIL, "MailboxSettings.Read"]))
    try:
        response = reader.patch("/me/mailboxSettings", json={"automaticRepliesSetting": ON})
    finally:
        reader.close()

    assert response.status_code == 403


def test_mail_tips_show_a_colleagues_automatic_reply(
    settings_client: Callable[[str], Graph], alice: Graph
) -> None:
    settings_client(BOB).patch("/me/mailboxSettings", json={"automaticRepliesSetting": ON})

    response = alice.post(
        "/me/getMailTips",
        json={
            "EmailAddresses": [BOB, "someone@fabrikam.test"],
            "MailTipsOptions": "automaticReplies, recipientScope",
        },
    )

    assert response.status_code == 200
    bob, outsider = response.json()["value"]
    assert bob["emailAddress"]["address"] == BOB
    assert bob["automaticReplies"]["message"] == "Out until Monday."
    assert bob["recipientScope"] == "internal"
    assert outsider["automaticReplies"] == {"message": ""}
    assert outsider["recipientScope"] == "external"
    assert "mailboxFull" not in bob  # only what was asked for


def test_mail_tips_check_their_parameters(alice: Graph) -> None:
    unknown_option = alice.post(
        "/me/getMailTips", json={"EmailAddresses": [BOB], "MailTipsOptions": "mood"}
    )
    no_addresses = alice.post("/me/getMailTips", json={"MailTipsOptions": "automaticReplies"})
    nobody = alice.post(
        "/me/getMailTips",
        json={"EmailAddresses": ["nobody@contoso.test"], "MailTipsOptions": "mailboxFullStatus"},
    )

    assert unknown_option.status_code == 400
    assert no_addresses.status_code == 400
    assert nobody.json()["value"][0]["error"]["code"] == "UnknownRecipient"


def test_unique_body_leaves_out_the_quoted_history(sandbox: SandboxServer, alice: Graph) -> None:
    (message_id,) = seed(
        sandbox,
        ALICE,
        template={
            "body": {
                "contentType": "html",
                "content": "<html><body><p>Printer on floor 3 is jammed.</p>"
                '<div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> IT'
                "</div><p>Is it fixed?</p></body></html>",
            }
        },
    )

    response = alice.get(f"/me/messages/{message_id}", params={"$select": "body,uniqueBody"})

    unique = response.json()["uniqueBody"]["content"]
    assert "Printer on floor 3 is jammed." in unique
    assert "Is it fixed?" not in unique
    assert "Is it fixed?" in response.json()["body"]["content"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Thanks!\r\n\r\n-----Original Message-----\r\nFrom: x", "Thanks!"),
        ("Yes.\n\nOn Mon, 2 Feb 2026, Bob wrote:\n> Can you?", "Yes."),
        ("Fine.\n> quoted", "Fine."),
        ("No history here.", "No history here."),
    ],
)
def test_unique_body_of_plain_text(content: str, expected: str) -> None:
    assert unique_body({"contentType": "text", "content": content}) == {
        "contentType": "text",
        "content": expected,
    }
