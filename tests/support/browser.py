"""A person in a browser: follows the sign-in redirects with a cookie jar, no JavaScript."""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.support.app import AppServer
from tests.support.sandbox import SandboxServer

if TYPE_CHECKING:
    from shared.connections.models import Connection
    from shared.container import Container

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


async def connect_in_process(
    container: Container, upn: str, verify: str | ssl.SSLContext
) -> Connection:
    """The same flow with the app's connection service called in process (no app server,
    no registered callback port): start the sign-in, follow the sandbox's redirect, finish."""
    start = await container.connections.start_login(upn, None, "corr-1")
    async with httpx.AsyncClient(verify=verify) as client:
        redirect = await client.get(start.auth_uri)
    params = dict(parse_qsl(urlsplit(redirect.headers["location"]).query))
    connected = await container.connections.finish_login(params, start.browser_secret, "corr-2")
    return connected.connection
