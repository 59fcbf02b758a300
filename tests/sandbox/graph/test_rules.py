"""Inbox rules in the sandbox: Graph's messageRule resource (MailboxSettings permissions,
Graph-shaped refusals) and the rules running on delivery, with change notifications where
Exchange sends them."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.sandbox.graph.support import (
    ALICE,
    ALL_MAIL,
    BOB,
    Graph,
    app_token,
    error_code,
    mailbox,
    seed,
    user_token,
)
from tests.sandbox.graph.test_csdl_fidelity import check_object, load_csdl
from tests.support.receiver import start_receiver
from tests.support.sandbox import SandboxServer

RULES = "/me/mailFolders/inbox/messageRules"
SETTINGS = [*ALL_MAIL, "MailboxSettings.ReadWrite"]
BOSS = {"emailAddress": {"name": "The Boss", "address": "boss@example.test"}}


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[Callable[..., Graph]]:
    made: list[Graph] = []

    def make(upn: str = ALICE, scopes: list[str] | None = None) -> Graph:
        graph = Graph(sandbox, user_token(sandbox, upn, scopes or SETTINGS), immutable=True)
        made.append(graph)
        return graph

    yield make
    for graph in made:
        graph.close()


@pytest.fixture
def alice_rules(client: Callable[..., Graph]) -> Graph:
    return client()


def folder(graph: Graph, name: str) -> str:
    created = graph.post("/me/mailFolders", json={"displayName": name})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def rule(graph: Graph, **body: Any) -> dict[str, Any]:
    response = graph.post(RULES, json={"displayName": "rule", "isEnabled": True, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def where(sandbox: SandboxServer, message_id: str) -> dict[str, Any] | None:
    for message in mailbox(sandbox, ALICE)["messages"]:
        if message["id"] == message_id:
            return dict(message)
    return None


def deliver(sandbox: SandboxServer, **template: Any) -> str | None:
    ids = seed(sandbox, ALICE, template=template)
    return ids[0] if ids else None


# --- the resource -------------------------------------------------------------------------
def test_a_created_rule_is_listed_read_and_shaped_as_the_csdl_says(
    alice_rules: Graph,
) -> None:
    target = folder(alice_rules, "Receipts")

    created = rule(
        alice_rules,
        displayName="Receipts",
        sequence=2,
        conditions={"subjectContains": ["receipt"], "fromAddresses": [BOSS]},
        actions={"moveToFolder": target, "stopProcessingRules": True},
    )
    listed = alice_rules.get(RULES).json()["value"]
    one = alice_rules.get(f"{RULES}/{created['id']}")

    assert created["displayName"] == "Receipts" and created["sequence"] == 2
    assert (created["isEnabled"], created["hasError"], created["isReadOnly"]) == (
        True,
        False,
        False,
    )
    assert created["actions"] == {"moveToFolder": target, "stopProcessingRules": True}
    assert "exceptions" not in created  # unset complex values are left out
    assert [r["id"] for r in listed] == [created["id"]]
    assert one.status_code == 200 and one.json()["conditions"] == created["conditions"]
    csdl = load_csdl()
    for shown in (created, one.json(), *listed):
        check_object(csdl, "messageRule", shown, "messageRule")


def test_rules_are_listed_in_sequence_order(alice_rules: Graph) -> None:
    third = rule(alice_rules, sequence=3, actions={"markAsRead": True})
    first = rule(alice_rules, sequence=1, actions={"markAsRead": True})
    unnumbered = rule(alice_rules, actions={"markAsRead": True})  # after the last

    listed = [r["id"] for r in alice_rules.get(RULES).json()["value"]]

    assert unnumbered["sequence"] == 4
    assert listed == [first["id"], third["id"], unnumbered["id"]]


def test_patch_changes_a_rule_and_delete_removes_it(alice_rules: Graph) -> None:
    created = rule(alice_rules, actions={"markAsRead": True})
    path = f"{RULES}/{created['id']}"

    patched = alice_rules.patch(path, json={"displayName": "renamed", "isEnabled": False})
    gone = alice_rules.delete(path)
    after = alice_rules.get(path)

    assert patched.status_code == 200
    assert (patched.json()["displayName"], patched.json()["isEnabled"]) == ("renamed", False)
    assert patched.json()["actions"] == {"markAsRead": True}
    assert gone.status_code == 204
    assert after.status_code == 404 and error_code(after) == "ErrorItemNotFound"


def test_rules_answer_under_users_and_for_an_app_with_the_settings_role(
    sandbox: SandboxServer,
) -> None:
    app = Graph(sandbox, app_token(sandbox, ["MailboxSettings.ReadWrite"]), immutable=True)
    mail_only = Graph(sandbox, app_token(sandbox, ["Mail.ReadWrite"]), immutable=True)
    try:
        path = f"/users/{ALICE}/mailFolders/inbox/messageRules"
        created = app.post(path, json={"displayName": "a", "actions": {"markAsRead": True}})
        listed = app.get(path)
        refused = mail_only.get(path)
    finally:
        app.close()
        mail_only.close()

    assert created.status_code == 201, created.text
    assert [r["id"] for r in listed.json()["value"]] == [created.json()["id"]]
    assert refused.status_code == 403 and error_code(refused) == "ErrorAccessDenied"


def test_rules_need_mailbox_settings_scopes_and_only_reach_the_users_own(
    client: Callable[..., Graph],
) -> None:
    mail_only = client(ALICE, ALL_MAIL)
    reader = client(ALICE, [*ALL_MAIL, "MailboxSettings.Read"])
    bob = client(BOB)
    body = {"displayName": "x", "actions": {"markAsRead": True}}

    no_scope = mail_only.get(RULES)
    read = reader.get(RULES)
    read_only_write = reader.post(RULES, json=body)
    others = bob.get(f"/users/{ALICE}/mailFolders/inbox/messageRules")

    assert no_scope.status_code == 403 and error_code(no_scope) == "ErrorAccessDenied"
    assert read.status_code == 200
    assert read_only_write.status_code == 403
    assert others.status_code == 403  # no MailboxSettings.*.Shared exists


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"displayName": "x", "actions": {"markAsRead": True}, "colour": 1}, "RequestBodyRead"),
        ({"displayName": "x", "actions": {"markAsRead": "yes"}}, "RequestBodyRead"),
        ({"displayName": "x", "actions": {"moveToFolder": "x", "flag": 1}}, "RequestBodyRead"),
        ({"displayName": "x", "conditions": {"importance": "urgent"}}, "RequestBodyRead"),
        (
            {"displayName": "x", "actions": {"markAsRead": True}, "id": "x"},
            "ErrorInvalidPropertySet",
        ),
        ({"actions": {"markAsRead": True}}, "ErrorInvalidParameter"),
        ({"displayName": "x", "actions": {}}, "ErrorInvalidParameter"),
        (
            {"displayName": "x", "sequence": 0, "actions": {"markAsRead": True}},
            "ErrorInvalidParameter",
        ),
        (
            {"displayName": "x", "actions": {"moveToFolder": "not-a-folder"}},
            "ErrorInvalidIdMalformed",
        ),
        ({"displayName": "x", "actions": {"forwardTo": [BOSS]}}, "BadRequest"),
        (
            {"displayName": "x", "conditions": {"isSigned": True}, "actions": {"delete": True}},
            "BadRequest",
        ),
    ],
)
def test_bad_rule_bodies_are_refused_as_graph_does(
    alice_rules: Graph, body: dict[str, Any], code: str
) -> None:
    response = alice_rules.post(RULES, json=body)

    assert response.status_code == 400, response.text
    assert error_code(response) == code
    assert alice_rules.get(RULES).json()["value"] == []


def test_predicates_and_actions_set_to_false_or_empty_take_no_part(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    target = folder(alice_rules, "All mail")
    rule(
        alice_rules,
        # As a client that sends every property writes "no condition": false and [].
        conditions={"isSigned": False, "sentToMe": False, "subjectContains": []},
        actions={"moveToFolder": target, "delete": False, "forwardTo": []},
    )

    message_id = deliver(sandbox, subject="anything")

    assert where(sandbox, message_id or "")["parentFolderId"] == target  # type: ignore[index]


def test_rules_live_on_the_inbox_only(alice_rules: Graph) -> None:
    response = alice_rules.get("/me/mailFolders/archive/messageRules")

    assert response.status_code == 400


def test_reset_clears_the_rules(sandbox: SandboxServer, alice_rules: Graph) -> None:
    rule(alice_rules, actions={"markAsRead": True})

    sandbox.reset()

    assert alice_rules.get(RULES).json()["value"] == []


# --- running on delivery ------------------------------------------------------------------
def test_a_matching_message_is_filed_in_the_rules_folder_and_never_in_the_inbox(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    target = folder(alice_rules, "Receipts")
    rule(alice_rules, conditions={"subjectContains": ["RECEIPT"]}, actions={"moveToFolder": target})

    moved = deliver(sandbox, subject="Your receipt #1")
    kept = deliver(sandbox, subject="Lunch?")

    assert moved is not None and kept is not None
    assert where(sandbox, moved)["parentFolderId"] == target  # type: ignore[index]
    inbox = alice_rules.get("/me/mailFolders/inbox").json()["id"]
    assert where(sandbox, kept)["parentFolderId"] == inbox  # type: ignore[index]
    # Filed once: the inbox never held it, so its delta shows no trace of it.
    changes = alice_rules.get("/me/mailFolders/inbox/messages/delta").json()["value"]
    assert moved not in {c["id"] for c in changes}


@pytest.mark.parametrize(
    ("conditions", "matching", "other"),
    [
        (
            {"bodyContains": ["invoice"]},
            {"body": {"contentType": "html", "content": "<p>Your <b>Invoice</b></p>"}},
            {"body": {"contentType": "html", "content": "<p id='invoice'>hello</p>"}},
        ),
        ({"bodyOrSubjectContains": ["urgent"]}, {"subject": "URGENT: call"}, {"subject": "call"}),
        ({"fromAddresses": [BOSS]}, {"from": BOSS}, {}),
        ({"senderContains": ["boss"]}, {"from": BOSS}, {}),
        (
            {"sentToMe": True},
            {"toRecipients": [{"emailAddress": {"address": ALICE}}]},
            {
                "toRecipients": [{"emailAddress": {"address": BOB}}],
                "ccRecipients": [{"emailAddress": {"address": ALICE}}],
            },
        ),
        (
            {"hasAttachments": True},
            {
                "attachments": [
                    {
                        "@odata.type": "#microsoft.graph.fileAttachment",
                        "name": "a.txt",
                        "contentType": "text/plain",
                        "contentBytes": base64.b64encode(b"hi").decode(),
                    }
                ]
            },
            {},
        ),
        ({"importance": "high"}, {"importance": "high"}, {"importance": "low"}),
    ],
)
def test_each_predicate_decides_which_mail_the_rule_takes(
    sandbox: SandboxServer,
    alice_rules: Graph,
    conditions: dict[str, Any],
    matching: dict[str, Any],
    other: dict[str, Any],
) -> None:
    target = folder(alice_rules, "Filed")
    rule(alice_rules, conditions=conditions, actions={"moveToFolder": target})

    taken = deliver(sandbox, **matching)
    left = deliver(sandbox, **other)

    assert where(sandbox, taken or "")["parentFolderId"] == target  # type: ignore[index]
    assert where(sandbox, left or "")["parentFolderId"] != target  # type: ignore[index]


def test_exceptions_and_disabled_rules_leave_mail_alone(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    target = folder(alice_rules, "Newsletters")
    rule(
        alice_rules,
        conditions={"subjectContains": ["news"]},
        exceptions={"fromAddresses": [BOSS]},
        actions={"moveToFolder": target},
    )
    rule(alice_rules, isEnabled=False, actions={"delete": True})

    taken = deliver(sandbox, subject="Weekly news")
    excepted = deliver(sandbox, subject="News from the boss", **{"from": BOSS})

    assert where(sandbox, taken or "")["parentFolderId"] == target  # type: ignore[index]
    assert (
        where(sandbox, excepted or "")["parentFolderId"]
        == (  # type: ignore[index]
            alice_rules.get("/me/mailFolders/inbox").json()["id"]
        )
    )


def test_actions_run_in_sequence_until_stop_processing_rules(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    first, second, never = (folder(alice_rules, n) for n in ("First", "Second", "Never"))
    rule(alice_rules, sequence=3, actions={"moveToFolder": never})
    rule(
        alice_rules,
        sequence=2,
        actions={"moveToFolder": second, "assignCategories": ["Blue category"]},
        conditions={"subjectContains": ["x"]},
    )
    rule(alice_rules, sequence=1, actions={"moveToFolder": first, "markAsRead": True})
    rule(alice_rules, sequence=2, actions={"copyToFolder": never, "stopProcessingRules": True})

    message_id = deliver(sandbox, subject="x marks the spot")

    state = mailbox(sandbox, ALICE)["messages"]
    landed = where(sandbox, message_id or "")
    assert landed is not None and landed["parentFolderId"] == first
    assert landed["isRead"] is True and landed["categories"] == ["Blue category"]
    # The second move rule files a copy; the rule after stopProcessingRules never runs, the
    # copy rule before it does.
    placed = sorted(m["parentFolderId"] for m in state if m["subject"] == "x marks the spot")
    assert placed == sorted([first, second, never])


def test_delete_files_into_deleted_items_and_permanent_delete_drops_the_message(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    rule(alice_rules, conditions={"subjectContains": ["spam"]}, actions={"delete": True})
    rule(alice_rules, conditions={"subjectContains": ["virus"]}, actions={"permanentDelete": True})

    deleted = deliver(sandbox, subject="spam offer")
    dropped = seed(sandbox, ALICE, template={"subject": "virus inside"})

    deleted_items = alice_rules.get("/me/mailFolders/deleteditems").json()["id"]
    assert where(sandbox, deleted or "")["parentFolderId"] == deleted_items  # type: ignore[index]
    assert dropped == []
    assert not [m for m in mailbox(sandbox, ALICE)["messages"] if m["subject"] == "virus inside"]


def test_sendmail_to_a_sandbox_user_runs_the_recipients_rules(
    client: Callable[..., Graph], sandbox: SandboxServer
) -> None:
    alice = client(ALICE)
    target = folder(alice, "From Bob")
    rule(
        alice,
        conditions={"fromAddresses": [{"emailAddress": {"address": BOB}}]},
        actions={"moveToFolder": target},
    )
    bob = client(BOB)

    sent = bob.post(
        "/me/sendMail",
        json={
            "message": {
                "subject": "Hello Alice",
                "toRecipients": [{"emailAddress": {"address": ALICE}}],
            }
        },
    )

    assert sent.status_code == 202, sent.text
    [got] = [m for m in mailbox(sandbox, ALICE)["messages"] if m["subject"] == "Hello Alice"]
    assert got["parentFolderId"] == target


def test_a_rule_whose_folder_was_deleted_is_flagged_and_the_mail_stays_in_the_inbox(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    target = folder(alice_rules, "Short-lived")
    created = rule(alice_rules, actions={"moveToFolder": target})
    # Deleting a folder moves it into Deleted Items; deleting it again purges it.
    assert alice_rules.delete(f"/me/mailFolders/{target}").status_code == 204
    assert alice_rules.delete(f"/me/mailFolders/{target}").status_code == 204

    message_id = deliver(sandbox, subject="where to?")

    inbox = alice_rules.get("/me/mailFolders/inbox").json()["id"]
    assert where(sandbox, message_id or "")["parentFolderId"] == inbox  # type: ignore[index]
    assert alice_rules.get(f"{RULES}/{created['id']}").json()["hasError"] is True


def test_a_rule_moved_message_is_notified_created_on_its_folder_only(
    sandbox: SandboxServer, alice_rules: Graph
) -> None:
    target = folder(alice_rules, "Alerts")
    rule(alice_rules, conditions={"subjectContains": ["alert"]}, actions={"moveToFolder": target})
    receiver = start_receiver()
    try:
        for name, resource in (
            ("inbox", "me/mailFolders('Inbox')/messages"),
            ("alerts", f"me/mailFolders('{target}')/messages"),
        ):
            created = alice_rules.post(
                "/subscriptions",
                json={
                    "changeType": "created",
                    "notificationUrl": f"{receiver.url}/{name}",
                    "resource": resource,
                    "expirationDateTime": (datetime.now(UTC) + timedelta(hours=1)).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                    "clientState": "state",
                },
            )
            assert created.status_code == 201, created.text

        moved = deliver(sandbox, subject="alert: disk full")
        kept = deliver(sandbox, subject="lunch")

        def items(path: str) -> list[str]:
            return [
                item["resourceData"]["id"]
                for r in receiver.received
                if r.path == path
                for item in r.json()["value"]
            ]

        # One subscription's notifications are posted in order: once the later message's
        # has reached the inbox's, a notification of the moved one would have too.
        receiver.wait_for(lambda _: bool(items("/inbox") and items("/alerts")))
        assert items("/alerts") == [moved]
        assert items("/inbox") == [kept]
    finally:
        receiver.stop()
