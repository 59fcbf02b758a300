"""Writing mail through the app over real HTTP: dev host + sandbox + Azurite.

Each test asserts the mailbox afterwards (the sandbox's mailbox view), the Graph requests the
app sent (the sandbox's request log), and that every body the app sent uses only properties
Microsoft's v1.0 CSDL defines for its type.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.graph.test_csdl_fidelity import Csdl, _local, load_csdl
from tests.support.app import AppServer
from tests.support.callers import Caller
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
SUPPORT = "support@contoso.test"
MB = 1024 * 1024


@pytest.fixture
def alice(app_server: AppServer, sandbox: SandboxServer) -> Caller:
    return Caller(app_server, sandbox, ALICE)


def to(*addresses: str) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": a}} for a in addresses]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def mailbox(sandbox: SandboxServer, upn: str) -> dict[str, Any]:
    with sandbox.client() as control:
        view: dict[str, Any] = control.get(f"/_sandbox/users/{upn}/mailbox").json()
    return view


def folder_of(view: dict[str, Any], well_known: str) -> str:
    return next(f["id"] for f in view["folders"] if f.get("wellKnownName") == well_known)


def in_folder(view: dict[str, Any], well_known: str) -> list[dict[str, Any]]:
    folder = folder_of(view, well_known)
    return [m for m in view["messages"] if m["parentFolderId"] == folder]


def graph_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with sandbox.client() as control:
        logged: list[dict[str, Any]] = control.get("/_sandbox/requests").json()
    return [r for r in logged if r["path"].startswith(("/v1.0/", "/_upload/"))]


def clear_requests(sandbox: SandboxServer) -> None:
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()


def seed(sandbox: SandboxServer, upn: str, count: int, folder: str = "inbox") -> list[str]:
    with sandbox.client() as control:
        response = control.post(
            f"/_sandbox/users/{upn}/messages", json={"count": count, "folder": folder}
        )
        response.raise_for_status()
        ids: list[str] = response.json()["ids"]
    return ids


# --- the CSDL check ----------------------------------------------------------------------
_ACTION_BINDING = {"sendMail": "graph.user", "createUploadSession": "Collection(graph.attachment)"}


def check_properties(csdl: Csdl, type_name: str, value: Any, where: str) -> None:
    """Every key of `value` is a property the CSDL defines for `type_name` (recursively)."""
    if isinstance(value, list):
        for item in value:
            check_properties(csdl, type_name, item, where)
        return
    if not isinstance(value, dict):
        return
    declared = value.get("@odata.type")
    if isinstance(declared, str):
        type_name = _local(declared.lstrip("#")) or type_name
    properties = csdl.all_properties(type_name)
    for key, item in value.items():
        if key.startswith("@odata."):
            continue
        assert key in properties, f"{where}: {key!r} is not a property of {type_name}"
        inner = _local(properties[key].removeprefix("Collection(").removesuffix(")"))
        if inner in csdl.types:
            check_properties(csdl, inner, item, f"{where}.{key}")


def check_action(csdl: Csdl, action: str, body: Any, where: str) -> None:
    binding = _ACTION_BINDING.get(action, "graph.message")
    params = next(
        p for name, p in csdl.actions if name == action and p.get("bindingParameter") == binding
    )
    by_lower = {name.lower(): type_ref for name, type_ref in params.items()}
    for key, value in (body or {}).items():
        assert key.lower() in by_lower, f"{where}: {key!r} is not a parameter of {action}"
        inner = _local(by_lower[key.lower()].removeprefix("Collection(").removesuffix(")"))
        if inner in csdl.types:
            check_properties(csdl, inner, value, f"{where}.{key}")


def check_request_body(csdl: Csdl, method: str, path: str, body: Any) -> None:
    where = f"{method} {path}"
    segments = [s for s in path.split("/") if s]
    last = segments[-1]
    if path.endswith("/$batch"):
        for item in body["requests"]:
            check_request_body(
                csdl, item["method"], "/v1.0" + item["url"].split("?")[0], item.get("body")
            )
        return
    if body is None or method not in ("POST", "PATCH"):
        return
    if last == "sendMail":
        check_action(csdl, "sendMail", body, where)
    elif last == "createUploadSession":
        check_action(csdl, "createUploadSession", body, where)
    elif last == "attachments":
        check_properties(csdl, "attachment", body, where)
    elif last in ("mailFolders", "childFolders") or "mailFolders" in segments[-2:]:
        check_properties(csdl, "mailFolder", body, where)
    elif last == "messages" or (method == "PATCH" and segments[-2] == "messages"):
        check_properties(csdl, "message", body, where)
    else:
        check_action(csdl, last, body, where)


def assert_bodies_follow_csdl(sandbox: SandboxServer) -> list[dict[str, Any]]:
    csdl = load_csdl()
    sent = graph_requests(sandbox)
    for request in sent:
        if request["path"].startswith("/v1.0/"):
            check_request_body(csdl, request["method"], request["path"], request["body"])
    return sent


# --- send ---------------------------------------------------------------------------------
def test_send_without_attachments_reaches_bob(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)
    subject = f"Plain {uuid.uuid4()}"

    response = alice.post(
        "/messages/send",
        {
            "subject": subject,
            "body": {"contentType": "text", "content": "Hello Bob"},
            "toRecipients": to(BOB),
            "importance": "high",
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"id": None, "internetMessageId": None}
    sent = assert_bodies_follow_csdl(sandbox)
    assert [(r["method"], r["path"]) for r in sent] == [("POST", "/v1.0/me/sendMail")]
    assert sent[0]["body"]["message"]["toRecipients"] == to(BOB)
    assert sent[0]["body"]["saveToSentItems"] is True
    received = [m for m in in_folder(mailbox(sandbox, BOB), "inbox") if m["subject"] == subject]
    assert len(received) == 1 and received[0]["importance"] == "high"
    assert [m for m in in_folder(mailbox(sandbox, ALICE), "sentitems") if m["subject"] == subject]


def test_send_with_a_small_attachment_uses_send_mail(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)
    subject = f"Small {uuid.uuid4()}"
    data = os.urandom(100_000)

    response = alice.post(
        "/messages/send",
        {
            "subject": subject,
            "body": {"contentType": "html", "content": "<p>see attached</p>"},
            "toRecipients": to(BOB),
            "attachments": [{"name": "a.bin", "contentBytes": b64(data)}],
        },
    )

    assert response.status_code == 202, response.text
    sent = assert_bodies_follow_csdl(sandbox)
    assert [r["path"] for r in sent] == ["/v1.0/me/sendMail"]
    attachment = sent[0]["body"]["message"]["attachments"][0]
    assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
    received = next(m for m in mailbox(sandbox, BOB)["messages"] if m["subject"] == subject)
    assert [(a["name"], a["size"]) for a in received["attachments"]] == [("a.bin", 100_000)]


def test_a_10_mb_attachment_goes_through_an_upload_session_intact(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)
    subject = f"Large {uuid.uuid4()}"
    data = os.urandom(10 * MB)

    response = alice.post(
        "/messages/send",
        {
            "subject": subject,
            "toRecipients": to(BOB),
            "attachments": [
                {"name": "big.bin", "contentType": "application/zip", "contentBytes": b64(data)}
            ],
        },
    )

    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    assert message_id
    sent = assert_bodies_follow_csdl(sandbox)
    steps = [(r["method"], re.sub(r"/messages/[^/]+", "/messages/{id}", r["path"])) for r in sent]
    puts = [r for r in sent if r["method"] == "PUT"]
    assert steps[0] == ("POST", "/v1.0/me/messages")
    assert steps[1] == ("POST", "/v1.0/me/messages/{id}/attachments/createUploadSession")
    assert steps[-1] == ("POST", "/v1.0/me/messages/{id}/send")
    assert [p["headers"]["content-range"] for p in puts] == [
        f"bytes 0-{4 * MB - 1}/{10 * MB}",
        f"bytes {4 * MB}-{8 * MB - 1}/{10 * MB}",
        f"bytes {8 * MB}-{10 * MB - 1}/{10 * MB}",
    ]
    assert all("authorization" not in p["headers"] for p in puts)
    # The sent copy keeps the draft's immutable id; its attachment is byte-identical.
    attachments = alice.get(f"/messages/{message_id}/attachments").json()["value"]
    content = alice.get(f"/messages/{message_id}/attachments/{attachments[0]['id']}/content")
    assert hashlib.sha256(content.content).hexdigest() == hashlib.sha256(data).hexdigest()
    received = next(m for m in mailbox(sandbox, BOB)["messages"] if m["subject"] == subject)
    assert [a["size"] for a in received["attachments"]] == [10 * MB]
    assert received["internetMessageId"] == response.json()["internetMessageId"]


def test_an_oversized_message_is_413_and_nothing_is_sent(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)
    # 36 MiB decoded, never decoded: the limit is checked from the base64 length.
    oversized = "A" * (36 * MB // 3 * 4)

    response = alice.post(
        "/messages/send",
        {"subject": "too big", "toRecipients": to(BOB), "attachments": [
            {"name": "x.bin", "contentBytes": oversized}
        ]},
    )  # fmt: skip
    too_many = alice.post(
        "/messages/send",
        {"subject": "crowd", "toRecipients": to(*[f"u{i}@example.test" for i in range(501)])},
    )

    assert response.status_code == 413, response.text[:500]
    assert response.json()["code"] == "payload_too_large"
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "validation_failed"
    assert graph_requests(sandbox) == []


def test_send_as_the_shared_mailbox_is_allowed_for_alice_forbidden_for_bob(
    alice: Caller, app_server: AppServer, sandbox: SandboxServer
) -> None:
    bob = Caller(app_server, sandbox, BOB)
    subject = f"From support {uuid.uuid4()}"
    body = {"subject": subject, "toRecipients": to(BOB)}

    allowed = alice.post("/messages/send", body, mailbox=SUPPORT)
    refused = bob.post("/messages/send", body, mailbox=SUPPORT)

    assert allowed.status_code == 202, allowed.text
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    sent = [m for m in in_folder(mailbox(sandbox, SUPPORT), "sentitems") if m["subject"] == subject]
    assert len(sent) == 1
    assert sent[0]["from"]["emailAddress"]["address"] == SUPPORT
    assert len([m for m in mailbox(sandbox, BOB)["messages"] if m["subject"] == subject]) == 1


def test_a_large_attachment_in_a_shared_mailbox_is_refused_up_front(
    alice: Caller, sandbox: SandboxServer
) -> None:
    clear_requests(sandbox)

    response = alice.post(
        "/messages/send",
        {
            "subject": "big from support",
            "toRecipients": to(BOB),
            "attachments": [{"name": "big.bin", "contentBytes": b64(b"x" * (3 * MB + 1))}],
        },
        mailbox=SUPPORT,
    )

    # Graph's createUploadSession answers 403 there with delegated permissions (a known
    # issue): no half-built draft, a clear 400 instead.
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["body", "attachments"]
    assert graph_requests(sandbox) == []


# --- idempotency --------------------------------------------------------------------------
def test_an_idempotent_replay_sends_one_mail(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)
    subject = f"Once {uuid.uuid4()}"
    body = {"subject": subject, "toRecipients": to(BOB)}
    key = str(uuid.uuid4())

    first = alice.post("/messages/send", body, key=key)
    second = alice.post("/messages/send", body, key=key)
    other = alice.post("/messages/send", {**body, "subject": "different"}, key=key)

    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["code"] == "conflict"
    assert len([r for r in graph_requests(sandbox) if r["path"].endswith("/sendMail")]) == 1
    assert len([m for m in mailbox(sandbox, BOB)["messages"] if m["subject"] == subject]) == 1


def test_a_send_graph_did_not_process_leaves_no_draft_and_its_key_can_retry(
    alice: Caller, sandbox: SandboxServer
) -> None:
    original = _from_bob(alice)
    drafts_before = len(in_folder(mailbox(sandbox, ALICE), "drafts"))
    name = f"{uuid.uuid4()}.txt"
    body = {"toRecipients": to(BOB), "attachments": [{"name": name, "contentBytes": b64(b"x")}]}
    key = str(uuid.uuid4())
    with sandbox.client() as control:
        control.post(
            "/_sandbox/faults",
            json={
                "method": "POST",
                "pathRegex": r"/messages/[^/]+/send$",
                "status": 429,
                # Longer than the app waits for: the caller is told instead.
                "headers": {"Retry-After": "120"},
                "body": {"error": {"code": "ApplicationThrottled", "message": "slow down"}},
                "times": 1,
            },
        ).raise_for_status()

    throttled = alice.post(f"/messages/{original}/forward", body, key=key)
    retried = alice.post(f"/messages/{original}/forward", body, key=key)

    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["code"] == "graph_throttled"
    assert retried.status_code == 202, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert len(in_folder(mailbox(sandbox, ALICE), "drafts")) == drafts_before
    delivered = [
        m
        for m in mailbox(sandbox, BOB)["messages"]
        if name in [a["name"] for a in m["attachments"]]
    ]
    assert len(delivered) == 1


# --- drafts, reply, forward ---------------------------------------------------------------
def test_draft_create_update_send_keeps_its_id(alice: Caller, sandbox: SandboxServer) -> None:
    clear_requests(sandbox)
    subject = f"Draft {uuid.uuid4()}"

    created = alice.post(
        "/drafts",
        {
            "subject": "first",
            "toRecipients": to(BOB),
            "attachments": [
                {"name": "n.txt", "contentType": "text/plain", "contentBytes": b64(b"hi")}
            ],
        },
    )
    draft_id = created.json()["id"]
    updated = alice.patch(f"/drafts/{draft_id}", {"subject": subject})
    sent = alice.post(f"/drafts/{draft_id}/send")

    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/messages/{draft_id}")
    assert updated.status_code == 200 and updated.json()["subject"] == subject
    assert sent.status_code == 202 and sent.json()["id"] == draft_id
    assert sent.json()["internetMessageId"]
    assert_bodies_follow_csdl(sandbox)
    in_sent = [m for m in in_folder(mailbox(sandbox, ALICE), "sentitems") if m["id"] == draft_id]
    assert in_sent and in_sent[0]["subject"] == subject
    received = next(m for m in mailbox(sandbox, BOB)["messages"] if m["subject"] == subject)
    assert [a["name"] for a in received["attachments"]] == ["n.txt"]


def _from_bob(alice: Caller) -> str:
    listing = alice.get("/messages", **{"from": BOB, "top": 1}).json()["value"]
    return str(listing[0]["id"])


def test_reply_with_a_comment_reaches_the_sender(alice: Caller, sandbox: SandboxServer) -> None:
    original = _from_bob(alice)
    clear_requests(sandbox)
    before = len(mailbox(sandbox, BOB)["messages"])

    response = alice.post(f"/messages/{original}/reply", {"comment": "Thanks!"})

    assert response.status_code == 202, response.text
    sent = assert_bodies_follow_csdl(sandbox)
    assert [r["path"].rsplit("/", 1)[-1] for r in sent] == ["reply"]
    assert sent[0]["body"] == {"comment": "Thanks!"}
    assert len(mailbox(sandbox, BOB)["messages"]) == before + 1


def test_forward_with_an_attachment_uses_create_forward(
    alice: Caller, sandbox: SandboxServer
) -> None:
    original = _from_bob(alice)
    clear_requests(sandbox)

    response = alice.post(
        f"/messages/{original}/forward",
        {
            "comment": "FYI",
            "toRecipients": to(BOB),
            "attachments": [{"name": "fwd.txt", "contentBytes": b64(b"forwarded")}],
        },
    )

    assert response.status_code == 202, response.text
    forward_id = response.json()["id"]
    sent = assert_bodies_follow_csdl(sandbox)
    actions = [r["path"].rsplit("/", 1)[-1] for r in sent]
    assert actions == ["createForward", "attachments", "send"]
    assert sent[0]["body"]["toRecipients"] == to(BOB)
    sent_copy = next(m for m in mailbox(sandbox, ALICE)["messages"] if m["id"] == forward_id)
    assert "fwd.txt" in [a["name"] for a in sent_copy["attachments"]]
    assert any(
        "fwd.txt" in [a["name"] for a in m["attachments"]]
        for m in in_folder(mailbox(sandbox, BOB), "inbox")
    )


# --- update, move, copy, delete -----------------------------------------------------------
def test_patch_sets_read_flag_and_categories(alice: Caller, sandbox: SandboxServer) -> None:
    (message_id,) = seed(sandbox, ALICE, 1)
    clear_requests(sandbox)

    response = alice.patch(
        f"/messages/{message_id}",
        {"isRead": True, "flag": {"flagStatus": "flagged"}, "categories": ["Blue"]},
    )

    assert response.status_code == 200, response.text
    assert response.json()["isRead"] is True
    assert_bodies_follow_csdl(sandbox)
    stored = next(m for m in mailbox(sandbox, ALICE)["messages"] if m["id"] == message_id)
    assert stored["isRead"] is True
    assert stored["flag"]["flagStatus"] == "flagged"
    assert stored["categories"] == ["Blue"]


def test_move_then_get_by_the_same_immutable_id(alice: Caller, sandbox: SandboxServer) -> None:
    (message_id,) = seed(sandbox, ALICE, 1)
    archive = folder_of(mailbox(sandbox, ALICE), "archive")

    moved = alice.post(f"/messages/{message_id}/move", {"destinationFolder": "archive"})
    again = alice.get(f"/messages/{message_id}")
    copied = alice.post(f"/messages/{message_id}/copy", {"destinationFolder": "inbox"})

    assert moved.status_code == 200, moved.text
    assert moved.json()["id"] == message_id
    assert moved.json()["parentFolderId"] == archive
    assert again.status_code == 200 and again.json()["parentFolderId"] == archive
    assert copied.status_code == 200 and copied.json()["id"] != message_id
    view = mailbox(sandbox, ALICE)
    assert [m["id"] for m in in_folder(view, "archive") if m["id"] == message_id]
    assert copied.json()["id"] in [m["id"] for m in in_folder(view, "inbox")]


@pytest.mark.parametrize(
    ("mode", "folder"),
    [("trash", "deleteditems"), ("soft", "recoverableitemsdeletions"), ("permanent", None)],
)
def test_each_delete_mode(
    alice: Caller, sandbox: SandboxServer, mode: str, folder: str | None
) -> None:
    (message_id,) = seed(sandbox, ALICE, 1)

    response = alice.delete(f"/messages/{message_id}", mode=mode)

    assert response.status_code == 204, response.text
    view = mailbox(sandbox, ALICE)
    found = [m for m in view["messages"] if m["id"] == message_id]
    if folder is None:
        assert found == []
    else:
        assert [m["parentFolderId"] for m in found] == [folder_of(view, folder)]


# --- bulk ---------------------------------------------------------------------------------
def test_bulk_mark_read_of_500_with_10_percent_429s_all_succeed(
    alice: Caller, sandbox: SandboxServer
) -> None:
    ids = seed(sandbox, ALICE, 500, folder="archive")
    clear_requests(sandbox)
    with sandbox.client() as control:
        control.post(
            "/_sandbox/faults",
            json={
                "method": "POST",
                "pathRegex": r"^/v1\.0/\$batch$",
                "status": 429,
                "headers": {"Retry-After": "1"},
                "body": {"error": {"code": "ApplicationThrottled", "message": "slow down"}},
                "fraction": 0.1,
            },
        ).raise_for_status()
    try:
        response = alice.post("/messages/bulk", {"ids": ids, "action": "markRead"})
    finally:
        with sandbox.client() as control:
            control.delete("/_sandbox/faults").raise_for_status()

    assert response.status_code == 200, response.text[:500]
    result = response.json()
    assert result["succeeded"] == 500 and result["failed"] == 0
    assert [r["id"] for r in result["value"]] == ids
    sent = assert_bodies_follow_csdl(sandbox)
    assert all(r["path"] == "/v1.0/$batch" for r in sent)
    assert all(len(r["body"]["requests"]) <= 20 for r in sent)
    assert len(sent) >= 25
    stored = {m["id"]: m for m in mailbox(sandbox, ALICE)["messages"]}
    assert all(stored[i]["isRead"] is True for i in ids)


def test_bulk_reports_each_failure(alice: Caller, sandbox: SandboxServer) -> None:
    ids = seed(sandbox, ALICE, 3, folder="archive")
    gone = ids[1]
    alice.delete(f"/messages/{gone}", mode="permanent")

    response = alice.post(
        "/messages/bulk", {"ids": ids, "action": "move", "destinationFolder": "inbox"}
    )

    assert response.status_code == 200
    statuses = {r["id"]: (r["status"], r.get("code")) for r in response.json()["value"]}
    assert statuses[gone] == (404, "not_found")
    assert statuses[ids[0]][0] == statuses[ids[2]][0] == 201
    inbox = {m["id"] for m in in_folder(mailbox(sandbox, ALICE), "inbox")}
    assert {ids[0], ids[2]} <= inbox


# --- folders, attachments, audit ----------------------------------------------------------
def test_folder_create_rename_delete(alice: Caller, sandbox: SandboxServer) -> None:
    created = alice.post("/folders", {"displayName": "Receipts", "parentFolder": "inbox"})
    folder_id = created.json()["id"]
    renamed = alice.patch(f"/folders/{folder_id}", {"displayName": "Invoices"})
    deleted = alice.delete(f"/folders/{folder_id}")
    well_known = alice.delete("/folders/inbox")

    assert created.status_code == 201, created.text
    assert created.headers["location"].endswith(f"/folders/{folder_id}")
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "Invoices"
    assert deleted.status_code == 204
    assert well_known.status_code == 400
    view = mailbox(sandbox, ALICE)
    folder = next(f for f in view["folders"] if f["id"] == folder_id)
    assert folder["displayName"] == "Invoices"
    assert folder["parentFolderId"] == folder_of(view, "deleteditems")


def test_attachment_added_to_a_draft(alice: Caller, sandbox: SandboxServer) -> None:
    draft = alice.post("/drafts", {"subject": "with files", "toRecipients": to(BOB)}).json()
    clear_requests(sandbox)

    added = alice.post(
        f"/messages/{draft['id']}/attachments",
        {"name": "r.csv", "contentType": "text/csv", "contentBytes": b64(b"a,b\n1,2\n")},
    )

    assert added.status_code == 201, added.text
    assert added.headers["location"].endswith(f"/attachments/{added.json()['id']}")
    assert_bodies_follow_csdl(sandbox)
    stored = next(m for m in mailbox(sandbox, ALICE)["messages"] if m["id"] == draft["id"])
    assert [(a["name"], a["size"]) for a in stored["attachments"]] == [("r.csv", 8)]


def test_writes_are_audited_without_content(
    alice: Caller, sandbox: SandboxServer, settings_env: dict[str, str]
) -> None:
    subject = f"Audit {uuid.uuid4()}"
    alice.post("/messages/send", {"subject": subject, "toRecipients": to(BOB)})

    audit = Path(settings_env["AUDIT_LOG_PATH"]).read_text()
    events = [json.loads(line) for line in audit.splitlines() if '"mail.sent"' in line]
    mine = [e for e in events if e.get("connection_id") == alice.connection_id]
    assert mine[-1]["outcome"] == "success"
    assert mine[-1]["mailbox"] == ALICE
    assert mine[-1]["graph_request_id"]
    assert mine[-1]["counts"]["recipients"] == 1
    assert subject not in audit
    assert BOB not in json.dumps(mine)  # the recipient is never recorded
