"""Triggers end to end for mail an inbox rule files, and for the `mentionsMe` filter: caller →
app → sandbox Graph subscription → sandbox notifications → queue → delivery → a local
receiver. The rule is created the way a user's own client creates it (Graph's
`mailFolders/inbox/messageRules` with the user's token); mail arrives both as incoming
mail (the sandbox's delivery control) and as another user's `sendMail`.

No fixed waits: each test waits until Graph has handed every notification it owed to the
app and the app has finished all its work, then counts what the receiver got.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sandbox.graph.support import Graph, user_token
from tests.support.app import (
    AppServer,
    app_settings,
    isolated_settings,
    start_app,
    webhook_settings,
)
from tests.support.azurite import AzuriteServer
from tests.support.callers import Caller
from tests.support.processes import wait_until
from tests.support.receiver import Receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
MAIL = ["Mail.ReadWrite", "Mail.Send"]


@pytest.fixture(scope="module")
def notify_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppServer]:
    tmp = tmp_path_factory.mktemp("notify-rules")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolated_settings("ntr", tmp),
        **webhook_settings(spare_app_port),
        "WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
        "WEBHOOK_RETRY_MAX_SECONDS": "20",
        "WEBHOOK_RETRY_HOURS": "0.015",
        "WEBHOOK_LEASE_SECONDS": "4",
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alice(notify_app: AppServer, sandbox: SandboxServer) -> Iterator[Caller]:
    caller = Caller(notify_app, sandbox, ALICE)
    yield caller
    # Nothing this test started may outlive it (see tests/e2e/test_notifications.py).
    notify_app.wait_idle()
    caller.delete("")
    notify_app.wait_idle()


@pytest.fixture
def alice_graph(sandbox: SandboxServer) -> Iterator[Graph]:
    """Alice's own mail client on Graph, allowed to manage her inbox rules."""
    graph = Graph(sandbox, user_token(sandbox, ALICE, [*MAIL, "MailboxSettings.ReadWrite"]))
    yield graph
    graph.close()


