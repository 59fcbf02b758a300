"""Connecting a mailbox in a browser, end to end: dev host + sandbox + Azurite."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from azure.data.tables import TableServiceClient

from tests.support.app import AppServer, start_app
from tests.support.azurite import AzuriteServer
from tests.support.browser import CONNECTION_ID, browser, connect
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"


def start(client: httpx.Client, app: AppServer, **params: str) -> httpx.Response:
    """GET /api/auth/login without following: the 302 to the identity provider."""
    return client.get(f"{app.url}/api/auth/login", params=params, follow_redirects=False)


def to_callback(client: httpx.Client, login: httpx.Response) -> str:
    """Follow the identity provider's redirect; return the callback URL it sends back to."""
    idp = client.get(login.headers["location"], follow_redirects=False)
    assert idp.status_code == 302, idp.text
    return idp.headers["location"]


def test_full_browser_flow_lands_on_the_success_page(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with browser(sandbox) as client:
        login = start(client, app_server, loginHint=ALICE)
        callback = to_callback(client, login)
        page = client.get(callback, follow_redirects=False)

    assert login.status_code == 302
    assert login.headers["location"].startswith(f"{sandbox.authority}/oauth2/v2.0/authorize")
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert CONNECTION_ID.search(page.text)
    assert ALICE in page.text


def test_json_callback_and_reconnect_updates_the_same_connection(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    first = connect(app_server, sandbox, "bob@contoso.test")
    with browser(sandbox) as client:
        callback = to_callback(client, start(client, app_server, loginHint="bob@contoso.test"))
        again = client.get(callback, headers={"Accept": "application/json"})

    assert again.status_code == 200
    assert again.json() == {
        "connectionId": first,
        "mailbox": "bob@contoso.test",
        "status": "active",
    }
    assert len(first) >= 22  # ≥ 128 bits, URL-safe


def test_replayed_state_is_refused(app_server: AppServer, sandbox: SandboxServer) -> None:
    with browser(sandbox) as client:
        callback = to_callback(client, start(client, app_server, loginHint=ALICE))
        first = client.get(callback)
        replay = client.get(callback, headers={"Accept": "application/json"})

    assert first.status_code == 200
    assert replay.status_code == 400
    assert replay.json()["code"] == "sign_in_failed"
    assert replay.json()["reason"] in {"state_unknown", "state_replayed"}


def test_state_from_another_browser_is_refused(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with browser(sandbox) as victim:
        callback = to_callback(victim, start(victim, app_server, loginHint=ALICE))
    with browser(sandbox) as attacker:
        stolen = attacker.get(callback)

    assert stolen.status_code == 400
    assert "another browser" in stolen.text
    assert not CONNECTION_ID.search(stolen.text)


def test_identity_provider_error_gives_a_clear_page(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with sandbox.client() as control:
        control.post(
            "/_sandbox/identity/authorize-error", json={"error": "access_denied"}
        ).raise_for_status()
    with browser(sandbox) as client:
        page = client.get(f"{app_server.url}/api/auth/login", params={"loginHint": ALICE})

    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "not completed" in page.text
    assert "AADSTS" not in page.text  # never the identity provider's own text


def test_return_to_outside_the_allow_list_is_refused(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with browser(sandbox) as client:
        refused = start(client, app_server, loginHint=ALICE, returnTo="https://evil.example/")

    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_failed"
    assert "set-cookie" not in refused.headers


def test_return_to_in_the_allow_list_receives_the_connection_id(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    target = f"{app_server.url}/api/health?from=connect"
    with browser(sandbox) as client:
        callback = to_callback(client, start(client, app_server, loginHint=ALICE, returnTo=target))
        done = client.get(callback, follow_redirects=False)

    location = done.headers["location"]
    assert done.status_code == 302
    assert location.startswith(target + "&connectionId=")


def test_connections_are_listed_read_and_deleted_by_their_owner(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    alice = {"Authorization": f"Bearer {sandbox.user_token(ALICE)}"}
    bob = {"Authorization": f"Bearer {sandbox.user_token('bob@contoso.test')}"}
    with app_server.client() as client:
        listed = client.get("/api/connections", headers=alice)
        one = client.get(f"/api/connections/{connection_id}", headers=alice)
        bobs_view = client.get(f"/api/connections/{connection_id}", headers=bob)
        bobs_delete = client.delete(f"/api/connections/{connection_id}", headers=bob)
        deleted = client.delete(f"/api/connections/{connection_id}", headers=alice)
        gone = client.get(f"/api/connections/{connection_id}", headers=alice)

    assert listed.status_code == 200
    assert connection_id in [c["id"] for c in listed.json()["value"]]
    assert one.json()["mailbox"] == ALICE
    assert one.json()["status"] == "active"
    assert set(one.json()["scopes"]) >= {"Mail.ReadWrite", "Mail.Send"}
    assert bobs_view.status_code == 404
    assert bobs_view.json()["code"] == "connection_not_found"
    assert bobs_delete.status_code == 404
    assert deleted.status_code == 204
    assert gone.status_code == 404


def _every_stored_value(azurite: AzuriteServer) -> list[str]:
    """Every property of every entity in every table, as text (bytes also as base64)."""
    values: list[str] = []
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    for table in service.list_tables():
        for entity in service.get_table_client(table.name).list_entities():
            for value in entity.values():
                raw = getattr(value, "value", value)
                if isinstance(raw, bytes):
                    values += [raw.decode("latin-1"), base64.b64encode(raw).decode()]
                else:
                    values.append(str(raw))
    return values


def test_no_issued_token_is_stored_or_logged_in_the_clear(
    app_server: AppServer,
    sandbox: SandboxServer,
    azurite: AzuriteServer,
    settings_env: dict[str, str],
) -> None:
    connect(app_server, sandbox, ALICE)
    with sandbox.client() as control:
        issued = [t["value"] for t in control.get("/_sandbox/tokens").json()]
    stored = "\n".join(_every_stored_value(azurite))
    logs = app_server.process.output(tail=None) + Path(settings_env["AUDIT_LOG_PATH"]).read_text()

    assert issued, "the flow issued tokens"
    for value in issued:
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in stored
            assert form not in logs


def test_form_post_response_mode_completes_with_a_secure_cookie(
    settings_env: dict[str, str], servers_dir: Path, sandbox: SandboxServer, spare_app_port: int
) -> None:
    settings = {
        **settings_env,
        "AUTH_RESPONSE_MODE": "form_post",
        "REDIRECT_URI": f"http://127.0.0.1:{spare_app_port}/api/auth/callback",
    }
    app = start_app(settings, servers_dir, spare_app_port)
    try:
        with httpx.Client(verify=sandbox.ssl_context(), timeout=30) as client:
            login = client.get(f"{app.url}/api/auth/login", params={"loginHint": ALICE})
            form_page = client.get(login.headers["location"])
            fields = dict(re.findall(r"name='([^']+)' value='([^']*)'", form_page.text))
            action = re.search(r"action='([^']+)'", form_page.text)
            cookie = login.headers["set-cookie"]
            done = client.post(
                action.group(1) if action else "",
                data={k: html.unescape(v) for k, v in fields.items()},
                headers={"Cookie": cookie.split(";")[0], "Accept": "application/json"},
            )
    finally:
        app.stop()

    assert "samesite=none" in cookie.lower() and "secure" in cookie.lower()
    assert "code" in fields and "state" in fields
    assert done.status_code == 200, done.text
    assert done.json()["mailbox"] == ALICE
