"""The portal, option links and API docs over real HTTP (dev host + sandbox + Azurite): the
unhappy paths a browser test would not reach. The happy paths run in Chromium
(tests/browser)."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from shared.notifications.webhooks import sign
from tests.support.app import AppServer, start_app
from tests.support.browser import browser, connect
from tests.support.receiver import start_receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
HIDDEN = re.compile(r"<input type='hidden' name='([^']+)' value='([^']*)'/>")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def portal_session(client: httpx.Client, app: AppServer, upn: str) -> httpx.Response:
    """Sign in to the portal as `upn` through the sandbox's page; return the portal page."""
    login = client.get(f"{app.url}/api/portal", follow_redirects=False)
    page = client.get(login.headers["location"], follow_redirects=False)
    fields = {html.unescape(k): html.unescape(v) for k, v in HIDDEN.findall(page.text)}
    action = urlsplit(login.headers["location"])
    consent = client.post(
        f"{action.scheme}://{action.netloc}{action.path}",
        data={**fields, "sandbox_user": upn, "sandbox_consent": "accept"},
        follow_redirects=False,
    )
    return client.get(consent.headers["location"])


def test_portal_sign_in_asks_for_openid_profile_only(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with browser(sandbox) as client:
        login = client.get(f"{app_server.url}/api/portal", follow_redirects=False)

    assert login.status_code == 302
    query = parse_qs(urlsplit(login.headers["location"]).query)
    assert query["scope"][0].split() == ["openid", "profile"]
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{app_server.url}/api/portal/callback"]
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/api/portal" in cookie


def test_portal_callback_without_its_flow_cookie_signs_no_one_in(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    with browser(sandbox) as victim:
        login = victim.get(f"{app_server.url}/api/portal", follow_redirects=False)
        page = victim.get(login.headers["location"], follow_redirects=False)
    fields = {html.unescape(k): html.unescape(v) for k, v in HIDDEN.findall(page.text)}
    with browser(sandbox) as attacker:
        answer = attacker.get(
            f"{app_server.url}/api/portal/callback",
            params={"code": "stolen", "state": fields["state"]},
        )

    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert "oia_portal=" not in answer.headers.get("set-cookie", "")  # no session cookie


def test_portal_callback_with_a_refusal_is_a_403_page(app_server: AppServer) -> None:
    with httpx.Client(timeout=30) as client:
        answer = client.get(
            f"{app_server.url}/api/portal/callback",
            params={"error": "access_denied", "state": "s"},
        )

    assert answer.status_code == 403
    assert "not completed" in answer.text
    assert "AADSTS" not in answer.text


def test_disconnect_needs_the_sessions_token_and_this_origin(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    url = f"{app_server.url}/api/portal/connections/{connection_id}/disconnect"
    with browser(sandbox) as client:
        page = portal_session(client, app_server, ALICE)
        found = CSRF.search(page.text)
        assert found, page.text
        token = found.group(1)
        wrong_token = client.post(url, data={"csrf": "not-the-token"}, follow_redirects=False)
        foreign = client.post(
            url,
            data={"csrf": token},
            headers={"Origin": "https://evil.example"},
            follow_redirects=False,
        )
    with httpx.Client(timeout=30) as stranger:
        no_session = stranger.post(url, data={"csrf": token}, follow_redirects=False)

    assert page.status_code == 200 and connection_id in page.text
    assert [wrong_token.status_code, foreign.status_code, no_session.status_code] == [403] * 3
    with httpx.Client(base_url=app_server.url, timeout=30) as api:
        still = api.get(
            f"/api/connections/{connection_id}",
            headers={"Authorization": f"Bearer {sandbox.user_token(ALICE)}"},
        )
    assert still.status_code == 200


def test_a_forged_option_link_is_a_404_page_and_records_nothing(app_server: AppServer) -> None:
    with httpx.Client(timeout=30) as client:
        shown = client.get(f"{app_server.url}/api/options/bm90LWEtdG9rZW4")
        posted = client.post(f"{app_server.url}/api/options/bm90LWEtdG9rZW4")

    assert [shown.status_code, posted.status_code] == [404, 404]
    assert shown.headers["content-type"].startswith("text/html")


def test_options_to_a_private_callback_are_refused_before_any_mail(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    with httpx.Client(base_url=app_server.url, timeout=30) as api:
        refused = api.post(
            f"/api/connections/{connection_id}/messages/sendWithOptions",
            headers={"Authorization": f"Bearer {sandbox.user_token(ALICE)}"},
            json={
                "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
                "subject": "Approve?",
                "options": ["Approve", "Reject"],
                "callbackUrl": "https://10.0.0.5/hook",
            },
        )
    with sandbox.client() as control:
        requests = control.get("/_sandbox/requests").json()

    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_failed"
    assert not [r for r in requests if r["path"].endswith("/sendMail")]


def test_docs_serve_only_their_own_files_under_a_strict_policy(app_server: AppServer) -> None:
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        page = client.get("/api/docs")
        script = client.get("/api/docs/assets/swagger-ui-bundle.js")
        unknown = client.get("/api/docs/assets/index.html")
        walked = client.get("/api/docs/assets/..%2F..%2Fopenapi.json")

    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert [unknown.status_code, walked.status_code] == [404, 404]


def test_a_retried_send_with_options_sends_one_mail_and_answers_the_same_secret(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    with sandbox.client() as control:
        control.delete("/_sandbox/requests").raise_for_status()
    call = {
        "url": f"/api/connections/{connection_id}/messages/sendWithOptions",
        "headers": {
            "Authorization": f"Bearer {sandbox.user_token(ALICE)}",
            "Idempotency-Key": "approve-budget-1",
        },
        "json": {
            "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
            "subject": "Approve?",
            "options": ["Approve", "Reject"],
            "callbackUrl": "http://127.0.0.1:9/hook",
        },
    }
    with httpx.Client(base_url=app_server.url, timeout=30) as api:
        first = api.post(**call)
        again = api.post(**call)
    with sandbox.client() as control:
        requests = control.get("/_sandbox/requests").json()

    assert first.status_code == again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len([r for r in requests if r["path"].endswith("/sendMail")]) == 1


def test_a_connection_that_needs_reauth_gets_a_reconnect_link_back_to_the_portal(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    messages = f"{app_server.url}/api/connections/{connection_id}/messages"
    with browser(sandbox) as client:
        portal_session(client, app_server, ALICE)  # before the clock jump: a fresh id token
        with sandbox.client() as control:
            caller = control.post("/_sandbox/token", json={"user": ALICE, "lifetimeSeconds": 9000})
            bearer = {"Authorization": f"Bearer {caller.json()['access_token']}"}
            assert client.get(messages, params={"top": 1}, headers=bearer).status_code == 200
            control.post("/_sandbox/identity/revoke", json={"upn": ALICE}).raise_for_status()
            # The app's cached Graph token must lapse at the sandbox for the refresh to fail.
            control.post("/_sandbox/clock", json={"offsetSeconds": 7200}).raise_for_status()
            try:
                refused = client.get(messages, params={"top": 1}, headers=bearer)
            finally:
                control.post("/_sandbox/clock", json={"offsetSeconds": 0}).raise_for_status()
        page = client.get(f"{app_server.url}/api/portal")
        reconnect = re.search(r'<a href="([^"]+)">Reconnect</a>', page.text)
        assert reconnect, page.text
        back = client.get(app_server.url + html.unescape(reconnect.group(1)))

    assert refused.status_code == 409
    assert "reauth_required" in page.text
    query = parse_qs(urlsplit(html.unescape(reconnect.group(1))).query)
    assert query == {"returnTo": [f"{app_server.url}/api/portal"], "loginHint": [ALICE]}
    assert str(back.url).startswith(f"{app_server.url}/api/portal?connectionId={connection_id}")
    row = re.search(rf'<tr data-connection-id="{re.escape(connection_id)}">.*?</tr>', back.text)
    assert row and ">active<" in row.group(0)


def test_docs_turned_off_answer_404(settings_env: dict[str, str], servers_dir: Path) -> None:
    app = start_app({**settings_env, "API_DOCS_ENABLED": "false"}, servers_dir)
    try:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            page = client.get("/api/docs")
            asset = client.get("/api/docs/assets/docs.js")
            document = client.get("/api/openapi.json")
    finally:
        app.stop()

    assert [page.status_code, asset.status_code] == [404, 404]
    assert page.json()["code"] == "not_found"
    assert document.status_code == 200  # the description itself stays


def test_when_an_option_is_chosen_trigger_gets_choices_of_mails_without_a_callback(
    app_server: AppServer, sandbox: SandboxServer
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    receiver = start_receiver()
    bearer = {"Authorization": f"Bearer {sandbox.user_token(ALICE)}"}
    subject = f"Lunch? {time.time_ns()}"
    base = f"/api/connections/{connection_id}"
    try:
        with httpx.Client(base_url=app_server.url, timeout=30) as api:
            registered = api.post(
                f"{base}/optionSubscriptions",
                headers=bearer,
                json={"notificationUrl": f"{receiver.url}/flow"},
            )
            sent = api.post(
                f"{base}/messages/sendWithOptions",
                headers=bearer,
                json={
                    "toRecipients": [{"emailAddress": {"address": "bob@contoso.test"}}],
                    "subject": subject,
                    "options": ["Yes", "No"],
                },
            )
            link = option_link(sandbox, "bob@contoso.test", subject, "Yes")
            chosen = api.post(urlsplit(link).path)
            removed = api.delete(urlsplit(registered.headers["location"]).path, headers=bearer)
            again = api.delete(urlsplit(registered.headers["location"]).path, headers=bearer)
        event = receiver.wait_for(lambda posts: len(posts) == 1)[0]
    finally:
        receiver.stop()

    assert registered.status_code == 201, registered.text
    assert sent.status_code == 202, sent.text
    assert chosen.status_code == 200 and "could not be reached" not in chosen.text
    secret = registered.json()["signingSecret"]
    assert event.headers["X-Signature"] == sign(secret, event.body)
    assert event.json()["subscriptionId"] == registered.json()["id"]
    assert event.json()["selectedOption"] == "Yes"
    assert [removed.status_code, again.status_code] == [204, 404]


def option_link(sandbox: SandboxServer, upn: str, subject: str, label: str) -> str:
    with sandbox.client() as control:
        view = control.get(f"/_sandbox/users/{upn}/mailbox").json()
    content = next(m for m in view["messages"] if m["subject"] == subject)["body"]["content"]
    links = re.findall(r'<a href="([^"]+/api/options/[^"]+)">([^<]+)</a>', content)
    return next(html.unescape(url) for url, text in links if html.unescape(text) == label)
