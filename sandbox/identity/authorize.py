"""`/{tenant}/oauth2/v2.0/authorize`: the authorization-code sign-in, without a password.

Order of checks follows Entra: the client and the redirect URI are checked first and their
failures are shown as an error *page* (redirecting to an unverified URI would hand the request
to whoever owns it); every later failure is sent back to the redirect URI with `error`,
`error_description` and `state`.

Sandbox policy, stricter than Entra: PKCE with S256 is required on every request (Entra
accepts `plain` and, for confidential web apps, no PKCE at all). The product always sends
S256, so a request without it is a bug worth failing loudly.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sandbox.directory import User
from sandbox.identity.claims import pending_demand
from sandbox.identity.discovery import known_tenant, tenant_not_found
from sandbox.identity.errors import OAuthError, error_page
from sandbox.identity.forms import FormTooLarge, read_form
from sandbox.identity.scopes import InvalidScope, ScopeRequest, expand_default, parse_scope
from sandbox.identity.state import AuthorizationCode, opaque, take_injected

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

logger = logging.getLogger(__name__)

RESPONSE_MODES = ("query", "fragment", "form_post")
PROMPTS = ("none", "login", "consent", "select_account")
# base64url of a SHA-256 digest, without padding: always 43 characters.
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Fields the sandbox's own sign-in page posts back; never part of a client's request.
USER_FIELD = "sandbox_user"
CONSENT_FIELD = "sandbox_consent"

# The AADSTS code and text Entra uses for each error a test can ask for.
AUTHORIZE_ERROR_DEFAULTS: dict[str, tuple[int, str]] = {
    "access_denied": (65004, "User declined to consent to access the app."),
    "consent_required": (
        65001,
        "The user or administrator has not consented to use the application. Send an "
        "interactive authorization request for this user and resource.",
    ),
    "interaction_required": (
        50076,
        "Due to a configuration change made by your administrator, or because you moved to a "
        "new location, you must use multi-factor authentication to access the resource.",
    ),
    "login_required": (
        50058,
        "A silent sign-in request was sent but no user is signed in.",
    ),
    "invalid_request": (90014, "The request body must contain the required parameters."),
    "server_error": (
        50000,
        "There was an error issuing a token or an issue with our sign-in service.",
    ),
    "temporarily_unavailable": (
        50033,
        "The server is temporarily too busy to handle the request. Please try again later.",
    ),
    "unauthorized_client": (700016, "The application is not authorized for this request."),
}


class _Redirectable(Exception):
    """A failure that goes back to the (verified) redirect URI."""

    def __init__(self, failure: OAuthError) -> None:
        super().__init__(failure.error)
        self.failure = failure


def _respond(redirect_uri: str, mode: str, params: dict[str, str]) -> Response:
    if mode == "form_post":
        fields = "".join(
            f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'/>"
            for k, v in params.items()
        )
        page = (
            "<!doctype html><html><head><title>Working...</title></head>"
            "<body onload='document.forms[0].submit()'>"
            f"<form method='POST' name='hiddenform' action='{html.escape(redirect_uri)}'>"
            f"{fields}<noscript><p>Script is disabled. Click Submit to continue.</p>"
            "<input type='submit' value='Submit'/></noscript></form></body></html>"
        )
        return HTMLResponse(page)
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(params)}", status_code=302)


def _error_params(failure: OAuthError, state: str | None, now: datetime) -> dict[str, str]:
    params = {
        "error": failure.error,
        "error_description": f"{failure.aadsts} Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}",
    }
    if failure.suberror:
        params["error_subcode"] = failure.suberror
    if state is not None:
        params["state"] = state
    return params


def _sign_in_page(
    ctx: SandboxContext,
    tenant: str,
    params: dict[str, str],
    scopes: ScopeRequest,
    notice: str | None,
) -> HTMLResponse:
    """The tenant's users and a consent button, posting back to this endpoint."""
    hint = params.get("login_hint", "").lower()
    users = [u for u in ctx.directory.users.values() if not u.is_shared_mailbox]
    chosen = hint if any(u.upn == hint for u in users) else (users[0].upn if users else "")
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'/>"
        for k, v in params.items()
        if k not in (USER_FIELD, CONSENT_FIELD)
    )
    radios = "".join(
        f"<li><label><input type='radio' name='{USER_FIELD}' value='{html.escape(u.upn)}'"
        f"{' checked' if u.upn == chosen else ''}/> {html.escape(u.display_name)} "
        f"({html.escape(u.upn)})</label></li>"
        for u in users
    )
    permissions = "".join(
        f"<li>{html.escape(resource)}: {html.escape(p)}</li>"
        for resource, perms in scopes.permissions.items()
        for p in perms
    )
    notice_html = f"<p id='notice'>{html.escape(notice)}</p>" if notice else ""
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Sign in - sandbox</title>"
        "</head><body><h1>Sign in to Contoso (sandbox)</h1>"
        f"{notice_html}<form method='POST' action='/{html.escape(tenant)}/oauth2/v2.0/authorize'>"
        f"{hidden}<ul id='users'>{radios}</ul>"
        f"<p>The app asks for these permissions:</p><ul id='permissions'>{permissions}</ul>"
        f"<button type='submit' name='{CONSENT_FIELD}' value='accept'>Accept</button>"
        f"<button type='submit' name='{CONSENT_FIELD}' value='deny'>Cancel</button>"
        "</form></body></html>"
    )
    return HTMLResponse(page)


