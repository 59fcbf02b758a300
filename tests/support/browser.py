"""A person in a browser: follows the sign-in redirects with a cookie jar, no JavaScript."""

from __future__ import annotations

import re

import httpx

from tests.support.app import AppServer
from tests.support.sandbox import SandboxServer

CONNECTION_ID = re.compile(r'<code id="connection-id">([^<]+)</code>')


def browser(sandbox: SandboxServer) -> httpx.Client:
    # One client for the app (http) and the sandbox (https, its own CA), like one browser.
    return httpx.Client(verify=sandbox.ssl_context(), timeout=30, follow_redirects=True)


def connect(app: AppServer, sandbox: SandboxServer, upn: str) -> str:
    """Connect `upn`'s mailbox through the whole browser flow; return the connection id."""
    with browser(sandbox) as client:
        page = client.get(f"{app.url}/api/auth/login", params={"loginHint": upn})
    assert page.status_code == 200, page.text
    found = CONNECTION_ID.search(page.text)
    assert found, page.text
    return found.group(1)
