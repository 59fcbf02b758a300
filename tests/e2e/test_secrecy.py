"""No secret and no mail content in anything the app writes: a full connect and caller calls
over real HTTP (dev host + sandbox + Azurite), then every captured log line and every audit
record is searched for the tokens, codes, cookies, client secret and message subjects."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support.app import AppServer
from tests.support.browser import CONNECTION_ID, browser
from tests.support.processes import wait_until
from tests.support.sandbox import SandboxServer

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
