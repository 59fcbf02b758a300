"""The pages people see, in Chromium: connecting a mailbox, the portal, the API docs."""

from __future__ import annotations

import html
import re
import time
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from shared.notifications.webhooks import sign
from tests.support.app import AppServer
from tests.support.browser import connect
from tests.support.receiver import start_receiver
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
LINK = re.compile(r'<a href="([^"]+/api/options/[^"]+)">([^<]+)</a>')


def sign_in_at_sandbox(page: Page, upn: str) -> None:
    """The sandbox's sign-in and consent page: choose the account, accept."""
    expect(page.locator("h1")).to_have_text("Sign in to Contoso (sandbox)")
    page.check(f"input[type='radio'][value='{upn}']")
    page.click("button[value='accept']")


def test_connecting_in_a_browser_ends_on_a_page_whose_button_copies_the_id(
    app_server: AppServer, sandbox: SandboxServer, context: BrowserContext, page: Page
) -> None:
    with sandbox.client() as control:
        control.post("/_sandbox/identity/consent", json={"auto": False}).raise_for_status()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=app_server.url)

    page.goto(f"{app_server.url}/api/auth/login?loginHint={ALICE}")
    sign_in_at_sandbox(page, ALICE)
    expect(page.locator("h1")).to_have_text("Mailbox connected")
    connection_id = page.locator("#connection-id").inner_text()
    page.click("#copy-connection-id")

    expect(page.locator("#copy-connection-id")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == connection_id
    assert page.url.startswith(f"{app_server.url}/api/auth/callback")
    expect(page.locator("a[href='/api/portal']")).to_be_visible()


def test_portal_signs_in_lists_and_disconnects_a_connection(
    app_server: AppServer, sandbox: SandboxServer, context: BrowserContext, page: Page
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)

    page.goto(f"{app_server.url}/api/portal")
    sign_in_at_sandbox(page, ALICE)
    row = page.locator(f"tr[data-connection-id='{connection_id}']")
    expect(row).to_contain_text(ALICE)
    expect(row).to_contain_text("active")
    cookie = next(c for c in context.cookies() if c["name"] == "oia_portal")
    page.set_viewport_size({"width": 360, "height": 740})  # a phone: nothing runs off-screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    row.get_by_role("button", name="Disconnect").click()

    expect(page.locator("#no-connections")).to_be_visible()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["expires"] <= time.time() + 8 * 3600 + 60
    token = sandbox.user_token(ALICE)
    with httpx.Client(base_url=app_server.url, timeout=30) as api:
        gone = api.get(
            f"/api/connections/{connection_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert gone.status_code == 404
    assert gone.json()["code"] == "connection_not_found"


def test_api_docs_render_the_operation_list(app_server: AppServer, page: Page) -> None:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )

    response = page.goto(f"{app_server.url}/api/docs")
    expect(page.locator(".opblock").first).to_be_visible()

    assert (
        response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    )
    assert page.locator(".opblock").count() > 20
    expect(
        page.locator(".opblock-summary-path", has_text="/connections/{connectionId}").first
    ).to_be_visible()
    assert violations == []


def test_an_option_link_records_the_choice_and_the_receiver_gets_it_signed(
    app_server: AppServer, sandbox: SandboxServer, page: Page
) -> None:
    connection_id = connect(app_server, sandbox, ALICE)
    receiver = start_receiver()
    subject = f"Approve the budget {time.time_ns()}"
    try:
        with httpx.Client(base_url=app_server.url, timeout=30) as api:
            sent = api.post(
                f"/api/connections/{connection_id}/messages/sendWithOptions",
                headers={"Authorization": f"Bearer {sandbox.user_token(ALICE)}"},
                json={
                    "toRecipients": [{"emailAddress": {"address": BOB}}],
                    "subject": subject,
                    "body": "Please choose.",
                    "options": ["Approve", "Reject"],
                    "callbackUrl": f"{receiver.url}/choice",
                },
            )
        assert sent.status_code == 202, sent.text
        links = option_links(sandbox, BOB, subject)
        assert sorted(links) == ["Approve", "Reject"]
        # The mail's links point at PUBLIC_BASE_URL; this test's app listens elsewhere.
        page.goto(app_server.url + urlsplit(links["Reject"]).path)
        expect(page.locator("#option")).to_have_text("Reject")
        assert receiver.received == []  # opening the link records nothing
        page.click("#confirm")

        expect(page.locator("#recorded")).to_have_text("Reject")
        delivered = receiver.wait_for(lambda posts: len(posts) == 1)[0]
        secret = sent.json()["signingSecret"]
        assert delivered.headers["X-Signature"] == sign(secret, delivered.body)
        assert delivered.json()["selectedOption"] == "Reject"
        assert delivered.json()["requestId"] == sent.json()["requestId"]
        page.goto(app_server.url + urlsplit(links["Approve"]).path)
        page.click("#confirm")
        expect(page.locator("h1")).to_have_text("Nothing recorded")
        assert len(receiver.received) == 1  # one choice per mail
    finally:
        receiver.stop()


def option_links(sandbox: SandboxServer, upn: str, subject: str) -> dict[str, str]:
    """The option links (label → URL) in the message `upn` received."""
    with sandbox.client() as control:
        view = control.get(f"/_sandbox/users/{upn}/mailbox").json()
    message = next(m for m in view["messages"] if m["subject"] == subject)
    content = message["body"]["content"]
    return {html.unescape(label): html.unescape(url) for url, label in LINK.findall(content)}
