"""`/{tenant}/oauth2/v2.0/token`: authorization_code, refresh_token and client_credentials.

Behaviour taken from Entra's documentation:
- the client authenticates with its secret in the form (client_secret_post) or in HTTP Basic
  (client_secret_basic); a wrong secret is 401 `invalid_client` AADSTS7000215; or with a
  client assertion (a certificate-signed JWT, or a federated token such as a managed
  identity's), checked in sandbox/identity/credentials.py;
- `claims` with `access_token.xms_cc` = ["CP1"] makes Graph tokens CAE-capable (`xms_cc`),
  and a refresh carrying the claims of a pending claims challenge answers it
  (sandbox/identity/claims.py);
- codes are single use and live 10 minutes; the `redirect_uri` must equal the one the code
  was issued for; the PKCE verifier must hash to the challenge;
- a refresh token is bound to user + client, not to a resource: it can be redeemed for any
  resource whose permissions were consented. Each use returns a new refresh token and, by
  default, the old one stays valid (Entra does not revoke it); strict mode revokes it;
- a token is for one resource: the first one named in `scope`;
- client_credentials needs exactly one `{resource}/.default` scope and yields `roles`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.directory import GRAPH_APP_ID, GRAPH_RESOURCE, User
from sandbox.identity.claims import capabilities, pending_demand
from sandbox.identity.credentials import JWT_BEARER, check_client_assertion
from sandbox.identity.discovery import known_tenant, tenant_not_found
from sandbox.identity.errors import OAuthError, correlation_id, error_json
from sandbox.identity.forms import FormTooLarge, read_form
from sandbox.identity.keys import b64url
from sandbox.identity.scopes import (
    DEFAULT,
    InvalidScope,
    Resource,
    ScopeRequest,
    expand_default,
    parse_scope,
    qualified,
)
from sandbox.identity.state import RefreshGrant, opaque, take_injected
from sandbox.identity.tokens import (
    client_info,
    graph_audience_for,
    mint_api_token,
    mint_graph_token,
    mint_id_token,
)

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

logger = logging.getLogger(__name__)


def _missing(name: str) -> OAuthError:
    return OAuthError(
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def _malformed_grant() -> OAuthError:
    return OAuthError("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")


def _consent_required(scope: str) -> OAuthError:
    return OAuthError(
        "invalid_grant",
        65001,
        f"The user or administrator has not consented to use the application with scope "
        f"'{scope}'. Send an interactive authorization request for this user and resource.",
        suberror="consent_required",
    )


def _authenticate_client(ctx: SandboxContext, request: Request, form: dict[str, str]) -> str:
    """The authenticated client id. Secrets are compared in constant time."""
    app = ctx.directory.app
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError(
                "invalid_client", 7000215, "Invalid client secret provided.", status=401
            ) from None
        basic_id, _, basic_secret = decoded.partition(":")
        # RFC 6749 2.3.1: both parts are form-urlencoded before being joined.
        basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        if client_id and client_id != basic_id:
            raise OAuthError(
                "invalid_client",
                700016,
                "Client id in the body and in the Authorization header differ.",
                status=401,
            )
        client_id, secret = basic_id, basic_secret
    if not client_id:
        raise _missing("client_id")
    if client_id.lower() != app.client_id:
        raise OAuthError(
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{ctx.directory.domain}'.",
        )
    assertion_type = form.get("client_assertion_type")
    if assertion_type is not None or form.get("client_assertion") is not None:
        if secret:
            raise OAuthError(
                "invalid_request",
                9002313,
                "Invalid request. Send either a client secret or a client assertion, not both.",
            )
        if assertion_type != JWT_BEARER:
            raise OAuthError(
                "invalid_request",
                9002313,
                f"Invalid request. client_assertion_type must be '{JWT_BEARER}'.",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise _missing("client_assertion")
        check_client_assertion(ctx, app.client_id, assertion)
        return app.client_id
    if not secret:
        raise OAuthError(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
            status=401,
        )
    if not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
        raise OAuthError(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the "
            f"client secret value, not the client secret ID, for a secret added to app "
            f"'{app.client_id}'.",
            status=401,
        )
    return app.client_id


def _parse(ctx: SandboxContext, raw: str | None) -> ScopeRequest:
    try:
        return parse_scope(raw, ctx.directory)
    except InvalidScope as bad:
        if bad.unknown_resource:
            raise OAuthError(
                "invalid_resource",
                500011,
                f"The resource principal named {bad.scope} was not found in the tenant named "
                f"{ctx.directory.domain}.",
            ) from None
        raise OAuthError(
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' isn't valid. The scope "
            f"{bad.scope} isn't valid.",
        ) from None


def _choose_resource(
    ctx: SandboxContext,
    requested: ScopeRequest,
    grants: set[tuple[Resource, str]],
    fallback_order: list[Resource],
) -> tuple[Resource | None, list[str]]:
    """The token's resource and its `scp`: all consented permissions of that resource (Entra
    puts every consented permission in `scp`, not only the ones asked for this time).
    Requested permissions that were never consented fail with consent_required.
    """
    for resource, perms in requested.permissions.items():
        consented = {p for r, p in grants if r == resource}
        for permission in perms:
            if permission != DEFAULT and permission not in consented:
                raise _consent_required(qualified(resource, permission, ctx.directory))
        if DEFAULT in perms and not consented:
            raise _consent_required(qualified(resource, DEFAULT, ctx.directory))
    chosen = requested.first_resource or next(iter(fallback_order), None)
    if chosen is None:
        return None, []
    order = expand_default(chosen, [DEFAULT], ctx.directory)
    scp = [p for p in order if (chosen, p) in grants]
    return chosen, scp


def _token_response(
    ctx: SandboxContext,
    *,
    form: dict[str, str],
    client_id: str,
    user: User,
    resource: Resource | None,
    scp: list[str],
    requested: ScopeRequest,
    oidc_consented: set[str],
    grants: set[tuple[Resource, str]],
    nonce: str | None,
) -> dict[str, Any]:
    oidc = requested.oidc & oidc_consented
    if resource == "api":
        token = mint_api_token(ctx, client_id=client_id, user=user, scopes=scp)
        scope_text = [qualified("api", p, ctx.directory) for p in scp]
    else:
        # The OIDC scopes are Graph permissions too: Graph tokens list the consented ones in
        # `scp` next to the mail permissions, sorted case-insensitively as Entra does. With
        # only OIDC scopes asked, this is the token for Graph's userinfo endpoint.
        graph_scp = sorted([*scp, *oidc_consented], key=str.lower)
        audience = graph_audience_for(form.get("scope", "").split())
        token = mint_graph_token(
            ctx,
            client_id=client_id,
            user=user,
            scopes=graph_scp,
            audience=audience,
            capabilities=capabilities(form.get("claims")),
        )
        scope_text = graph_scp
    body: dict[str, Any] = {
        "token_type": "Bearer",
        "scope": " ".join(scope_text),
        "expires_in": token.expires_in,
        "ext_expires_in": token.expires_in,
        "access_token": token.value,
    }
    if "offline_access" in oidc:
        refresh = RefreshGrant(
            value=opaque("1.AR"),
            client_id=client_id,
            upn=user.upn,
            grants=set(grants),
            oidc=set(oidc_consented),
            issued_at=ctx.controls.now(),
        )
        ctx.identity.refresh_tokens[refresh.value] = refresh
        ctx.identity.record("refresh", refresh.value, upn=user.upn)
        body["refresh_token"] = refresh.value
    if "openid" in oidc:
        body["id_token"] = mint_id_token(
            ctx, client_id=client_id, user=user, nonce=nonce, oidc=oidc
        )
    if form.get("client_info") == "1":
        body["client_info"] = client_info(user, ctx.directory.tenant_id)
    return body


def _redeem_code(ctx: SandboxContext, form: dict[str, str], client_id: str) -> dict[str, Any]:
    value = form.get("code")
    if not value:
        raise _missing("code")
    code = ctx.identity.codes.get(value)
    if code is None:
        raise _malformed_grant()
    if code.redeemed:
        raise OAuthError(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
            "or use an existing refresh token.",
        )
    # Burnt on the first attempt, even a failed one: a stolen code gets one guess at the
    # verifier, not as many as the attacker likes.
    code.redeemed = True
    if code.expired(ctx.controls.now()):
        raise OAuthError(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. "
            "Send a new interactive authorization request for this user and resource.",
        )
    if code.client_id != client_id:
        raise OAuthError("invalid_grant", 70000, "Provided grant is invalid or malformed.")
    redirect_uri = form.get("redirect_uri")
    if redirect_uri != code.redirect_uri:
        raise OAuthError(
            "invalid_grant",
            500112,
            f"The reply address '{redirect_uri}' does not match the reply address "
            f"'{code.redirect_uri}' provided when requesting Authorization code.",
        )
    verifier = form.get("code_verifier")
    if not verifier:
        raise _missing("code_verifier")
    computed = b64url(hashlib.sha256(verifier.encode("ascii", errors="replace")).digest())
    if not hmac.compare_digest(computed, code.code_challenge):
        raise OAuthError(
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization "
            "request.",
        )
    user = ctx.directory.users.get(code.upn)
    if user is None:
        raise OAuthError(
            "invalid_grant", 50034, "The user account does not exist in the directory."
        )
    requested = _parse(ctx, form.get("scope"))
    if not form.get("scope"):
        requested.oidc = set(code.oidc)
    resource, scp = _choose_resource(ctx, requested, code.grants, code.resource_order)
    return _token_response(
        ctx,
        form=form,
        client_id=client_id,
        user=user,
        resource=resource,
        scp=scp,
        requested=requested,
        oidc_consented=code.oidc,
        grants=code.grants,
        nonce=code.nonce,
    )


def _redeem_refresh_token(
    ctx: SandboxContext, form: dict[str, str], client_id: str
) -> dict[str, Any]:
    value = form.get("refresh_token")
    if not value:
        raise _missing("refresh_token")
    identity = ctx.identity
    grant = identity.refresh_tokens.get(value)
    if grant is None:
        raise _malformed_grant()
    if grant.client_id != client_id:
        raise OAuthError("invalid_grant", 70000, "Provided grant is invalid or malformed.")
    injected = take_injected(identity.refresh_errors, grant.upn)
    if injected is not None:
        raise OAuthError(
            injected.error,
            injected.code,
            injected.description,
            status=injected.status,
            suberror=injected.suberror,
        )
    now = ctx.controls.now()
    issued = grant.issued_at.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    if grant.revoked:
        raise OAuthError(
            "invalid_grant",
            50173,
            f"The provided grant has expired due to it being revoked, a fresh auth token is "
            f"needed. The user might have changed or reset their password. The grant was "
            f"issued on '{issued}'.",
        )
    if grant.expired(now):
        raise OAuthError(
            "invalid_grant",
            700082,
            f"The refresh token has expired due to inactivity. The token was issued on "
            f"{issued} and was inactive for 90.00:00:00.",
        )
    user = ctx.directory.users.get(grant.upn)
    if user is None:
        raise OAuthError(
            "invalid_grant", 50034, "The user account does not exist in the directory."
        )
    demand = pending_demand(identity.claims_demands, grant.upn)
    if demand is not None and demand.carried_by(form.get("claims")):
        demand.claims_refreshes += 1
        if demand.mode == "interaction":
            raise OAuthError(
                "interaction_required",
                50076,
                "Due to a configuration change made by your administrator, or because you "
                "moved to a new location, you must use multi-factor authentication to access "
                f"'{GRAPH_APP_ID}'.",
            )
        demand.satisfied = True
    requested = _parse(ctx, form.get("scope"))
    if not form.get("scope"):
        requested.oidc = set(grant.oidc)
    order: list[Resource] = ["graph", "api"]
    fallback = [r for r in order if any(g[0] == r for g in grant.grants)]
    resource, scp = _choose_resource(ctx, requested, grant.grants, fallback)
    if identity.strict_refresh:
        grant.revoked = True
    requested.oidc |= {"offline_access"} & grant.oidc
    return _token_response(
        ctx,
        form=form,
        client_id=client_id,
        user=user,
        resource=resource,
        scp=scp,
        requested=requested,
        oidc_consented=grant.oidc,
        grants=grant.grants,
        nonce=None,
    )


def _client_credentials(
    ctx: SandboxContext, form: dict[str, str], client_id: str
) -> dict[str, Any]:
    raw = form.get("scope", "")
    scopes = raw.split()
    if len(scopes) != 1 or not scopes[0].endswith("/" + DEFAULT):
        raise OAuthError(
            "invalid_scope",
            1002012,
            f"The provided value for scope {raw} is not valid. Client credential flows must "
            "have a scope value with /.default suffixed to the resource identifier "
            "(application ID URI).",
        )
    resource_id = scopes[0][: -len("/" + DEFAULT)].lower()
    app = ctx.directory.app
    roles_by_resource = ctx.identity.app_roles
    if resource_id in (GRAPH_RESOURCE, GRAPH_APP_ID):
        token = mint_graph_token(
            ctx,
            client_id=client_id,
            user=None,
            roles=list(roles_by_resource.get("graph", ())),
            audience=GRAPH_RESOURCE if resource_id == GRAPH_RESOURCE else GRAPH_APP_ID,
        )
    elif resource_id in (app.app_id_uri.lower(), app.client_id):
        token = mint_api_token(
            ctx, client_id=client_id, user=None, roles=list(roles_by_resource.get("api", ()))
        )
    else:
        raise OAuthError(
            "invalid_resource",
            500011,
            f"The resource principal named {resource_id} was not found in the tenant named "
            f"{ctx.directory.domain}.",
        )
    return {
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "ext_expires_in": token.expires_in,
        "access_token": token.value,
    }


GRANTS = {
    "authorization_code": _redeem_code,
    "refresh_token": _redeem_refresh_token,
    "client_credentials": _client_credentials,
}


def token_handler(ctx: SandboxContext) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        try:
            if not known_tenant(ctx, tenant):
                raise tenant_not_found(tenant)
            try:
                form = await read_form(request)
            except FormTooLarge:
                raise OAuthError("invalid_request", 9002313, "Request too large.") from None
            if form is None:
                raise _missing("grant_type")
            grant_type = form.get("grant_type")
            if not grant_type:
                raise _missing("grant_type")
            client_id = _authenticate_client(ctx, request, form)
            redeem = GRANTS.get(grant_type)
            if redeem is None:
                raise OAuthError(
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{grant_type}'.",
                )
            body = redeem(ctx, form, client_id)
        except OAuthError as failure:
            logger.info("token request refused: %s AADSTS%s", failure.error, failure.code)
            return error_json(request, failure, ctx.controls.now(), ctx.settings.base_url)
        headers = {
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            "client-request-id": correlation_id(request),
            "x-ms-request-id": str(uuid.uuid4()),
        }
        return JSONResponse(body, headers=headers)

    return token
