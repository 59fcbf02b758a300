"""Change notifications: `/v1.0/subscriptions`, the validation handshake, notifications for new
messages (seeded, sent, moved), lifecycle events on demand and expiry on the sandbox clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.sandbox.graph.support import ALICE, SUPPORT, Graph, app_token, error_code, seed
from tests.support.receiver import Receiver, start_receiver
from tests.support.sandbox import SandboxServer


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.stop()


def _expiry(minutes: int = 60) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscribe(graph: Graph, receiver: Receiver, **overrides: Any) -> Any:
    body = {
        "changeType": "created",
        "notificationUrl": f"{receiver.url}/hook",
        "lifecycleNotificationUrl": f"{receiver.url}/lifecycle",
        "resource": "me/mailFolders('Inbox')/messages",
        "expirationDateTime": _expiry(),
        "clientState": "s3cret-state",
        **overrides,
    }
    return graph.post("/subscriptions", json=body)


def _items(receiver: Receiver, path: str = "/hook") -> list[dict[str, Any]]:
    return [item for r in receiver.received if r.path == path for item in r.json()["value"]]


def test_creation_performs_the_handshake_with_an_encoded_token(
    alice: Graph, receiver: Receiver
) -> None:
    response = _subscribe(alice, receiver)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["changeType"] == "created"
    assert body["clientState"] == "s3cret-state"
    # Both URLs were validated; the token is prose that only survives URL-decoding.
    assert len(receiver.handshakes) == 2
    assert all(t.startswith("Validation: ") and " " in t for t in receiver.handshakes)
    assert alice.get(f"/subscriptions/{body['id']}").json()["id"] == body["id"]


def test_a_failed_handshake_creates_nothing(alice: Graph, receiver: Receiver) -> None:
    receiver.echo_handshake = False

    response = _subscribe(alice, receiver)

    assert response.status_code == 400
    assert error_code(response) == "ValidationError"
    assert alice.get("/subscriptions").json()["value"] == []


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"notificationUrl": "http://example.com/hook"}, "ValidationError"),
        ({"expirationDateTime": _expiry(10080 + 24 * 60)}, "ExtensionError"),
        ({"clientState": "x" * 129}, "BadRequest"),
        ({"resource": "me/events"}, "ExtensionError"),
        ({"bogus": 1}, "InvalidRequest"),
    ],
)
def test_invalid_subscriptions_are_refused(
    alice: Graph, receiver: Receiver, override: dict[str, Any], code: str
) -> None:
    response = _subscribe(alice, receiver, **override)

    assert response.status_code == 400
    assert error_code(response) == code


def test_new_messages_in_the_folder_are_notified_with_the_client_state(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    sid = _subscribe(alice, receiver).json()["id"]

    ids = seed(sandbox, ALICE, count=3)
    seed(sandbox, ALICE, folder="archive")  # another folder: not notified

    receiver.wait_for(lambda _: len(_items(receiver)) >= 3)
    items = _items(receiver)
    assert [i["resourceData"]["id"] for i in items] == ids
    assert {i["clientState"] for i in items} == {"s3cret-state"}
    assert {i["subscriptionId"] for i in items} == {sid}
    assert {i["changeType"] for i in items} == {"created"}


def test_mail_sent_to_a_subscribed_inbox_is_notified(
    alice: Graph, bob: Graph, receiver: Receiver
) -> None:
    _subscribe(alice, receiver)

    sent = bob.post(
        "/me/sendMail",
        json={
            "message": {
                "subject": "hello",
                "toRecipients": [{"emailAddress": {"address": ALICE}}],
                "body": {"contentType": "text", "content": "hi"},
            }
        },
    )

    assert sent.status_code == 202
    receiver.wait_for(lambda _: len(_items(receiver)) == 1)
    message_id = _items(receiver)[0]["resourceData"]["id"]
    assert alice.get(f"/me/messages/{message_id}").json()["subject"] == "hello"


def test_lifecycle_events_on_demand_and_delete(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    sid = _subscribe(alice, receiver).json()["id"]

    with sandbox.client() as control:
        for event in ("reauthorizationRequired", "missed", "subscriptionRemoved"):
            answer = control.post(f"/_sandbox/subscriptions/{sid}/lifecycle", json={"event": event})
            assert answer.json() == {"event": event, "delivered": True}

    events = [i["lifecycleEvent"] for i in _items(receiver, "/lifecycle")]
    assert events == ["reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert alice.get(f"/subscriptions/{sid}").status_code == 404


def test_paused_subscriptions_miss_messages(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    sid = _subscribe(alice, receiver).json()["id"]
    with sandbox.client() as control:
        control.patch(f"/_sandbox/subscriptions/{sid}", json={"paused": True}).raise_for_status()

    seed(sandbox, ALICE, count=2)

    assert _items(receiver) == []


def test_renewal_expiry_and_ownership(
    alice: Graph, bob: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    sid = _subscribe(alice, receiver).json()["id"]

    renewed = alice.patch(f"/subscriptions/{sid}", json={"expirationDateTime": _expiry(120)})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"].startswith(_expiry(120)[:16])
    # Subscriptions belong to the app that created them (the same client here).
    assert bob.get(f"/subscriptions/{sid}").status_code == 200

    with sandbox.client() as control:
        control.post("/_sandbox/clock", json={"offsetSeconds": 3 * 3600}).raise_for_status()
        try:
            # (the token has expired too at this hour: the control API shows the state)
            assert control.get("/_sandbox/subscriptions").json()["value"] == []
        finally:
            control.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()


def test_another_users_inbox_needs_a_grant(bob: Graph, receiver: Receiver) -> None:
    response = _subscribe(bob, receiver, resource=f"users/{ALICE}/messages")

    # Bob has no grant to alice's mailbox in the default seed: refused before any handshake.
    assert response.status_code == 403
    assert receiver.handshakes == []


def test_a_custom_folder_is_named_by_its_raw_id_as_graph_documents_it(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    folder = alice.post("/me/mailFolders", json={"displayName": "Raw ids"}).json()["id"]
    encoded = folder.replace("=", "%3D").replace("+", "%2B")

    created = _subscribe(alice, receiver, resource=f"me/mailFolders('{folder}')/messages")
    refused = _subscribe(alice, receiver, resource=f"me/mailFolders/{encoded}/messages")
    ids = seed(sandbox, ALICE, folder=folder)

    assert created.status_code == 201
    if encoded != folder:  # a resource is not URL-decoded: the encoded id names no folder
        assert refused.status_code == 404
    receiver.wait_for(lambda _: len(_items(receiver)) >= 1)
    assert [i["resourceData"]["id"] for i in _items(receiver)] == ids


def test_updated_is_notified_for_a_patched_message_when_asked_for(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    _subscribe(alice, receiver, changeType="created,updated")
    [message_id] = seed(sandbox, ALICE)
    receiver.wait_for(lambda _: len(_items(receiver)) >= 1)

    patched = alice.patch(f"/me/messages/{message_id}", json={"flag": {"flagStatus": "flagged"}})

    assert patched.status_code == 200
    receiver.wait_for(lambda _: len(_items(receiver)) >= 2)
    assert [(i["changeType"], i["resourceData"]["id"]) for i in _items(receiver)] == [
        ("created", message_id),
        ("updated", message_id),
    ]


def test_created_only_subscriptions_hear_nothing_of_updates(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    _subscribe(alice, receiver)
    [message_id] = seed(sandbox, ALICE)
    receiver.wait_for(lambda _: len(_items(receiver)) >= 1)

    alice.patch(f"/me/messages/{message_id}", json={"isRead": True}).raise_for_status()
    time.sleep(1)

    assert len(_items(receiver)) == 1


def test_a_global_pause_holds_or_drops_every_notification(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    _subscribe(alice, receiver)
    with sandbox.client() as control:
        assert control.post("/_sandbox/notifications/pause", json={}).json() == {
            "paused": True,
            "drop": False,
        }
        held = seed(sandbox, ALICE)
        time.sleep(0.5)
        assert _items(receiver) == []
        control.delete("/_sandbox/notifications/pause").raise_for_status()
        receiver.wait_for(lambda _: len(_items(receiver)) >= 1)

        control.post("/_sandbox/notifications/pause", json={"drop": True}).raise_for_status()
        seed(sandbox, ALICE)
        control.delete("/_sandbox/notifications/pause").raise_for_status()
        time.sleep(1)
        bad = control.post("/_sandbox/notifications/pause", json={"drop": "yes"})

    assert [i["resourceData"]["id"] for i in _items(receiver)] == held
    assert bad.status_code == 400


def test_delegated_callers_cannot_subscribe_to_a_shared_mailbox_they_may_read(
    alice: Graph, sandbox: SandboxServer, receiver: Receiver
) -> None:
    readable = alice.get(f"/users/{SUPPORT}/mailFolders/inbox/messages")

    refused = _subscribe(alice, receiver, resource=f"users/{SUPPORT}/mailFolders('inbox')/messages")
    app = Graph(sandbox, app_token(sandbox, ["Mail.Read"]))
    try:
        allowed = _subscribe(
            app, receiver, resource=f"users/{SUPPORT}/mailFolders('inbox')/messages"
        )
    finally:
        app.close()

    assert readable.status_code == 200  # the grant and the .Shared scope read it
    assert refused.status_code == 403
    assert error_code(refused) == "ExtensionError"  # Exchange's wrapped Forbidden
    assert allowed.status_code == 201
