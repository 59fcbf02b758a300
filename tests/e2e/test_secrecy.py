"""No secret and no mail content in anything the app writes: a full connect and caller calls
over real HTTP (dev host + sandbox + Azurite), then every captured log line and every audit
record is searched for the tokens, codes, cookies, client secret and message subjects; and
the outbound calls whose URLs carry credentials or personal data (Graph queries with filters
and search terms, upload sessions, a flow's signed webhook URL) leave none of it behind."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

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
from tests.support.browser import CONNECTION_ID, browser
from tests.support.callers import Caller
from tests.support.processes import wait_until
from tests.support.receiver import Receiver
from tests.support.sandbox import SandboxServer
from tests.support.secrecy import graph_request_secrets

ALICE = "alice@contoso.test"
FORGED = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmb3JnZWQtc2VjcmV0LXRva2VuIn0.c2lnbmF0dXJlLXNlY3JldA"


def connect_recording(app: AppServer, sandbox: SandboxServer) -> tuple[str, set[str]]:
    """tests.support.browser.connect, also keeping what the browser saw: the auth codes in
    the callback URL and every cookie value."""
    seen: set[str] = set()

    def on_response(response: httpx.Response) -> None:
        for name, values in parse_qs(urlsplit(str(response.request.url)).query).items():
            if name in {"code", "state", "session_state"}:
                seen.update(values)
        for header in response.headers.get_list("set-cookie"):
            value = header.split(";", 1)[0].partition("=")[2]
            if len(value) >= 8:
                seen.add(value)

    with browser(sandbox) as client:
        client.event_hooks["response"] = [on_response]
        page = client.get(f"{app.url}/api/auth/login", params={"loginHint": ALICE})
        seen.update(v for v in client.cookies.values() if len(v) >= 8)
    assert page.status_code == 200, page.text
    found = CONNECTION_ID.search(page.text)
    assert found, page.text
    return found.group(1), seen


def test_logs_and_audit_hold_no_secret_and_no_subject(
    app_server: AppServer, sandbox: SandboxServer, settings_env: dict[str, str]
) -> None:
    connection_id, browser_secrets = connect_recording(app_server, sandbox)
    caller_token = sandbox.user_token(ALICE)
    with httpx.Client(
        base_url=f"{app_server.url}/api",
        headers={"Authorization": f"Bearer {caller_token}"},
        timeout=60,
    ) as api:
        assert api.get("/me").status_code == 200
        assert api.get("/connections").status_code == 200
        assert api.get(f"/connections/{connection_id}").status_code == 200
        page = api.get(f"/connections/{connection_id}/messages", params={"top": 50})
        assert page.status_code == 200, page.text
        for message in page.json()["value"][:3]:
            got = api.get(f"/connections/{connection_id}/messages/{message['id']}")
            assert got.status_code == 200, got.text
        # Failures log too: a forged token and a tampered cursor.
        forged = api.get("/me", headers={"Authorization": f"Bearer {FORGED}"})
        assert forged.status_code == 401
        bad_cursor = api.get(f"/connections/{connection_id}/messages", params={"cursor": FORGED})
        assert bad_cursor.status_code == 400
        last = api.delete(f"/connections/{connection_id}")
        assert last.status_code == 204
    with sandbox.client() as control:
        issued = control.get("/_sandbox/tokens").json()
        mailbox = control.get(f"/_sandbox/users/{ALICE}/mailbox").json()

    secrets = {entry["value"] for entry in issued} | browser_secrets
    secrets |= {caller_token, FORGED, settings_env["CLIENT_SECRET"]}
    kinds = {entry["kind"] for entry in issued}
    assert {"code", "access", "refresh"} <= kinds  # the flow really ran
    subjects = {m["subject"] for m in mailbox["messages"] if len(m.get("subject") or "") >= 8}
    assert subjects

    audit_path = Path(settings_env["AUDIT_LOG_PATH"])
    # The delete is audited last: once it is on disk, this test's events all are.
    wait_until(
        lambda: audit_path.is_file() and connection_id in audit_path.read_text("utf-8"),
        timeout=10,
        what="audit records",
    )
    audit = audit_path.read_text("utf-8")
    records = [json.loads(line) for line in audit.splitlines()]
    assert any(r.get("connection_id") == connection_id for r in records)
    output = app_server.process.output(tail=None)
    assert output

    for where, text in (("host output", output), ("audit log", audit)):
        leaked_secrets = sorted(s[:12] + "…" for s in secrets if s and s in text)
        leaked_subjects = sorted(s for s in subjects if s in text)
        assert leaked_secrets == [], f"{where} holds secrets"
        assert leaked_subjects == [], f"{where} holds message subjects"


@pytest.fixture(scope="module")
def webhook_app(
    sandbox_server: SandboxServer,
    azurite: AzuriteServer,
    servers_dir: Path,
    spare_app_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AppServer, dict[str, str]]]:
    """An app that Graph's notifications can reach (PUBLIC_BASE_URL is its own port) and that
    may deliver to a loopback receiver, with its own tables and queues."""
    tmp = tmp_path_factory.mktemp("secrecy")
    settings = {
        **app_settings(sandbox_server, azurite, servers_dir, spare_app_port),
        **isolated_settings("sec", tmp),
        "LIFECYCLE_SCHEDULE": "0 0 0 1 1 *",
        **webhook_settings(spare_app_port),
    }
    server = start_app(settings, tmp, spare_app_port)
    try:
        yield server, settings
    finally:
        server.stop()


def test_outbound_urls_leave_no_credential_or_personal_data_in_logs(
    webhook_app: tuple[AppServer, dict[str, str]], sandbox: SandboxServer, receiver: Receiver
) -> None:
    app, settings = webhook_app
    alice = Caller(app, sandbox, ALICE)
    # A Logic Apps / Power Automate callback URL: whoever holds its `sig` can trigger the flow.
    sig = secrets.token_urlsafe(32)
    webhook = f"{receiver.url}/workflows/run?api-version=2016-10-01&sp=%2Ftriggers&sv=1.0&sig={sig}"

    filtered = alice.get(
        "/messages", **{"from": "bob@contoso.test"}, subjectContains="Quarterly figures", top=1
    )
    searched = alice.get("/messages", search="confidential merger plans", top=1)
    first = alice.get("/messages", top=1)
    following = alice.get("/messages", top=1, cursor=first.json().get("nextCursor"))
    attachment = base64.b64encode(os.urandom(3_300_000)).decode()  # > 3 MB: upload session
    large = alice.post(
        "/messages/send",
        {
            "subject": "Secrecy check with a large attachment",
            "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
            "attachments": [{"name": "big.bin", "contentBytes": attachment}],
        },
    )
    subscribed = alice.post("/subscriptions", {"notificationUrl": webhook})
    assert subscribed.status_code == 201, subscribed.text
    with sandbox.client() as control:
        seeded = control.post(f"/_sandbox/users/{ALICE}/messages", json={"count": 1})
        assert seeded.status_code == 201, seeded.text
    [delivery] = receiver.wait_for(lambda got: len(got) >= 1, timeout=30)
    with sandbox.client() as control:
        sent_to_graph = control.get("/_sandbox/requests").json()

    assert [r.status_code for r in (filtered, searched, first, following, large)] == [
        200,
        200,
        200,
        200,
        202,
    ], [r.text[:200] for r in (filtered, searched, first, following, large)]
    assert delivery.json()["subscriptionId"] == subscribed.json()["id"]  # the webhook was called
    leaked_by_graph_urls = graph_request_secrets(sent_to_graph)
    kinds = {
        name
        for r in sent_to_graph
        for name in parse_qs(str(r.get("query") or ""))
        if name in {"authtoken", "$filter", "$search"}
    }
    assert kinds == {"authtoken", "$filter", "$search"}  # each kind really went out
    secrets_ = leaked_by_graph_urls | {
        sig,
        urlsplit(webhook).query,
        subscribed.json()["signingSecret"],
        settings["CURSOR_SECRET"],
    }
    output = app.process.output(tail=None)
    audit_path = Path(settings["AUDIT_LOG_PATH"])
    audit = audit_path.read_text("utf-8") if audit_path.is_file() else ""
    assert output
    for where, text in (("host output", output), ("audit log", audit)):
        leaked = sorted(s[:16] + "…" for s in secrets_ if s and s in text)
        assert leaked == [], f"{where} holds URL credentials or query values"
