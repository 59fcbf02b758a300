"""Triggers end to end over real HTTP: caller → app → sandbox Graph subscription (handshake
against the app's /api/notifications/graph) → sandbox notifications → queue → delivery
function → a local receiver standing in for the flow's callback, signed with HMAC-SHA256.

One private app per module (its own tables, queues and PUBLIC_BASE_URL on the spare port).
Each test has its own connection; when it ends, the app's background work is waited out and
the connection deleted (both sides of its subscriptions with it), so no queued job or timer
run of one test can create or renew Graph subscriptions in the next.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.store.deliveries import delivery_id
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
from tests.support.processes import wait_until
from tests.support.receiver import Receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
READER_APP = "6c1f4e2a-9b3d-4f7e-8a5c-2d1e0f9b8a7c"  # another application than the writer


@pytest.fixture(scope="module")
def notify_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AppServer, Path]]:
    tmp = tmp_path_factory.mktemp("notify")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolated_settings("ntf", tmp),
        **webhook_settings(spare_app_port),
        "WEBHOOK_RETRY_INITIAL_SECONDS": "0.5",
        "WEBHOOK_RETRY_MAX_SECONDS": "20",
        # A failing event gives up within a minute, so no test's retries outlive it.
        "WEBHOOK_RETRY_HOURS": "0.015",
        "WEBHOOK_LEASE_SECONDS": "4",
        "SUBSCRIPTION_RENEW_WITHIN_HOURS": "168",  # every subscription is due
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server, tmp / "audit.jsonl"
    finally:
        server.stop()


@pytest.fixture
def alice(notify_app: tuple[AppServer, Path], sandbox: SandboxServer) -> Iterator[Caller]:
    caller = Caller(notify_app[0], sandbox, ALICE)
    yield caller
    # Nothing this test started may outlive it: jobs and timer runs finish first (one still
    # running could recreate a subscription after the deletion), then both sides go.
    notify_app[0].wait_idle()
    caller.delete("")
    notify_app[0].wait_idle()


def as_app(
    app: AppServer, sandbox: SandboxServer, connection_id: str, role: str, client_id: str | None
) -> httpx.Client:
    token = sandbox.app_token([role], client_id)
    return httpx.Client(
        base_url=f"{app.url}/api/connections/{connection_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def audit(path: Path, action: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["action"] == action]


def subscribe(caller: Caller, receiver: Receiver, **extra: Any) -> httpx.Response:
    response = caller.post("/subscriptions", {"notificationUrl": f"{receiver.url}/flow", **extra})
    assert response.status_code == 201, response.text
    return response


def seed(
    sandbox: SandboxServer, count: int = 1, folder: str = "inbox", **template: Any
) -> list[str]:
    with sandbox.client() as client:
        body: dict[str, Any] = {"count": count, "folder": folder}
        if template:
            body["template"] = template
        response = client.post(f"/_sandbox/users/{ALICE}/messages", json=body)
        assert response.status_code == 201, response.text
        return list(response.json()["ids"])


def graph_subscriptions(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as client:
        return list(client.get("/_sandbox/subscriptions").json()["value"])


def events(receiver: Receiver) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.received]


def settle() -> None:
    time.sleep(1.5)  # long enough for a duplicate to show up if there were one


def test_a_new_message_reaches_the_caller_once_signed_and_delete_removes_both_sides(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    created = subscribe(alice, receiver, includeMessage=True)
    body = created.json()
    assert body["signingSecret"] and body["folder"] == "inbox"
    assert len(graph_subscriptions(sandbox)) == 1  # the handshake against the app passed
    assert "signingSecret" not in alice.get("/subscriptions").json()["value"][0]

    [message_id] = seed(sandbox, subject="Quarterly numbers")

    [post] = receiver.wait_for(lambda got: len(got) >= 1)
    expected = hmac.new(body["signingSecret"].encode(), post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-Signature"] == f"sha256={expected}"
    event = post.json()
    assert event["subscriptionId"] == body["id"]
    assert event["connectionId"] == alice.connection_id
    assert event["messageId"] == message_id
    assert event["message"]["subject"] == "Quarterly numbers"
    settle()
    assert len(receiver.received) == 1

    # Power Automate's convention: DELETE on the Location URL when the flow is turned off.
    token = alice.client.headers["Authorization"]
    gone = httpx.delete(created.headers["Location"], headers={"Authorization": token})
    assert gone.status_code == 204
    assert graph_subscriptions(sandbox) == []
    assert alice.get("/subscriptions").json()["value"] == []


def test_the_handshake_echoes_only_the_decoded_token(notify_app: tuple[AppServer, Path]) -> None:
    with notify_app[0].client() as client:
        answer = client.post(
            "/api/notifications/graph", params={"validationToken": "Validation: a b&c<d>"}
        )
        too_long = client.post("/api/notifications/graph", params={"validationToken": "x" * 5000})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "Validation: a b&c<d>"
    assert too_long.status_code == 400


def test_the_handshake_echo_can_be_neither_sniffed_nor_run(
    notify_app: tuple[AppServer, Path],
) -> None:
    with notify_app[0].client() as client:
        for path in ("/api/notifications/graph", "/api/notifications/lifecycle"):
            answer = client.post(path, params={"validationToken": "<script>alert(1)</script>"})

            assert answer.status_code == 200
            assert answer.headers["content-type"] == "text/plain; charset=utf-8"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_one_request_cannot_multiply_lookups_or_audit_events(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, notify_app: tuple[AppServer, Path]
) -> None:
    subscribe(alice, receiver)
    [graph_sub] = graph_subscriptions(sandbox)
    forged = {"subscriptionId": graph_sub["id"], "clientState": "guessed", "changeType": "created"}
    unknown = {"subscriptionId": "not-ours", "clientState": "x", "changeType": "created"}
    rejected_before = len(audit(notify_app[1], "notification.rejected"))

    with notify_app[0].client() as client:
        flood = client.post("/api/notifications/graph", json={"value": [unknown] * 1000})
        batch = client.post(
            "/api/notifications/graph", json={"value": [forged] * 60 + [unknown] * 40}
        )

    assert flood.status_code == 413
    assert flood.headers["content-type"].startswith("application/problem+json")
    assert flood.json()["code"] == "too_many_notifications"
    assert batch.status_code == 202
    [event] = audit(notify_app[1], "notification.rejected")[rejected_before:]
    assert event["reason"] == "client_state_mismatch"
    assert event["counts"] == {
        "rejected": 100,
        "client_state_mismatch": 60,
        "unknown_subscription": 40,
    }


def test_only_the_creator_sees_the_notification_url_in_full(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, notify_app: tuple[AppServer, Path]
) -> None:
    app = notify_app[0]
    mine = alice.post("/subscriptions", {"notificationUrl": f"{receiver.url}/flow?sig=alice-sig"})
    with as_app(app, sandbox, alice.connection_id, "Connections.ReadWrite.All", None) as writer:
        theirs = writer.post(
            "/subscriptions", json={"notificationUrl": f"{receiver.url}/hook?sig=app-sig#x"}
        )
        seen_by_writer = {
            s["id"]: s["notificationUrl"] for s in writer.get("/subscriptions").json()["value"]
        }
    with as_app(app, sandbox, alice.connection_id, "Connections.Read.All", READER_APP) as reader:
        seen_by_reader = {
            s["id"]: s["notificationUrl"] for s in reader.get("/subscriptions").json()["value"]
        }
    seen_by_alice = {
        s["id"]: s["notificationUrl"] for s in alice.get("/subscriptions").json()["value"]
    }

    assert (mine.status_code, theirs.status_code) == (201, 201)
    alices, apps = mine.json()["id"], theirs.json()["id"]
    assert mine.json()["notificationUrl"] == f"{receiver.url}/flow?sig=alice-sig"
    assert seen_by_alice == {
        alices: f"{receiver.url}/flow?sig=alice-sig",
        apps: f"{receiver.url}/hook",
    }
    assert seen_by_writer == {
        alices: f"{receiver.url}/flow",
        apps: f"{receiver.url}/hook?sig=app-sig#x",
    }
    assert seen_by_reader == {alices: f"{receiver.url}/flow", apps: f"{receiver.url}/hook"}


def test_a_wrong_client_state_is_dropped_and_audited(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
) -> None:
    subscribe(alice, receiver)
    [graph_sub] = graph_subscriptions(sandbox)
    forged = {
        "value": [
            {
                "subscriptionId": graph_sub["id"],
                "clientState": "guessed",
                "changeType": "created",
                "resourceData": {"id": seed(sandbox, folder="archive")[0]},
            }
        ]
    }

    with notify_app[0].client() as client:
        answer = client.post("/api/notifications/graph", json=forged)

    assert answer.status_code == 202
    settle()
    assert receiver.received == []
    assert audit(notify_app[1], "notification.rejected")[-1]["reason"] == "client_state_mismatch"


def test_filters_are_honoured(alice: Caller, sandbox: SandboxServer, receiver: Receiver) -> None:
    subscribe(alice, receiver, **{"from": "boss@example.test", "hasAttachments": True})
    boss = {"emailAddress": {"address": "boss@example.test"}}
    attachment = {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": "a.txt",
        "contentType": "text/plain",
        "contentBytes": base64.b64encode(b"hi").decode(),
    }
    seed(sandbox, **{"from": boss})  # no attachment
    seed(sandbox, attachments=[attachment])  # not from the boss
    [wanted] = seed(sandbox, **{"from": boss, "attachments": [attachment]})

    receiver.wait_for(lambda got: len(got) >= 1)
    settle()
    assert [e["messageId"] for e in events(receiver)] == [wanted]


def test_twenty_messages_at_once_are_each_delivered_exactly_once(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    subscribe(alice, receiver)

    ids = seed(sandbox, count=20)

    receiver.wait_for(lambda got: len(got) >= 20, timeout=30)
    settle()
    assert sorted(e["messageId"] for e in events(receiver)) == sorted(ids)


def test_a_receiver_down_for_a_while_gets_the_event_after_retries(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    subscribe(alice, receiver)
    receiver.fail_with = 503

    [message_id] = seed(sandbox)
    wait_until(lambda: receiver.failures >= 2, 15, "a few refused attempts")
    receiver.fail_with = None

    receiver.wait_for(lambda got: len(got) >= 1, timeout=20)
    assert [e["messageId"] for e in events(receiver)] == [message_id]


def test_missed_resyncs_and_delivers_the_gap_exactly_once(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    subscribe(alice, receiver)
    [before] = seed(sandbox)
    receiver.wait_for(lambda got: len(got) >= 1)
    [graph_sub] = graph_subscriptions(sandbox)
    with sandbox.client() as control:
        control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": True})
        gap = seed(sandbox, count=3)
        control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": False})
        sent = control.post(
            f"/_sandbox/subscriptions/{graph_sub['id']}/lifecycle", json={"event": "missed"}
        )
        assert sent.json()["delivered"] is True

    receiver.wait_for(lambda got: len(got) >= 4, timeout=20)
    settle()
    assert sorted(e["messageId"] for e in events(receiver)) == sorted([before, *gap])


def test_lifecycle_events_and_the_timer_keep_the_subscription_alive(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
) -> None:
    subscribe(alice, receiver)
    [first] = graph_subscriptions(sandbox)
    with sandbox.client() as control:
        control.post(
            f"/_sandbox/subscriptions/{first['id']}/lifecycle",
            json={"event": "subscriptionRemoved"},
        )
    wait_until(
        lambda: [s["id"] for s in graph_subscriptions(sandbox)] not in ([], [first["id"]]),
        15,
        "the subscription to be recreated",
    )
    [message_id] = seed(sandbox)
    receiver.wait_for(lambda got: len(got) >= 1)
    assert events(receiver)[0]["messageId"] == message_id

    # reauthorizationRequired: renewed at once (Graph's PATCH clears the flag).
    [second] = graph_subscriptions(sandbox)
    renewed_before = len(audit(notify_app[1], "subscription.renewed"))
    with sandbox.client() as control:
        control.post(
            f"/_sandbox/subscriptions/{second['id']}/lifecycle",
            json={"event": "reauthorizationRequired"},
        )
    wait_until(
        lambda: len(audit(notify_app[1], "subscription.renewed")) > renewed_before,
        15,
        "subscription.renewed after reauthorizationRequired",
    )
    assert graph_subscriptions(sandbox)[0]["needsReauthorization"] is False

    # The lifecycle timer renews what expires within SUBSCRIPTION_RENEW_WITHIN_HOURS.
    renewed_before = len(audit(notify_app[1], "subscription.renewed"))
    with notify_app[0].client() as client:
        started = client.post(
            "/admin/functions/lifecycle_timer",
            json={"input": ""},
            headers={"x-functions-key": MASTER_KEY},
        )
    assert started.status_code == 202
    wait_until(
        lambda: len(audit(notify_app[1], "subscription.renewed")) > renewed_before,
        20,
        "subscription.renewed",
    )
    assert audit(notify_app[1], "subscription.renewed")[-1]["outcome"] == "success"


def test_deleting_the_connection_deletes_its_subscriptions_on_both_sides(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    assert graph_subscriptions(sandbox) == []  # nothing left over from earlier tests
    subscribe(alice, receiver)
    assert len(graph_subscriptions(sandbox)) == 1

    assert alice.delete("").status_code == 204

    assert graph_subscriptions(sandbox) == []


def test_webhook_urls_must_be_https_or_allowed_loopback(alice: Caller) -> None:
    for url in ("http://example.com/hook", "https://10.0.0.1/hook", "https://169.254.169.254/x"):
        response = alice.post("/subscriptions", {"notificationUrl": url})
        assert response.status_code == 400, url


def ledger(azurite: AzuriteServer, app: AppServer) -> Any:
    """The app's deliveries table (created if no delivery has made it yet), to plant the
    lease of a worker that died."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(azurite.connection_string)
    return service.create_table_if_not_exists(f"{app.settings['TABLE_PREFIX']}deliveries")


