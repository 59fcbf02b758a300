"""Browser routes of the "My connections" portal: the page, its sign-in callback, and the
disconnect form. HTML for people; no JavaScript needed; forms carry an anti-forgery token."""

from __future__ import annotations

from datetime import datetime
from html import escape
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import azure.functions as func
from pydantic import Field

from shared.errors import (
    ConnectionNotFound,
    CsrfRejected,
    Forbidden,
    PayloadTooLarge,
    SignInFailed,
    StorageUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.api import ApiBlueprint, ApiRequest, ResponseSpec, Security
from shared.http.auth import CallbackQuery
from shared.http.models import ApiModel
from shared.http.pages import html_page

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.portal.service import PortalSession

api = ApiBlueprint("portal")

FLOW_COOKIE = "oia_portal_flow"
SESSION_COOKIE = "oia_portal"
_PATH = "/api/portal"
_HTML_ERRORS = ("application/problem+json", "text/html")


class DisconnectForm(ApiModel):
    csrf: str = Field(max_length=128)


def _cookie(settings: Settings, name: str, value: str, max_age: int) -> str:
    page = urlsplit(settings.portal_redirect_uri)
    cookie: SimpleCookie = SimpleCookie()
    cookie[name] = value
    morsel = cookie[name]
    morsel["path"] = _PATH
    morsel["httponly"] = True
    # Lax: the cookie rides on the top-level redirect back from the identity provider and on
    # links into the portal, never on another site's form post (the first CSRF defence).
    morsel["samesite"] = "Lax"
    if not (page.scheme == "http" and page.hostname in {"127.0.0.1", "localhost"}):
        morsel["secure"] = True
    morsel["max-age"] = max_age
    return morsel.OutputString()


def _read_cookie(req: func.HttpRequest, name: str) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(req.headers.get("cookie") or "")
    except Exception:  # a malformed Cookie header is the same as none
        return None
    morsel = cookie.get(name)
    return morsel.value if morsel else None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def _login_link(return_to: str, login_hint: str | None = None) -> str:
    query = {"returnTo": return_to, **({"loginHint": login_hint} if login_hint else {})}
    return "/api/auth/login?" + urlencode(query)


def _error_page(failure: SignInFailed | CsrfRejected, request: ApiRequest) -> func.HttpResponse:
    return html_page(
        "Not signed in" if isinstance(failure, SignInFailed) else "Not done",
        f'<p>{escape(failure.detail)}</p><p><a href="{_PATH}">Back to my connections</a></p>',
        request.correlation_id,
        status=failure.http_status,
        headers={"Set-Cookie": _cookie(request.services.settings, FLOW_COOKIE, "", 0)},
    )


@api.route(
    "portal",
    methods=("GET",),
    operation_id="portal",
    summary="My connections: the signed-in person's connected mailboxes (HTML page).",
    security=Security.ANONYMOUS,
    responses={
        200: ResponseSpec("The page", media_type="text/html"),
        302: ResponseSpec("Not signed in: redirect to sign in (OpenID Connect)"),
    },
    errors=(SignInFailed, StorageUnavailable),
    error_media_types=_HTML_ERRORS,
)
async def portal_page(request: ApiRequest) -> func.HttpResponse:
    portal = request.services.portal
    session = await portal.session(_read_cookie(request.raw, SESSION_COOKIE))
    if session is None:
        start = await portal.start_sign_in()
        return func.HttpResponse(
            status_code=302,
            headers={
                "Location": start.auth_uri,
                "Set-Cookie": _cookie(
                    request.services.settings, FLOW_COOKIE, start.flow_cookie, 600
                ),
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
            },
        )
    rows = await portal.connections(session)
    here = request.services.settings.portal_url
    items = []
    for row in rows:
        action = ""
        if row.status == "reauth_required":
            action = f'<a href="{escape(_login_link(here, row.mailbox))}">Reconnect</a> '
        action += (
            f'<form method="post" action="{_PATH}/connections/{escape(row.id)}/disconnect">'
            f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">'
            f'<button type="submit">Disconnect</button></form>'
        )
        items.append(
            f'<tr data-connection-id="{escape(row.id)}">'
            f'<td data-label="Mailbox">{escape(row.mailbox)}</td>'
            f'<td data-label="Status">{escape(str(row.status))}</td>'
            f'<td data-label="Connected">{escape(_when(row.connected_at))}</td>'
            f'<td data-label="Last used">{escape(_when(row.last_used_at))}</td>'
            f'<td data-label="Triggers">{row.subscriptions}</td>'
            f'<td data-label="Actions">{action}</td></tr>'
        )
    table = (
        "<table><thead><tr><th>Mailbox</th><th>Status</th><th>Connected</th><th>Last used</th>"
        '<th>Triggers</th><th></th></tr></thead><tbody id="connections">'
        + "".join(items)
        + "</tbody></table>"
        if items
        else '<p id="no-connections">You have no connected mailboxes.</p>'
    )
    body = (
        f"<p>Signed in as <strong>{escape(session.username)}</strong>.</p>{table}"
        f'<p><a id="connect" href="{escape(_login_link(here))}">Connect another mailbox</a></p>'
        f'<form method="post" action="{_PATH}/signout">'
        f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">'
        '<button type="submit">Sign out</button></form>'
    )
    return html_page(
        "My connections",
        body,
        request.correlation_id,
        # same-origin, not no-referrer: Chromium sends `Origin: null` with the forms of a
        # no-referrer page, and the origin check below needs the real one. The page's URL
        # holds nothing secret (the callback's code never reaches it).
        headers={"Referrer-Policy": "same-origin"},
        form_action="'self'",
    )


@api.route(
    "portal/callback",
    methods=("GET",),
    operation_id="portal_callback",
    summary="Finish signing in to the portal (the identity provider redirects here).",
    security=Security.ANONYMOUS,
    query_model=CallbackQuery,
    responses={303: ResponseSpec("Signed in: back to the portal")},
    # 403: the person declined at the identity provider (sign_in_failed, reason denied).
    errors=(SignInFailed, ValidationFailed, Forbidden),
    error_media_types=_HTML_ERRORS,
)
async def portal_callback(request: ApiRequest) -> func.HttpResponse:
    try:
        query = request.query(CallbackQuery)
        params = {k: v for k, v in query.model_dump().items() if isinstance(v, str)}
        session = await request.services.portal.finish_sign_in(
            params, _read_cookie(request.raw, FLOW_COOKIE), request.correlation_id
        )
    except SignInFailed as failure:
        return _error_page(failure, request)
    except ValidationFailed:
        return _error_page(
            SignInFailed("invalid_response", "The sign-in response is not valid."),
            request,
        )
    # The flow cookie is left to expire (10 minutes): it is spent, since the identity
    # provider redeems a code once, and one Set-Cookie per response is what every host keeps.
    return func.HttpResponse(
        status_code=303,
        headers={
            "Location": _PATH,
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "Set-Cookie": _cookie(
                request.services.settings,
                SESSION_COOKIE,
                session,
                request.services.portal.session_seconds,
            ),
        },
    )


def _same_origin(request: ApiRequest) -> bool:
    """A browser's form post names its origin; another site's must not be acted on (the
    second CSRF defence, beside the token)."""
    origin = request.raw.headers.get("origin")
    if origin is None:
        return True  # older browsers omit it on same-origin posts; the token still counts
    page = urlsplit(request.services.settings.portal_url)
    return bool(origin == f"{page.scheme}://{page.netloc}")


async def _session_and_form(request: ApiRequest) -> tuple[PortalSession, DisconnectForm]:
    session = await request.services.portal.session(_read_cookie(request.raw, SESSION_COOKIE))
    form = request.form(DisconnectForm)
    if session is None or not _same_origin(request):
        raise CsrfRejected("Your session has ended or the form came from elsewhere. Reload.")
    return session, form


@api.route(
    "portal/connections/{connectionId}/disconnect",
    methods=("POST",),
    operation_id="portal_disconnect",
    summary="Disconnect one of my mailboxes (the portal's form; same effect as DELETE).",
    security=Security.ANONYMOUS,
    responses={303: ResponseSpec("Disconnected: back to the portal")},
    errors=(
        CsrfRejected,
        ConnectionNotFound,
        ValidationFailed,
        UnsupportedMediaType,
        PayloadTooLarge,
        StorageUnavailable,
    ),
    error_media_types=_HTML_ERRORS,
)
async def portal_disconnect(request: ApiRequest) -> func.HttpResponse:
    try:
        session, form = await _session_and_form(request)
        await request.services.portal.disconnect(
            session, request.route("connectionId"), form.csrf, request.correlation_id
        )
    except CsrfRejected as failure:
        return _error_page(failure, request)
    return func.HttpResponse(status_code=303, headers={"Location": _PATH})


@api.route(
    "portal/signout",
    methods=("POST",),
    operation_id="portal_signout",
    summary="Sign out of the portal (clears the session cookie).",
    security=Security.ANONYMOUS,
    responses={200: ResponseSpec("Signed out", media_type="text/html")},
    errors=(CsrfRejected, ValidationFailed, UnsupportedMediaType, PayloadTooLarge),
    error_media_types=_HTML_ERRORS,
)
async def portal_signout(request: ApiRequest) -> func.HttpResponse:
    try:
        session, form = await _session_and_form(request)
    except CsrfRejected as failure:
        return _error_page(failure, request)
    if form.csrf != session.csrf:
        return _error_page(CsrfRejected("Reload the page."), request)
    return html_page(
        "Signed out",
        f'<p>You are signed out. <a href="{_PATH}">Sign in again</a></p>',
        request.correlation_id,
        headers={"Set-Cookie": _cookie(request.services.settings, SESSION_COOKIE, "", 0)},
    )
