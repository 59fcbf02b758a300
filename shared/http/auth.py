"""Browser routes for connecting a mailbox: /auth/login and /auth/callback (anonymous at the
HTTP level; protected by state + PKCE + the browser-binding cookie)."""

from __future__ import annotations

from html import escape
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import azure.functions as func
from pydantic import Field

from shared.connections.signin import finished_marker
from shared.errors import SignInFailed, UnsupportedMediaType, ValidationFailed
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security, json_response
from shared.http.models import ApiModel
from shared.http.pages import COPY_SCRIPT, html_page, wants_json
from shared.http.problems import PROBLEM_JSON, render_problem

if TYPE_CHECKING:
    from shared.config import Settings

api = ApiBlueprint("connect")

COOKIE = "oia_signin"


class LoginQuery(ApiModel):
    loginHint: str | None = Field(default=None, max_length=256)
    returnTo: str | None = Field(default=None, max_length=2048)
    # Claims a resource demanded (CAE step-up), as a reauth_required loginUrl carries them.
    claims: str | None = Field(default=None, max_length=8192)


class CallbackQuery(ApiModel):
    model_config = {"extra": "allow"}  # the identity provider adds parameters of its own

    code: str | None = Field(default=None, max_length=8192)
    state: str | None = Field(default=None, max_length=256)
    error: str | None = Field(default=None, max_length=128)
    error_description: str | None = Field(default=None, max_length=4096)


class ConnectedResult(ApiModel):
    connectionId: str
    mailbox: str
    status: str


def _cookie(settings: Settings, value: str, max_age: int) -> str:
    redirect = urlsplit(str(settings.REDIRECT_URI))
    cookie: SimpleCookie = SimpleCookie()
    cookie[COOKIE] = value
    morsel = cookie[COOKIE]
    morsel["path"] = "/api/auth"
    morsel["httponly"] = True
    if settings.AUTH_RESPONSE_MODE == "form_post":
        # The identity provider's response is then a cross-site POST: only a
        # SameSite=None cookie travels with it, and browsers require Secure for that.
        morsel["samesite"] = "None"
        morsel["secure"] = True
    else:
        # Lax: sent on the top-level redirect back from the identity provider, not on
        # cross-site subrequests or posts.
        morsel["samesite"] = "Lax"
        if not (redirect.scheme == "http" and redirect.hostname in {"127.0.0.1", "localhost"}):
            morsel["secure"] = True
    morsel["max-age"] = max_age
    return morsel.OutputString()


def _browser_secret(req: func.HttpRequest) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(req.headers.get("cookie") or "")
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value if morsel else None


@api.route(
    "auth/login",
    methods=("GET",),
    operation_id="auth_login",
    summary="Start connecting a mailbox: redirects the browser to sign in (auth code + PKCE).",
    security=Security.ANONYMOUS,
    query_model=LoginQuery,
    responses={302: ResponseSpec("Redirect to the identity provider")},
    errors=(ValidationFailed, SignInFailed),
)
async def auth_login(request: ApiRequest) -> func.HttpResponse:
    query = request.query(LoginQuery)
    start = await request.services.connections.start_login(
        query.loginHint, query.returnTo, request.correlation_id, query.claims
    )
    return func.HttpResponse(
        status_code=302,
        headers={
            "Location": start.auth_uri,
            "Set-Cookie": _cookie(request.services.settings, start.browser_secret, 600),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


@api.route(
    "auth/callback",
    methods=("GET", "POST"),
    operation_id="auth_callback",
    summary="Finish connecting a mailbox (the identity provider redirects here).",
    security=Security.ANONYMOUS,
    query_model=CallbackQuery,
    responses={
        200: ResponseSpec(
            "Connected (HTML page, or JSON with Accept: application/json)", ConnectedResult
        ),
        302: ResponseSpec("Connected; redirect to the allow-listed returnTo"),
    },
    errors=(SignInFailed, ValidationFailed, UnsupportedMediaType),
    error_media_types=(PROBLEM_JSON, "text/html"),
)
async def auth_callback(request: ApiRequest) -> func.HttpResponse:
    req = request.raw
    clear = {"Set-Cookie": _cookie(request.services.settings, "", 0)}
    try:
        query = (
            request.form(CallbackQuery) if req.method == "POST" else request.query(CallbackQuery)
        )
        params = {k: v for k, v in query.model_dump().items() if isinstance(v, str)}
        connected = await request.services.connections.finish_login(
            params, _browser_secret(req), request.correlation_id
        )
    except (SignInFailed, ValidationFailed) as failure:
        if wants_json(req):
            response = render_problem(failure, request.correlation_id)
            response.headers["Set-Cookie"] = clear["Set-Cookie"]
            return response
        return html_page(
            "The mailbox was not connected",
            f'<p>{escape(failure.detail)}</p><p><a href="/api/auth/login">Start again</a></p>',
            request.correlation_id,
            status=failure.http_status,
            headers=clear,
        )
    connection = connected.connection
    # A reload of this page (or a replayed callback URL) is then told "already used".
    done = {
        "Set-Cookie": _cookie(request.services.settings, finished_marker(str(query.state)), 600)
    }
    if connected.return_to:
        separator = "&" if "?" in connected.return_to else "?"
        location = connected.return_to + separator + urlencode({"connectionId": connection.id})
        return func.HttpResponse(
            status_code=302,
            headers={"Location": location, "Referrer-Policy": "no-referrer", **done},
        )
    if wants_json(req):
        response = json_response(
            ConnectedResult(
                connectionId=connection.id,
                mailbox=connection.mailbox,
                status=str(connection.status),
            ),
            headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", **done},
        )
        return response
    return html_page(
        "Mailbox connected",
        f"<p>The mailbox <strong>{escape(connection.mailbox)}</strong> is connected.</p>"
        f'<p>Connection id: <code id="connection-id">{escape(connection.id)}</code></p>'
        "<p>Give this id to the automation (Power Automate, Logic Apps, …) that will use the "
        "mailbox. You can close this page.</p>"
        '<p><a href="/api/portal">See and manage your connections</a></p>',
        request.correlation_id,
        headers=done,
        script=COPY_SCRIPT,
    )