def standard_webhooks_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's side of Standard Webhooks, written from the specification
    (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md), not from the
    app: the key is the base64 after `whsec_`, the signed content `{id}.{timestamp}.{body}`,
    the header a space-separated list of `v1,<base64>` signatures, the timestamp recent."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id, timestamp = lower["webhook-id"], lower["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(given, expected)
        for version, _, given in (s.partition(",") for s in lower["webhook-signature"].split())
    )


def test_every_delivery_is_signed_the_standard_webhooks_way_with_one_id_per_event(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    secret = subscribe(alice, receiver).json()["signingSecret"]
    receiver.fail_with = 503  # the first attempts are refused: the retries carry the same id

    [message_id] = seed(sandbox)
    wait_until(lambda: receiver.failures >= 2, 15, "two refused attempts")
    receiver.fail_with = None
    [post] = receiver.wait_for(lambda got: len(got) >= 1, timeout=20)

    attempts = [*receiver.refused, post]
    assert all(standard_webhooks_verify(secret, a.headers, a.body) for a in attempts)
    assert not standard_webhooks_verify(
        "whsec_" + base64.b64encode(b"k" * 32).decode(), post.headers, post.body
    )
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    # The scheme receivers had before keeps working: hex HMAC of the body, keyed with the
    # whole secret string.
    legacy = hmac.new(secret.encode(), post.body, hashlib.sha256).hexdigest()
    assert post.headers["X-Signature"] == f"sha256={legacy}"
    assert post.json()["type"] == "message.created"
    assert post.json()["messageId"] == message_id
    settle()
    assert len(receiver.received) == 1


def test_an_event_claimed_by_a_worker_that_died_is_delivered_when_its_lease_ends(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
    azurite: AzuriteServer,
) -> None:
    subscription_id = subscribe(alice, receiver).json()["id"]
    [graph_sub] = graph_subscriptions(sandbox)
    with sandbox.client() as control:
        control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": True})
        [message_id] = seed(sandbox)
        # A worker claimed the event and died before posting: its lease is in the ledger.
        lease_ends = time.time() + 6
        table = ledger(azurite, notify_app[0])
        with table:
            table.create_entity(
                {
                    "PartitionKey": subscription_id,
                    "RowKey": delivery_id(subscription_id, message_id, "created"),
                    "MessageId": message_id,
                    "Type": "created",
                    "Status": "pending",
                    "Attempts": 0,
                    "FirstAt": datetime.now(UTC),
                    "LeaseUntil": datetime.fromtimestamp(lease_ends, UTC),
                    "LeaseToken": "the-dead-worker",
                }
            )
            control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": False})
            control.post(
                f"/_sandbox/subscriptions/{graph_sub['id']}/lifecycle", json={"event": "missed"}
            )

            [post] = receiver.wait_for(lambda got: len(got) >= 1, timeout=30)
            arrived = time.time()
            settle()
            row = table.get_entity(subscription_id, post.headers["webhook-id"])

    assert post.json()["messageId"] == message_id
    assert arrived >= lease_ends  # not before the lease ended
    assert len(receiver.received) == 1
    assert (row["Status"], row["Attempts"], row["LastStatus"]) == ("delivered", 1, 202)


def test_a_receiver_answering_410_gone_disables_the_subscription(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    subscribe(alice, receiver)
    receiver.fail_with = 410

    seed(sandbox)
    wait_until(lambda: graph_subscriptions(sandbox) == [], 20, "Graph's side to be removed")
    [listed] = alice.get("/subscriptions").json()["value"]
    receiver.fail_with = None
    seed(sandbox)
    settle()

    assert listed["status"] == "disabled"
    assert receiver.failures == 1  # 410 is not retried
    assert receiver.received == []


def test_a_trigger_on_a_custom_folder_and_on_its_subfolder(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    """Folder ids from GET /folders (ids with `=` and `-`, unlike well-known names) work as
    a subscription's folder, at the top level and one level down."""
    parent = alice.post("/folders", {"displayName": "Triggers custom"})
    assert parent.status_code == 201, parent.text
    child = alice.post(
        "/folders", {"displayName": "Triggers sub", "parentFolder": parent.json()["id"]}
    )
    assert child.status_code == 201, child.text
    listed = [f["id"] for f in alice.get("/folders").json()["value"]]
    assert parent.json()["id"] in listed
    top = subscribe(alice, receiver, folder=parent.json()["id"]).json()["id"]
    sub = subscribe(alice, receiver, folder=child.json()["id"]).json()["id"]

    [in_parent] = seed(sandbox, folder=parent.json()["id"])
    [in_child] = seed(sandbox, folder=child.json()["id"])
    seed(sandbox)  # the inbox: neither subscription's folder

    receiver.wait_for(lambda got: len(got) >= 2)
    settle()
    assert sorted((e["subscriptionId"], e["messageId"]) for e in events(receiver)) == sorted(
        [(top, in_parent), (sub, in_child)]
    )


def test_a_failed_event_is_listed_and_redelivered_with_the_same_webhook_id(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
) -> None:
    subscription_id = subscribe(alice, receiver).json()["id"]
    base = f"/subscriptions/{subscription_id}/deliveries"
    receiver.fail_with = 400  # final: the event fails at once

    [message_id] = seed(sandbox)
    wait_until(lambda: alice.get(base, status="failed").json()["value"] != [], 15, "a failure")
    [failed] = alice.get(base, status="failed").json()["value"]
    assert alice.get(base, status="delivered").json() == {"value": [], "nextCursor": None}
    with as_app(
        notify_app[0], sandbox, alice.connection_id, "Connections.Read.All", READER_APP
    ) as reader:
        assert reader.get(base).json()["value"] == [failed]  # readers may list
        refused = reader.post(f"{base}/{failed['id']}/redeliver")
    receiver.fail_with = None

    again = alice.post(f"{base}/{failed['id']}/redeliver")
    [post] = receiver.wait_for(lambda got: len(got) >= 1)
    settle()

    assert (failed["messageId"], failed["type"]) == (message_id, "message.created")
    assert (failed["attempts"], failed["lastStatus"]) == (1, 400)
    assert failed["lastAttemptAt"]
    assert refused.status_code == 403
    assert again.status_code == 202
    assert post.headers["webhook-id"] == failed["id"]
    assert len(receiver.received) == 1
    [delivered] = alice.get(base, status="delivered").json()["value"]
    assert (delivered["id"], delivered["attempts"], delivered["lastStatus"]) == (
        failed["id"],
        2,
        202,
    )
    assert alice.post(f"{base}/msg_{'a' * 26}/redeliver").status_code == 404
    assert alice.get(base, cursor="not-a-cursor").json()["code"] == "invalid_cursor"
    assert alice.get(base, status="nope").status_code == 400


def test_deliveries_are_paged(alice: Caller, sandbox: SandboxServer, receiver: Receiver) -> None:
    subscription_id = subscribe(alice, receiver).json()["id"]
    ids = seed(sandbox, count=103)
    receiver.wait_for(lambda got: len(got) >= 103, timeout=60)
    base = f"/subscriptions/{subscription_id}/deliveries"

    first = alice.get(base).json()
    second = alice.get(base, cursor=first["nextCursor"]).json()

    assert len(first["value"]) == 100 and first["nextCursor"]
    assert len(second["value"]) == 3 and second["nextCursor"] is None
    listed = [d["messageId"] for d in first["value"] + second["value"]]
    assert sorted(listed) == sorted(ids)


def test_created_fires_for_mail_moved_or_copied_into_the_folder(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver
) -> None:
    """Graph notifies `created` for a message entering the folder by any path: new mail
    (or mail an inbox rule delivers there), a move, a copy."""
    subscription_id = subscribe(alice, receiver, folder="archive").json()["id"]
    moved, copied = seed(sandbox, count=2)  # in the inbox: no event
    [arrived] = seed(sandbox, folder="archive")

    assert (
        alice.post(f"/messages/{moved}/move", {"destinationFolder": "archive"}).status_code == 200
    )
    copy = alice.post(f"/messages/{copied}/copy", {"destinationFolder": "archive"})
    assert copy.status_code == 200, copy.text

    receiver.wait_for(lambda got: len(got) >= 3)
    settle()
    got = events(receiver)
    assert sorted(e["messageId"] for e in got) == sorted([arrived, moved, copy.json()["id"]])
    assert {(e["type"], e["changeType"], e["mailbox"]) for e in got} == {
        ("message.created", "created", ALICE)
    }
    assert all(e["subscriptionId"] == subscription_id and e["occurredAt"] for e in got)


def change_and_wait(
    alice: Caller,
    sandbox: SandboxServer,
    app: AppServer,
    message_id: str,
    path: str,
    body: dict[str, Any],
) -> None:
    """Change a message and wait until Graph's notification of it was worked. A flag
    transition is judged against the state the previous change left, so each change must
    reach the app and be worked (the queue) before the next one is made: waiting a fixed
    time raced on a busy machine. One Graph subscription is assumed."""

    def delivered() -> int:
        return int(graph_subscriptions(sandbox)[0]["delivered"])

    before = delivered()
    answer = alice.post(f"/messages/{message_id}{path}", body)
    assert answer.status_code == 200, answer.text
    wait_until(lambda: delivered() > before, 30, "Graph's notification of the change")
    app.wait_idle()


def test_flagged_fires_once_per_transition_to_flagged(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, notify_app: tuple[AppServer, Path]
) -> None:
    created = subscribe(alice, receiver, events=["flagged"])
    assert created.json()["events"] == ["flagged"]
    [graph_sub] = graph_subscriptions(sandbox)
    assert graph_sub["changeType"] == "created,updated"
    [message_id] = seed(sandbox)

    def change(path: str, body: dict[str, Any]) -> None:
        change_and_wait(alice, sandbox, notify_app[0], message_id, path, body)

    def flag(status: str) -> None:
        change("/flag", {"flagStatus": status})

    flag("flagged")
    [first] = receiver.wait_for(lambda got: len(got) >= 1)
    flag("flagged")  # a re-flag: no transition
    change("/markRead", {"isRead": True})
    settle()
    assert len(receiver.received) == 1  # nor does any other change fire
    flag("notFlagged")
    settle()
    flag("flagged")
    second = receiver.wait_for(lambda got: len(got) >= 2)[1]
    settle()

    assert len(receiver.received) == 2
    for post in (first, second):
        event = post.json()
        assert (event["type"], event["changeType"], event["messageId"]) == (
            "message.flagged",
            "updated",
            message_id,
        )
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


def test_a_message_flagged_before_subscribing_fires_only_on_its_next_transition(
    alice: Caller, sandbox: SandboxServer, receiver: Receiver, notify_app: tuple[AppServer, Path]
) -> None:
    [message_id] = seed(sandbox)
    answer = alice.post(f"/messages/{message_id}/flag", {"flagStatus": "flagged"})
    assert answer.status_code == 200, answer.text
    subscribe(alice, receiver, events=["flagged"])  # the creation records the flag it finds

    def change(path: str, body: dict[str, Any]) -> None:
        change_and_wait(alice, sandbox, notify_app[0], message_id, path, body)

    change("/markRead", {"isRead": True})  # still flagged: no transition
    change("/flag", {"flagStatus": "flagged"})  # a re-flag: none either
    settle()
    assert receiver.received == []
    change("/flag", {"flagStatus": "notFlagged"})
    change("/flag", {"flagStatus": "flagged"})
    [event] = receiver.wait_for(lambda got: len(got) >= 1)
    settle()
    assert len(receiver.received) == 1
    assert (event.json()["type"], event.json()["messageId"]) == ("message.flagged", message_id)


def test_the_reconciliation_timer_delivers_what_graph_never_notified_once(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
) -> None:
    subscribe(alice, receiver)
    [before] = seed(sandbox)
    receiver.wait_for(lambda got: len(got) >= 1)
    with sandbox.client() as control:
        # Graph loses notifications and says nothing (no `missed`).
        assert control.post("/_sandbox/notifications/pause", json={"drop": True}).status_code == 200
        try:
            lost = seed(sandbox, count=2)
        finally:
            assert control.delete("/_sandbox/notifications/pause").status_code == 200
    settle()
    assert len(receiver.received) == 1

    with notify_app[0].client() as client:
        listed = client.get("/admin/functions", headers={"x-functions-key": MASTER_KEY})
        runs = [
            client.post(
                "/admin/functions/notifications_reconcile",
                json={"input": ""},
                headers={"x-functions-key": MASTER_KEY},
            )
            for _ in range(2)  # a second sweep finds nothing new
        ]

    assert "notifications_reconcile" in listed.text
    assert [r.status_code for r in runs] == [202, 202]
    receiver.wait_for(lambda got: len(got) >= 3, timeout=30)
    notify_app[0].wait_idle()
    settle()
    assert sorted(e["messageId"] for e in events(receiver)) == sorted([before, *lost])


def test_the_reconciliation_redrives_an_event_whose_worker_died_with_no_job_left(
    alice: Caller,
    sandbox: SandboxServer,
    receiver: Receiver,
    notify_app: tuple[AppServer, Path],
    azurite: AzuriteServer,
) -> None:
    subscription_id = subscribe(alice, receiver).json()["id"]
    [graph_sub] = graph_subscriptions(sandbox)
    with sandbox.client() as control:
        control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": True})
        # Received before the subscription: a delta sweep does not take it for new mail, so
        # only the ledger's pending row can bring it to the receiver.
        [message_id] = seed(sandbox, receivedDateTime="2026-01-01T00:00:00Z")
        control.patch(f"/_sandbox/subscriptions/{graph_sub['id']}", json={"paused": False})
    table = ledger(azurite, notify_app[0])
    with table:
        table.create_entity(
            {
                "PartitionKey": subscription_id,
                "RowKey": delivery_id(subscription_id, message_id, "created"),
                "MessageId": message_id,
                "Type": "created",
                "Status": "pending",
                "Attempts": 0,
                "FirstAt": datetime.now(UTC),
                "LeaseUntil": datetime.now(UTC),  # ended: its worker is gone, no job left
                "LeaseToken": "the-dead-worker",
            }
        )
        settle()
        assert receiver.received == []

        with notify_app[0].client() as client:
            started = client.post(
                "/admin/functions/notifications_reconcile",
                json={"input": ""},
                headers={"x-functions-key": MASTER_KEY},
            )
        [post] = receiver.wait_for(lambda got: len(got) >= 1, timeout=30)
        settle()
        row = table.get_entity(subscription_id, post.headers["webhook-id"])

    assert started.status_code == 202
    assert post.json()["messageId"] == message_id
    assert len(receiver.received) == 1
    assert row["Status"] == "delivered"
