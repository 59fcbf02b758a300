"""Application (app-only) connections end to end over real HTTP: an admin app connects the
shared mailbox support@ for the app itself (no person signs in), the sandbox's Exchange
scope decides which mailboxes the app reaches, alice (on the allow-list) uses it, bob (not
on it) cannot see it, and a trigger on it delivers new mail.

One private app per module (its own tables, queues and PUBLIC_BASE_URL on the spare port),
like tests/e2e/test_notifications.py, since the trigger needs the app's notification URL.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.app import (
    AppServer,
    app_settings,
    isolated_settings,
    start_app,
    webhook_settings,
)
from tests.support.azurite import AzuriteServer
from tests.support.receiver import Receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
SUPPORT = "support@contoso.test"
ADMIN_APP = "5e2d8c1a-7f3b-4a9e-b6d0-1c2e3f4a5b6c"  # the tenant's admin automation
ADMIN_GROUP = "0b5a1f7e-8d2c-4c4e-9a1b-2f3e4d5c6b7a"  # ADMIN_GROUP_ID: Exchange admins
MB = 1024 * 1024


@pytest.fixture(scope="module")
def app_only(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AppServer, Path]]:
    tmp = tmp_path_factory.mktemp("apponly")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolated_settings("apo", tmp),
        **webhook_settings(spare_app_port),
        "ADMIN_GROUP_ID": ADMIN_GROUP,
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server, tmp / "audit.jsonl"
    finally:
        server.stop()


def client(app: AppServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{app.url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=120
    )


@pytest.fixture
def admin(app_only: tuple[AppServer, Path], sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with client(app_only[0], sandbox.app_token(["Connections.Admin"], ADMIN_APP)) as c:
        yield c


@pytest.fixture
def alice(app_only: tuple[AppServer, Path], sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with client(app_only[0], sandbox.user_token(ALICE)) as c:
        yield c


@pytest.fixture
def bob(app_only: tuple[AppServer, Path], sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with client(app_only[0], sandbox.user_token(BOB)) as c:
        yield c


@pytest.fixture
def support(admin: httpx.Client, app_only: tuple[AppServer, Path]) -> Iterator[dict[str, Any]]:
    created = admin.post(
        "/connections",
        json={
            "mode": "application",
            "mailbox": SUPPORT,
            "displayName": "Support desk",
            "allowed": [ALICE],
        },
    )
    assert created.status_code == 201, created.text
    yield {**created.json(), "location": created.headers["Location"]}
    app_only[0].wait_idle()
    admin.delete(f"/connections/{created.json()['id']}")
    app_only[0].wait_idle()


def audit(path: Path, action: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["action"] == action]


def graph_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        return [
            r for r in control.get("/_sandbox/requests").json() if r["path"].startswith("/v1.0")
        ]


def sandbox_mailbox(sandbox: SandboxServer, upn: str) -> dict[str, Any]:
    with sandbox.client() as control:
        return dict(control.get(f"/_sandbox/users/{upn}/mailbox").json())


def seed(sandbox: SandboxServer, upn: str, **template: Any) -> list[str]:
    with sandbox.client() as control:
        body: dict[str, Any] = {"count": 1, "folder": "inbox"}
        if template:
            body["template"] = template
        response = control.post(f"/_sandbox/users/{upn}/messages", json=body)
        assert response.status_code == 201, response.text
        return list(response.json()["ids"])


def test_an_admin_connects_the_shared_mailbox_without_anyone_signing_in(
    support: dict[str, Any], sandbox: SandboxServer, app_only: tuple[AppServer, Path]
) -> None:
    assert support["mode"] == "application"
    assert support["mailbox"] == SUPPORT
    assert support["allowed"] == [ALICE]
    assert support["location"].endswith(f"/api/connections/{support['id']}")
    # The app proved its reach with its own token on the mailbox's path, never /me.
    paths = [r["path"] for r in graph_requests(sandbox)]
    assert f"/v1.0/users/{SUPPORT}/mailFolders/inbox" in paths
    assert not [p for p in paths if p.startswith("/v1.0/me")]
    [created] = [
        e
        for e in audit(app_only[1], "connection.created")
        if e.get("connection_id") == support["id"]
    ]
    assert created["outcome"] == "success"
    assert created["mode"] == "application"
    assert created["caller_app_id"] == ADMIN_APP
    assert created["mailbox"] == SUPPORT
    assert created["time"]


def test_alice_on_the_allow_list_lists_sends_moves_and_deletes_there(
    support: dict[str, Any], alice: httpx.Client, sandbox: SandboxServer
) -> None:
    cid = support["id"]
    listed = alice.get("/connections")
    assert cid in [c["id"] for c in listed.json()["value"]]
    [message_id] = seed(sandbox, SUPPORT, subject="Printer on fire")
    page = alice.get(f"/connections/{cid}/messages")
    assert page.status_code == 200, page.text
    assert message_id in [m["id"] for m in page.json()["value"]]

    data = os.urandom(5 * MB)
    subject = f"Big from support {uuid.uuid4()}"
    sent = alice.post(
        f"/connections/{cid}/messages/send",
        json={
            "subject": subject,
            "toRecipients": [{"emailAddress": {"address": BOB}}],
            "attachments": [{"name": "logs.zip", "contentBytes": base64.b64encode(data).decode()}],
        },
    )
    moved = alice.post(
        f"/connections/{cid}/messages/{message_id}/move", json={"destinationFolder": "archive"}
    )
    deleted = alice.delete(
        f"/connections/{cid}/messages/{message_id}", params={"mode": "permanent"}
    )

    assert sent.status_code == 202, sent.text
    assert moved.status_code == 200, moved.text
    assert deleted.status_code == 204, deleted.text
    # Over 3 MB in a shared mailbox: an upload session, which app permissions allow.
    paths = [r["path"] for r in graph_requests(sandbox)]
    assert any(p.endswith("/attachments/createUploadSession") for p in paths)
    assert not [p for p in paths if p.startswith("/v1.0/me")]
    received = [m for m in sandbox_mailbox(sandbox, BOB)["messages"] if m["subject"] == subject]
    assert [a["size"] for a in received[0]["attachments"]] == [5 * MB]
    assert message_id not in [m["id"] for m in sandbox_mailbox(sandbox, SUPPORT)["messages"]]


def test_bob_not_on_the_allow_list_gets_not_found(
    support: dict[str, Any], bob: httpx.Client
) -> None:
    cid = support["id"]

    assert bob.get(f"/connections/{cid}").status_code == 404
    assert bob.get(f"/connections/{cid}/messages").json()["code"] == "connection_not_found"
    assert cid not in [c["id"] for c in bob.get("/connections").json()["value"]]


def test_adding_bob_to_the_allow_list_lets_him_in(
    support: dict[str, Any], admin: httpx.Client, bob: httpx.Client, alice: httpx.Client
) -> None:
    cid = support["id"]
    by_alice = alice.patch(f"/connections/{cid}", json={"allowed": [ALICE, BOB]})
    patched = admin.patch(f"/connections/{cid}", json={"allowed": [ALICE, BOB]})

    assert by_alice.status_code == 403  # using it is not administering it
    assert patched.status_code == 200, patched.text
    assert patched.json()["allowed"] == [ALICE, BOB]
    assert bob.get(f"/connections/{cid}/messages").status_code == 200


def test_a_mailbox_outside_the_scope_is_refused_with_the_command_to_run(
    admin: httpx.Client, sandbox: SandboxServer, app_only: tuple[AppServer, Path]
) -> None:
    with sandbox.client() as control:
        control.post(
            "/_sandbox/users", json={"upn": "hr@contoso.test", "sharedMailbox": True}
        ).raise_for_status()

    refused = admin.post("/connections", json={"mode": "application", "mailbox": "hr@contoso.test"})

    assert refused.status_code == 403
    problem = refused.json()
    assert problem["code"] == "mailbox_out_of_scope"
    assert "New-ManagementRoleAssignment -App" in problem["detail"]
    assert "-CustomResourceScope" in problem["detail"]
    assert "hr@contoso.test" not in [
        c["mailbox"] for c in admin.get("/connections").json()["value"]
    ]
    denied = [e for e in audit(app_only[1], "connection.created") if e["outcome"] == "failure"]
    assert denied and denied[-1]["reason"] == "mailbox_out_of_scope"


def test_only_an_admin_creates_one(alice: httpx.Client) -> None:
    refused = alice.post("/connections", json={"mode": "application", "mailbox": SUPPORT})

    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


def test_a_person_in_the_admin_group_creates_one_too(
    app_only: tuple[AppServer, Path], sandbox: SandboxServer
) -> None:
    with sandbox.client() as control:
        minted = control.post("/_sandbox/token", json={"user": BOB, "groups": [ADMIN_GROUP]})
    with client(app_only[0], minted.json()["access_token"]) as bob_admin:
        created = bob_admin.post("/connections", json={"mode": "application", "mailbox": SUPPORT})
        assert created.status_code == 201, created.text
        listed = bob_admin.get("/connections").json()["value"]
        removed = bob_admin.delete(f"/connections/{created.json()['id']}")

    assert created.json()["ownerOid"] in {c["ownerOid"] for c in listed}
    assert removed.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"mode": "delegated", "mailbox": SUPPORT},
        {"mode": "application", "mailbox": "../me"},
        {"mode": "application", "mailbox": SUPPORT, "allowed": ["not a principal"]},
        {"mode": "application"},
    ],
)
def test_bad_input_is_a_validation_problem_before_any_graph_call(
    admin: httpx.Client, sandbox: SandboxServer, body: dict[str, Any]
) -> None:
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()

    refused = admin.post("/connections", json=body)

    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_failed"
    assert graph_requests(sandbox) == []


def test_a_revoked_grant_needs_an_admin_not_a_login(
    support: dict[str, Any], alice: httpx.Client, sandbox: SandboxServer
) -> None:
    cid = support["id"]
    assert alice.get(f"/connections/{cid}/messages").status_code == 200  # token cached
    with sandbox.client() as control:
        control.delete(f"/_sandbox/apps/{sandbox.client_id}/grants").raise_for_status()
        # An hour on: the app's cached token has expired at Graph, as it would after a
        # revocation in Entra (issued tokens keep their roles until they expire).
        control.post("/_sandbox/clock", json={"offsetSeconds": 3700}).raise_for_status()
    try:
        refused = alice.get(f"/connections/{cid}/messages")
    finally:
        with sandbox.client() as control:
            control.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()

    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "reauth_required"
    assert "loginUrl" not in problem


def test_a_trigger_on_the_shared_mailbox_delivers_new_mail(
    support: dict[str, Any], alice: httpx.Client, sandbox: SandboxServer, receiver: Receiver
) -> None:
    cid = support["id"]
    created = alice.post(
        f"/connections/{cid}/subscriptions", json={"notificationUrl": f"{receiver.url}/flow"}
    )
    assert created.status_code == 201, created.text
    with sandbox.client() as control:
        graph_subs = control.get("/_sandbox/subscriptions").json()["value"]
    # The form Graph documents for a folder's messages, on the shared mailbox (not /me).
    assert [s["resource"] for s in graph_subs] == [f"users/{SUPPORT}/mailFolders('inbox')/messages"]

    [message_id] = seed(sandbox, SUPPORT, subject="New ticket")

    [post] = receiver.wait_for(lambda got: len(got) >= 1)
    event = post.json()
    assert event["connectionId"] == cid
    assert event["messageId"] == message_id
