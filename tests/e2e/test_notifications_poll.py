"""Shared-mailbox triggers end to end over real HTTP: a delegated connection cannot have Graph
push changes of another user's mailbox, so its subscription polls (caller → app → sandbox
delta reads on the poll timer → queue → delivery function → a local receiver).

One private app per module with POLL_INTERVAL_SECONDS=1; the tests start the poll timer
through the dev host's admin API (its schedule never fires here) and wait on what they can
observe (an audited poll, the receiver, the app going idle), never on a fixed time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient

from tests.support.app import (
    MASTER_KEY,
    AppServer,
    app_settings,
    isolated_settings,
    start_app,
    webhook_settings,
)
from tests.support.azurite import AzuriteServer
from tests.support.callers import Caller
from tests.support.receiver import Receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"  # not allowed on the support mailbox
SUPPORT = "support@contoso.test"  # shared; alice has full access
OLD = "2024-01-02T03:04:05Z"  # received long before any subscription here


@pytest.fixture(scope="module")
def poll_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppServer]:
    tmp = tmp_path_factory.mktemp("poll")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolated_settings("pol", tmp),
        **webhook_settings(spare_app_port),
        "WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
        "WEBHOOK_RETRY_HOURS": "0.015",
        "WEBHOOK_LEASE_SECONDS": "4",
        "POLL_INTERVAL_SECONDS": "1",
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alice(poll_app: AppServer, sandbox: SandboxServer) -> Iterator[Caller]:
    caller = Caller(poll_app, sandbox, ALICE)
    yield caller
    poll_app.wait_idle()
    caller.delete("")
    poll_app.wait_idle()


def subscribe(caller: Caller, receiver: Receiver, **extra: Any) -> httpx.Response:
    response = caller.post("/subscriptions", {"notificationUrl": f"{receiver.url}/flow", **extra})
    assert response.status_code == 201, response.text
    return response


def seed(sandbox: SandboxServer, folder: str = "inbox", **template: Any) -> str:
    with sandbox.client() as client:
        body: dict[str, Any] = {"count": 1, "folder": folder}
        if template:
            body["template"] = template
        response = client.post(f"/_sandbox/users/{SUPPORT}/messages", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["ids"][0])


def poll_state(app: AppServer, subscription_id: str) -> str:
    """The ETag of the subscription's poll state: it changes when a timer run claims a read
    (and again when the read saves its delta link)."""
    name = app.settings["TABLE_PREFIX"] + "subscriptionpolls"
    with TableClient.from_connection_string(app.settings["AzureWebJobsStorage"], name) as table:
        return str(table.get_entity(subscription_id, "state").metadata["etag"])


def poll_round(app: AppServer, subscription_id: str) -> None:
    """Run the poll timer until it claimed a read of the subscription's folder, and wait
    until that read and the jobs it queued were worked. A run before the interval has passed
    finds nothing due: it is run again."""
    before = poll_state(app, subscription_id)
    deadline = time.monotonic() + 60
    with app.client() as client:
        while poll_state(app, subscription_id) == before:
            assert time.monotonic() < deadline, "the poll timer read nothing"
            run = client.post(
                "/admin/functions/notifications_poll",
                json={"input": ""},
                headers={"x-functions-key": MASTER_KEY},
            )
            assert run.status_code == 202, run.text
            app.wait_idle()
    app.wait_idle()


def events(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.received]


def standard_webhooks_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks' receiver side, from the specification, not from the app."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id, timestamp = lower["webhook-id"], lower["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(given, expected)
        for version, _, given in (s.partition(",") for s in lower["webhook-signature"].split())
    )


def graph_subscriptions(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as client:
        return list(client.get("/_sandbox/subscriptions").json()["value"])


def poll_rows(app: AppServer, subscription_id: str) -> list[dict[str, Any]]:
    name = app.settings["TABLE_PREFIX"] + "subscriptionpolls"
    with TableClient.from_connection_string(app.settings["AzureWebJobsStorage"], name) as table:
        return [
            dict(row)
            for row in table.list_entities()
            if subscription_id in (row["PartitionKey"], row.get("Id"))
        ]


def test_a_shared_mailbox_subscription_polls_and_fires_created_once_for_new_and_moved_in_mail(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, poll_app: AppServer
) -> None:
    old = seed(sandbox, folder="archive", receivedDateTime=OLD)  # moved into the inbox later
    created = subscribe(alice, receiver, mailbox=SUPPORT, includeMessage=True)
    body = created.json()
    assert (body["mode"], body["mailbox"], body["expirationDateTime"]) == ("poll", SUPPORT, None)
    assert graph_subscriptions(sandbox) == []  # no Graph side at all
    [listed] = alice.get("/subscriptions").json()["value"]
    assert (listed["id"], listed["mode"], listed["mailbox"]) == (body["id"], "poll", SUPPORT)
    [changed] = alice.get("/messages", mailbox=SUPPORT, top=1).json()["value"]

    new = seed(sandbox)
    moved = alice.post(f"/messages/{old}/move", {"destinationFolder": "inbox"}, mailbox=SUPPORT)
    assert moved.status_code == 200, moved.text
    read = alice.post(f"/messages/{changed['id']}/markRead", {"isRead": True}, mailbox=SUPPORT)
    assert read.status_code == 200, read.text
    poll_round(poll_app, body["id"])
    receiver.wait_for(lambda got: len(got) >= 2)
    poll_round(poll_app, body["id"])  # a second read finds nothing new

    got = events(receiver)
    assert sorted(e["messageId"] for e in got) == sorted([new, moved.json()["id"]])
    assert {(e["type"], e["changeType"], e["mailbox"]) for e in got} == {
        ("message.created", "created", SUPPORT)
    }
    assert all(e["subscriptionId"] == body["id"] and e["message"]["subject"] for e in got)
    assert all(
        standard_webhooks_verify(body["signingSecret"], post.headers, post.body)
        for post in receiver.received
    )
    delivered = alice.get(f"/subscriptions/{body['id']}/deliveries", status="delivered")
    assert sorted(d["messageId"] for d in delivered.json()["value"]) == sorted(
        e["messageId"] for e in got
    )


def test_a_polled_flag_fires_once_per_transition_to_flagged(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, poll_app: AppServer
) -> None:
    already = seed(sandbox, flag={"flagStatus": "flagged"})  # flagged before: no transition
    sid = subscribe(alice, receiver, mailbox=SUPPORT, events=["flagged"]).json()["id"]
    message = seed(sandbox)
    poll_round(poll_app, sid)  # its arrival is no flag

    def change(message_id: str, path: str, body: dict[str, Any]) -> None:
        answer = alice.post(f"/messages/{message_id}{path}", body, mailbox=SUPPORT)
        assert answer.status_code == 200, answer.text

    change(message, "/flag", {"flagStatus": "flagged"})
    poll_round(poll_app, sid)
    [first] = receiver.wait_for(lambda got: len(got) >= 1)
    change(message, "/flag", {"flagStatus": "flagged"})  # a re-flag: no transition
    change(message, "/markRead", {"isRead": True})
    change(already, "/markRead", {"isRead": True})  # flagged all along
    poll_round(poll_app, sid)
    assert len(receiver.received) == 1
    change(message, "/flag", {"flagStatus": "notFlagged"})
    poll_round(poll_app, sid)
    change(message, "/flag", {"flagStatus": "flagged"})
    poll_round(poll_app, sid)
    second = receiver.wait_for(lambda got: len(got) >= 2)[1]
    poll_round(poll_app, sid)

    assert len(receiver.received) == 2
    for post in (first, second):
        event = post.json()
        assert (event["type"], event["messageId"], event["mailbox"]) == (
            "message.flagged",
            message,
            SUPPORT,
        )
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


def test_a_lost_sync_state_starts_over_without_events_for_mail_already_there(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, poll_app: AppServer
) -> None:
    sid = subscribe(alice, receiver, mailbox=SUPPORT).json()["id"]
    with sandbox.client() as control:  # the delta token answers 410 syncStateNotFound now
        assert control.post(f"/_sandbox/users/{SUPPORT}/delta/expire").status_code == 200
    new = seed(sandbox)

    poll_round(poll_app, sid)
    receiver.wait_for(lambda got: len(got) >= 1)
    poll_round(poll_app, sid)

    assert [e["messageId"] for e in events(receiver)] == [new]
    audit = Path(poll_app.settings["AUDIT_LOG_PATH"]).read_text().splitlines()
    reasons = [
        e.get("reason") for e in map(json.loads, audit) if e["action"] == "subscription.polled"
    ]
    assert "rebaselined" in reasons  # the 410 was met, and answered with a fresh round


def test_bob_is_refused_the_shared_mailbox_as_for_mail_reads_and_nothing_is_kept(
    poll_app: AppServer, sandbox: SandboxServer, receiver: Receiver
) -> None:
    bob = Caller(poll_app, sandbox, BOB)
    try:
        read = bob.get("/messages", mailbox=SUPPORT)
        subscribed = bob.post(
            "/subscriptions", {"notificationUrl": f"{receiver.url}/flow", "mailbox": SUPPORT}
        )
        listed = bob.get("/subscriptions")
    finally:
        bob.delete("")

    assert (read.status_code, subscribed.status_code) == (403, 403)
    assert subscribed.json()["code"] == read.json()["code"] == "forbidden"
    assert listed.json()["value"] == []


def test_the_connections_own_mailbox_still_pushes(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    default = subscribe(alice, receiver).json()
    named = subscribe(alice, receiver, mailbox=ALICE).json()

    assert (default["mode"], default["mailbox"]) == ("push", None)
    assert named["mode"] == "push"
    assert default["expirationDateTime"] and named["expirationDateTime"]
    assert len(graph_subscriptions(sandbox)) == 2


def test_deleting_a_poll_subscription_or_its_connection_removes_its_state(
    poll_app: AppServer, sandbox: SandboxServer, receiver: Receiver
) -> None:
    caller = Caller(poll_app, sandbox, ALICE)
    first = subscribe(caller, receiver, mailbox=SUPPORT).json()["id"]
    second = subscribe(caller, receiver, mailbox=SUPPORT).json()["id"]
    assert poll_rows(poll_app, first) and poll_rows(poll_app, second)
    with poll_app.client() as client:
        listed = client.get("/admin/functions", headers={"x-functions-key": MASTER_KEY})
    assert "notifications_poll" in listed.text

    removed = caller.delete(f"/subscriptions/{first}")
    poll_app.wait_idle()
    gone = caller.delete("")
    poll_app.wait_idle()

    assert (removed.status_code, gone.status_code) == (204, 204)
    assert poll_rows(poll_app, first) == []
    assert poll_rows(poll_app, second) == []
