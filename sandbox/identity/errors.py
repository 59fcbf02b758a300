"""Entra's error answers: the token endpoint's JSON body and the sign-in error page.

The JSON shape is Entra's: `error`, `error_description` ("AADSTS…: message" followed by the
trace id, correlation id and timestamp lines), `error_codes`, `timestamp`, `trace_id`,
`correlation_id`, `error_uri`. The correlation id echoes the client's `client-request-id`
(MSAL sends one), as Entra does.
"""

from __future__ import annotations

import html
import uuid
from datetime import datetime

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse


class OAuthError(Exception):
    """A refused OAuth request; the endpoint turns it into Entra's error answer."""

    def __init__(
        self,
        error: str,
        code: int,
        message: str,
        *,
        status: int = 400,
        suberror: str | None = None,
    ) -> None:
        super().__init__(f"{error} AADSTS{code}")
        self.error = error
        self.code = code
        self.message = message
        self.status = status
        self.suberror = suberror

    @property
    def aadsts(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


def correlation_id(request: Request) -> str:
    supplied = request.headers.get("client-request-id", "")
    try:
        return str(uuid.UUID(supplied))
    except ValueError:
        return str(uuid.uuid4())


def error_json(request: Request, failure: OAuthError, now: datetime, base_url: str) -> JSONResponse:
    trace_id = str(uuid.uuid4())
    corr = correlation_id(request)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    body: dict[str, object] = {
        "error": failure.error,
        "error_description": (
            f"{failure.aadsts} Trace ID: {trace_id} Correlation ID: {corr} Timestamp: {stamp}"
        ),
        "error_codes": [failure.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": corr,
        "error_uri": f"{base_url}/error?code={failure.code}",
    }
    if failure.suberror:
        body["suberror"] = failure.suberror
    headers = {"client-request-id": corr, "x-ms-request-id": trace_id, "Cache-Control": "no-store"}
    return JSONResponse(body, status_code=failure.status, headers=headers)


def error_page(failure: OAuthError, status: int = 400) -> HTMLResponse:
    """The page Entra shows instead of redirecting, when the redirect target itself is not
    trustworthy (unknown client, unregistered redirect URI): sending an error there could
    leak the request to an attacker's URI.
    """
    text = html.escape(failure.aadsts)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign in</title></head>"
        f"<body><h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<p id='error' data-error='{html.escape(failure.error)}' "
        f"data-code='AADSTS{failure.code}'>{text}</p></body></html>"
    )
    return HTMLResponse(page, status_code=status)