def _require_pkce(params: dict[str, str]) -> str:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise _Redirectable(
            OAuthError(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required (sandbox policy: send code_challenge "
                "with code_challenge_method=S256).",
            )
        )
    if method != "S256":
        raise _Redirectable(
            OAuthError(
                "invalid_request",
                9002325,
                f"code_challenge_method '{method or 'plain'}' is not accepted (sandbox policy: "
                "S256 only; 'plain' protects nothing if the request leaks).",
            )
        )
    if not S256_CHALLENGE.match(challenge):
        raise _Redirectable(
            OAuthError("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        )
    return challenge


def authorize_handler(ctx: SandboxContext) -> Callable[[Request], Awaitable[Response]]:
    async def authorize(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not known_tenant(ctx, tenant):
            return error_page(tenant_not_found(tenant))
        params = dict(request.query_params)
        if request.method == "POST":
            try:
                params.update(await read_form(request) or {})
            except FormTooLarge:
                return error_page(OAuthError("invalid_request", 9002313, "Request too large."))
        app = ctx.directory.app

        client_id = params.get("client_id")
        if not client_id:
            return error_page(
                OAuthError(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_id'.",
                )
            )
        if client_id.lower() != app.client_id:
            return error_page(
                OAuthError(
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory "
                    f"'{ctx.directory.domain}'.",
                )
            )
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return error_page(
                OAuthError(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'redirect_uri'.",
                )
            )
        # Exact string match, as Entra: no prefix, case or trailing-slash leniency.
        if redirect_uri not in app.redirect_uris:
            return error_page(
                OAuthError(
                    "invalid_request",
                    50011,
                    f"The redirect URI '{redirect_uri}' specified in the request does not match "
                    f"the redirect URIs configured for the application '{app.client_id}'.",
                )
            )
        mode = params.get("response_mode") or "query"
        if mode not in RESPONSE_MODES:
            return error_page(
                OAuthError(
                    "invalid_request",
                    9002313,
                    f"Invalid request. response_mode '{mode}' is not supported.",
                )
            )
        state = params.get("state")
        now = ctx.controls.now()
        try:
            return await _authorize_verified(ctx, request, tenant, params, redirect_uri, mode)
        except _Redirectable as failed:
            logger.info("authorize refused: %s AADSTS%s", failed.failure.error, failed.failure.code)
            return _respond(redirect_uri, mode, _error_params(failed.failure, state, now))

    return authorize


async def _authorize_verified(
    ctx: SandboxContext,
    request: Request,
    tenant: str,
    params: dict[str, str],
    redirect_uri: str,
    mode: str,
) -> Response:
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise _Redirectable(
            OAuthError(
                "unsupported_response_type",
                700054,
                f"response_type '{response_type}' is not enabled for the application.",
            )
        )
    if not params.get("scope"):
        raise _Redirectable(
            OAuthError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        )
    try:
        scopes = parse_scope(params["scope"], ctx.directory)
    except InvalidScope as bad:
        if bad.unknown_resource:
            raise _Redirectable(
                OAuthError(
                    "invalid_resource",
                    500011,
                    f"The resource principal named {bad.scope} was not found in the tenant "
                    f"named {ctx.directory.domain}.",
                )
            ) from None
        raise _Redirectable(
            OAuthError(
                "invalid_scope",
                70011,
                f"The provided value for the input parameter 'scope' isn't valid. The scope "
                f"{bad.scope} isn't valid.",
            )
        ) from None
    challenge = _require_pkce(params)
    prompt = params.get("prompt")
    if prompt and prompt not in PROMPTS:
        raise _Redirectable(
            OAuthError("invalid_request", 90023, f"Unsupported 'prompt' value '{prompt}'.")
        )

    identity = ctx.identity
    hint = params.get("login_hint")
    injected = take_injected(identity.authorize_errors, hint)
    if injected is not None:
        raise _Redirectable(
            OAuthError(
                injected.error, injected.code, injected.description, suberror=injected.suberror
            )
        )

    consent = params.get(CONSENT_FIELD)
    user: User | None = None
    if request.method == "POST" and consent is not None:
        if consent != "accept":
            raise _Redirectable(
                OAuthError("access_denied", 65004, "User declined to consent to access the app.")
            )
        user = _signable_user(ctx, params.get(USER_FIELD, ""))
        if user is None:
            return _sign_in_page(ctx, tenant, params, scopes, "Choose an account.")
    elif prompt == "none":
        if not identity.auto_consent:
            raise _Redirectable(
                OAuthError("consent_required", *AUTHORIZE_ERROR_DEFAULTS["consent_required"])
            )
        user = _signable_user(ctx, hint or "")
        if user is None:
            raise _Redirectable(
                OAuthError("login_required", *AUTHORIZE_ERROR_DEFAULTS["login_required"])
            )
    elif not identity.auto_consent:
        return _sign_in_page(ctx, tenant, params, scopes, None)
    else:
        user = _signable_user(ctx, hint or "")
        if user is None:
            notice = (
                f"AADSTS50034: The user account {hint} does not exist in the "
                f"{ctx.directory.domain} directory or cannot sign in."
                if hint
                else None
            )
            return _sign_in_page(ctx, tenant, params, scopes, notice)

    demand = pending_demand(identity.claims_demands, user.upn)
    if demand is not None and demand.carried_by(params.get("claims")):
        # An interactive sign-in asked for the demanded claims (e.g. the MFA step-up).
        demand.satisfied = True
    grants = {
        (resource, permission)
        for resource, perms in scopes.permissions.items()
        for permission in expand_default(resource, perms, ctx.directory)
    }
    code = AuthorizationCode(
        value=opaque("1.AQ"),
        client_id=ctx.directory.app.client_id,
        redirect_uri=redirect_uri,
        upn=user.upn,
        grants=grants,
        oidc=set(scopes.oidc),
        resource_order=list(scopes.permissions),
        code_challenge=challenge,
        nonce=params.get("nonce"),
        issued_at=ctx.controls.now(),
    )
    identity.prune_codes(code.issued_at)
    identity.codes[code.value] = code
    identity.record("code", code.value, upn=user.upn)
    logger.info("authorization code issued for %s", user.upn)
    answer = {"code": code.value}
    if params.get("state") is not None:
        answer["state"] = params["state"]
    return _respond(redirect_uri, mode, answer)


def _signable_user(ctx: SandboxContext, upn: str) -> User | None:
    """A tenant user who can sign in (shared mailboxes have sign-in blocked)."""
    user = ctx.directory.users.get(upn.lower()) if upn else None
    if user is None or user.is_shared_mailbox:
        return None
    return user