def subscribe(caller: Caller, receiver: Receiver, path: str, **extra: Any) -> str:
    response = caller.post(
        "/subscriptions",
        {"notificationUrl": f"{receiver.url}/{path}", "includeMessage": True} | extra,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def arrive(sandbox: SandboxServer, **template: Any) -> list[str]:
    """Incoming mail for Alice (the sandbox's delivery: her inbox rules run on it)."""
    with sandbox.client() as client:
        response = client.post(f"/_sandbox/users/{ALICE}/messages", json={"template": template})
        assert response.status_code == 201, response.text
        return list(response.json()["ids"])


def graph_deliveries(sandbox: SandboxServer) -> dict[str, int]:
    """Notifications each Graph subscription (by folder) got answered 2xx."""
    with sandbox.client() as client:
        listed = client.get("/_sandbox/subscriptions").json()["value"]
    return {str(s["folderId"]): int(s["delivered"]) for s in listed}


def mailbox_state(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as client:
        return list(client.get(f"/_sandbox/users/{ALICE}/mailbox").json()["messages"])


def settled(app: AppServer, sandbox: SandboxServer, owed: dict[str, int]) -> dict[str, int]:
    """Until Graph has handed the app every notification `owed` (per folder id), and the app
    has worked them all; the final counts, to assert that nothing more was sent."""
    wait_until(
        lambda: all(graph_deliveries(sandbox).get(f, 0) >= n for f, n in owed.items()),
        30,
        "Graph's notifications",
    )
    app.wait_idle()
    return graph_deliveries(sandbox)


def by_path(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.received if r.path == f"/{path}"]


def test_mail_an_inbox_rule_moves_into_a_watched_folder_fires_created_once(
    alice: Caller,
    alice_graph: Graph,
    notify_app: AppServer,
    sandbox: SandboxServer,
    receiver: Receiver,
) -> None:
    target = alice.post("/folders", {"displayName": "Build alerts"})
    assert target.status_code == 201, target.text
    folder_id = target.json()["id"]
    inbox_id = alice_graph.get("/me/mailFolders/inbox").json()["id"]
    made = alice_graph.post(
        "/me/mailFolders/inbox/messageRules",
        json={
            "displayName": "Build alerts",
            "sequence": 1,
            "isEnabled": True,
            "conditions": {"subjectContains": ["[build]"]},
            "actions": {"moveToFolder": folder_id, "stopProcessingRules": True},
        },
    )
    assert made.status_code == 201, made.text
    subscribe(alice, receiver, "alerts", folder=folder_id)
    subscribe(alice, receiver, "inbox")  # where the non-matching mail stays

    [incoming] = arrive(sandbox, subject="[build] nightly failed")
    [other] = arrive(sandbox, subject="Lunch on Friday?")
    with httpx.Client(
        base_url=sandbox.graph_url,
        verify=sandbox.ssl_context(),
        headers={"Authorization": f"Bearer {user_token(sandbox, BOB, MAIL)}"},
    ) as bob:
        sent = bob.post(
            "/me/sendMail",
            json={
                "message": {
                    "subject": "[BUILD] release candidate ready",
                    "toRecipients": [{"emailAddress": {"address": ALICE}}],
                }
            },
        )
    assert sent.status_code == 202, sent.text

    counts = settled(notify_app, sandbox, {folder_id: 2, inbox_id: 1})

    state = {m["subject"]: m for m in mailbox_state(sandbox)}
    from_bob = state["[BUILD] release candidate ready"]
    assert state["[build] nightly failed"]["parentFolderId"] == folder_id
    assert from_bob["parentFolderId"] == folder_id
    assert state["Lunch on Friday?"]["parentFolderId"] == inbox_id
    # Graph notified the watched folder of the two rule-moved messages only, the inbox of
    # the one it kept; each became exactly one event.
    assert counts == {folder_id: 2, inbox_id: 1}
    alerts = by_path(receiver, "alerts")
    assert sorted(e["messageId"] for e in alerts) == sorted([incoming, from_bob["id"]])
    assert {(e["type"], e["changeType"]) for e in alerts} == {("message.created", "created")}
    assert [e["messageId"] for e in by_path(receiver, "inbox")] == [other]


def test_mentions_me_fires_only_for_an_outlook_mention_of_the_mailbox(
    alice: Caller,
    alice_graph: Graph,
    notify_app: AppServer,
    sandbox: SandboxServer,
    receiver: Receiver,
) -> None:
    subscribe(alice, receiver, "mentions", mentionsMe=True)
    inbox_id = alice_graph.get("/me/mailFolders/inbox").json()["id"]
    signature = '<p>Bob | <a href="mailto:alice@contoso.test">alice@contoso.test</a></p>'

    def html(text: str) -> dict[str, str]:
        return {"contentType": "html", "content": f"<html><body>{text}{signature}</body></html>"}

    def mention(address: str, name: str) -> str:
        return (
            f'<a id="OWAAM29C89DAFD5E14DD4AF1FCC5361A59632" href="mailto:{address}">'
            f'<span style="text-decoration:none">@{name}</span></a>'
        )

    [mentioned] = arrive(
        sandbox, subject="a", body=html(f"Hi {mention('Alice@Contoso.test', 'Alice')}")
    )
    arrive(sandbox, subject="b", body=html("Thanks for the invoice."))
    arrive(sandbox, subject="c", body=html(f"Hi {mention('bob@contoso.test', 'Bob')}"))

    settled(notify_app, sandbox, {inbox_id: 3})

    [event] = by_path(receiver, "mentions")
    assert event["messageId"] == mentioned
    assert event["message"]["subject"] == "a"
    assert "body" not in event["message"]  # read to match, never forwarded
    assert alice.get("/subscriptions").json()["value"][0]["filters"]["mentionsMe"] is True
