"""Reading mail through the app over real HTTP: dev host + sandbox + Azurite."""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.graph.seed import large_payload
from shared.mail.models import FolderList, Message, MessageList
from tests.support.app import AppServer, start_app
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"


@pytest.fixture
def alice(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, ALICE)


def graph_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        return [
            r for r in control.get("/_sandbox/requests").json() if r["path"].startswith("/v1.0/")
        ]


def clear_requests(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()


def test_filters_become_one_escaped_graph_query(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)

    response = alice.get(
        "/messages", unread="true", importance="high", subjectContains="O'Brien", top=5
    )

    assert response.status_code == 200, response.text
    sent = graph_requests(sandbox)
    assert len(sent) == 1
    query = parse_qs(sent[0]["query"])
    assert sent[0]["path"] == "/v1.0/me/mailFolders/inbox/messages"
    assert query["$top"] == ["5"]
    assert query["$filter"] == [
        "isRead eq false and contains(subject,'O''Brien') and importance eq 'high'"
    ]
    assert sent[0]["headers"]["prefer"].startswith('IdType="ImmutableId"')
    assert sent[0]["headers"]["client-request-id"] == response.headers["x-correlation-id"]


def test_unread_high_importance_messages_are_the_right_ones(alice: Caller) -> None:
    response = alice.get("/messages", unread="true", importance="high", top=50)

    messages = response.json()["value"]
    MessageList.model_validate(response.json())  # what callers get is what OpenAPI says
    assert messages, "the seed has unread high-importance mail"
    assert all(m["isRead"] is False and m["importance"] == "high" for m in messages)


def test_search_is_sent_as_graph_search(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)

    response = alice.get("/messages", search="invoice")
    mixed = alice.get("/messages", search="invoice", unread="true")

    assert response.status_code == 200
    assert parse_qs(graph_requests(sandbox)[0]["query"])["$search"] == ['"invoice"']
    assert mixed.status_code == 400
    assert mixed.json()["code"] == "validation_failed"


def test_paging_through_1200_messages_with_cursors(alice: Caller, sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.post(
            f"/_sandbox/users/{ALICE}/messages", json={"count": 1200, "folder": "archive"}
        ).raise_for_status()
    seen: list[str] = []
    page = alice.get("/messages", folder="archive", top=100, select="id,subject")
    pages = 1
    while True:
        assert page.status_code == 200, page.text
        seen += [m["id"] for m in page.json()["value"]]
        if not page.json()["nextCursor"]:
            assert page.json()["nextLink"] is None
            break
        # Odd pages follow the cursor, even pages the nextLink (the connector's way).
        if pages % 2:
            page = alice.get("/messages", folder="archive", cursor=page.json()["nextCursor"])
        else:
            page = alice.client.get(page.json()["nextLink"])
        pages += 1

    assert pages == 12
    assert len(seen) == len(set(seen)) == 1200


@pytest.mark.parametrize("tamper", ["flip", "foreign", "garbage"])
def test_bad_cursors_are_refused_before_any_graph_request(
    alice: Caller, app_server: AppServer, sandbox: SandboxServer, tamper: str
) -> None:
    first = alice.get("/messages", top=2)
    cursor = first.json()["nextCursor"]
    bob = Caller(app_server, sandbox, BOB)
    clear_requests(sandbox)

    if tamper == "flip":
        bad = alice.get(
            "/messages", cursor=cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
        )
    elif tamper == "foreign":
        bad = bob.get("/messages", cursor=cursor)
    else:
        bad = alice.get("/messages", cursor="not-a-cursor")

    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    assert graph_requests(sandbox) == []


@pytest.mark.parametrize(
    "message_id",
    ["..%2F..%2Fusers%2Fbob@contoso.test%2Fmessages", "abc%2Fdef", "abc%00", "A" * 10_000],
)
def test_path_injection_ids_are_refused_before_any_graph_request(
    alice: Caller, sandbox: SandboxServer, message_id: str
) -> None:
    clear_requests(sandbox)

    response = alice.client.get(f"/messages/{message_id}")

    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert response.json()["code"] == "validation_failed"
    assert graph_requests(sandbox) == []


def test_get_message_mime_and_the_large_attachment_intact(alice: Caller) -> None:
    listing = alice.get("/messages", hasAttachments="true", top=50).json()["value"]
    found = None
    for message in listing:
        attachments = alice.get(f"/messages/{message['id']}/attachments").json()["value"]
        big = [a for a in attachments if a["size"] >= 4 * 1024 * 1024]
        if big:
            found = (message["id"], big[0])
            break
    assert found, "the seed has a ≥ 4 MB attachment"
    message_id, info = found

    message = alice.get(f"/messages/{message_id}", includeAttachments="true", bodyType="text")
    mime = alice.get(f"/messages/{message_id}/mime")
    content = alice.get(f"/messages/{message_id}/attachments/{info['id']}/content")

    Message.model_validate(message.json())
    assert message.json()["body"]["contentType"] == "text"
    assert info["id"] in [a["id"] for a in message.json()["attachments"]]
    assert mime.headers["content-type"].startswith("message/rfc822")
    assert b"Subject:" in mime.content
    assert content.headers["content-type"] == info["contentType"]
    assert "attachment;" in content.headers["content-disposition"]
    assert hashlib.sha256(content.content).digest() == hashlib.sha256(large_payload()).digest()


def test_folders_and_children(alice: Caller) -> None:
    folders = alice.get("/folders").json()["value"]
    inbox = next(f for f in folders if f["displayName"] == "Inbox")

    children = alice.get(f"/folders/{inbox['id']}/children").json()["value"]
    FolderList.model_validate({"value": folders})

    assert {"Inbox", "Drafts", "Sent Items"} <= {f["displayName"] for f in folders}
    assert [c["displayName"] for c in children] == ["Projects"]


def test_shared_mailbox_for_alice_but_not_bob(
    alice: Caller, app_server: AppServer, sandbox: SandboxServer
) -> None:
    bob = Caller(app_server, sandbox, BOB)

    allowed = alice.get("/messages", mailbox="support@contoso.test", top=50)
    refused = bob.get("/messages", mailbox="support@contoso.test")

    assert allowed.status_code == 200
    assert len(allowed.json()["value"]) == 10
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"


def test_throttling_then_success(alice: Caller, sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.post(
            "/_sandbox/faults",
            json={
                "pathRegex": "^/v1.0/me/mailFolders/inbox/messages$",
                "status": 429,
                "headers": {"Retry-After": "1"},
                "body": {"error": {"code": "ApplicationThrottled", "message": "slow down"}},
                "times": 1,
            },
        ).raise_for_status()

    response = alice.get("/messages", top=1)

    assert response.status_code == 200
    assert len(response.json()["value"]) == 1


def test_reads_are_audited_without_content(alice: Caller, settings_env: dict[str, str]) -> None:
    listing = alice.get("/messages", top=3)
    audit = Path(settings_env["AUDIT_LOG_PATH"]).read_text()

    reads = [json.loads(line) for line in audit.splitlines() if '"mail.read"' in line]
    mine = [r for r in reads if r.get("connection_id") == alice.connection_id]
    assert mine and mine[-1]["counts"] == {"items": 3}
    assert mine[-1]["mailbox"] == ALICE
    assert mine[-1]["graph_request_id"]
    for message in listing.json()["value"]:
        assert message["subject"] not in audit


def jump_identity_clock(sandbox: SandboxServer, caller: Caller, seconds: int) -> None:
    """Move the sandbox (Entra + Graph) clock ahead so the app's cached Graph token expires
    there; the caller's own token for the app is minted first, valid across the jump."""
    with sandbox.client() as control:
        minted = control.post(
            "/_sandbox/token", json={"user": ALICE, "lifetimeSeconds": seconds + 3600}
        )
        caller.client.headers["Authorization"] = f"Bearer {minted.json()['access_token']}"
        control.post("/_sandbox/clock", json={"offsetSeconds": seconds}).raise_for_status()


def test_an_expired_access_token_is_refreshed_transparently(
    alice: Caller, sandbox: SandboxServer
) -> None:
    assert alice.get("/messages", top=1).status_code == 200  # the worker now caches a token
    jump_identity_clock(sandbox, alice, 7200)
    try:
        response = alice.get("/messages", top=1)
    finally:
        with sandbox.client() as control:
            control.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()

    assert response.status_code == 200, response.text


def test_a_revoked_grant_answers_409_with_a_login_url(
    alice: Caller, sandbox: SandboxServer
) -> None:
    assert alice.get("/messages", top=1).status_code == 200
    with sandbox.client() as control:
        control.post("/_sandbox/identity/revoke", json={"upn": ALICE}).raise_for_status()
    jump_identity_clock(sandbox, alice, 7200)
    try:
        response = alice.get("/messages", top=1)
        again = alice.get("/messages", top=1)
    finally:
        with sandbox.client() as control:
            control.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "reauth_required"
    login = urlsplit(response.json()["loginUrl"])
    assert login.path == "/api/auth/login"
    assert again.status_code == 409


def add_fault(sandbox: SandboxServer, **fault: Any) -> None:
    with sandbox.client() as control:
        control.post("/_sandbox/faults", json=fault).raise_for_status()


def test_graph_503_three_times_then_success(alice: Caller, sandbox: SandboxServer) -> None:
    add_fault(
        sandbox,
        pathRegex="^/v1.0/me/mailFolders/inbox/messages$",
        status=503,
        body={"error": {"code": "ServiceUnavailable", "message": "busy"}},
        times=3,
    )
    clear_requests(sandbox)

    response = alice.get("/messages", top=2)

    assert response.status_code == 200, response.text
    assert len(graph_requests(sandbox)) == 4  # three refusals, then the answer


def test_persistent_graph_503_is_a_problem_within_the_deadline(
    settings_env: dict[str, str], servers_dir: Path, sandbox: SandboxServer, spare_app_port: int
) -> None:
    settings = {
        **settings_env,
        "GRAPH_RETRY_DEADLINE_SECONDS": "3",
        "REDIRECT_URI": f"http://127.0.0.1:{spare_app_port}/api/auth/callback",
    }
    app = start_app(settings, servers_dir, spare_app_port)
    try:
        caller = Caller(app, sandbox, ALICE)
        add_fault(sandbox, pathRegex="^/v1.0/me/mailFolders/", status=503)
        started = time.monotonic()
        response = caller.get("/messages", top=2)
        elapsed = time.monotonic() - started
    finally:
        app.stop()

    assert response.status_code == 503
    assert response.json()["code"] in {"graph_unavailable", "graph_throttled"}
    assert elapsed < 3 + 2  # the deadline, plus one attempt's worth of slack


def test_twenty_concurrent_reads_keep_at_most_four_in_flight_at_graph(
    alice: Caller, sandbox: SandboxServer
) -> None:
    with sandbox.client() as control:
        control.post("/_sandbox/latency", json={"identityMs": 0, "graphMs": 300}).raise_for_status()
    alice.get("/messages", top=1)  # warm: token and connection cached before the burst
    clear_requests(sandbox)

    def one(_: int) -> int:
        return alice.get("/messages", top=1).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(one, range(20)))
    arrivals = sorted(parse_time(r["time"]) for r in graph_requests(sandbox))

    assert statuses == [200] * 20
    assert len(arrivals) == 20
    # With 300 ms per Graph answer and at most 4 in flight, any 300 ms window holds ≤ 4
    # arrivals; 20 unthrottled would arrive together.
    busiest = max(sum(1 for t in arrivals if a <= t < a + 0.29) for a in arrivals)
    assert busiest <= 4


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
