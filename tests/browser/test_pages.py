"""The pages people see, in Chromium: connecting a mailbox, the portal, the API docs."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.app import AppServer
from tests.support.browser import connect
from tests.support.sandbox import SandboxServer

ALICE = "alice@contoso.test"


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
