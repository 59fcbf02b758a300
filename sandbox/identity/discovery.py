"""OpenID Connect discovery and JWKS for the tenant, at Entra's v2.0 paths.

Only the tenant's id and its domain name are accepted as `{tenant}`; `common` and
`organizations` are not served (the product is single-tenant and MSAL needs neither when it
is given a tenant authority with instance discovery off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from sandbox.identity.errors import OAuthError, error_json
from sandbox.identity.tokens import v2_issuer

if TYPE_CHECKING:
    from sandbox.context import SandboxContext


def known_tenant(ctx: SandboxContext, segment: str) -> bool:
    directory = ctx.directory
    return segment.lower() in {directory.tenant_id, directory.domain.lower()}


def tenant_not_found(segment: str) -> OAuthError:
    return OAuthError(
        "invalid_tenant",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
        "and are signing into the correct cloud.",
    )


def openid_configuration(ctx: SandboxContext) -> dict[str, Any]:
    base = ctx.settings.base_url
    tid = ctx.directory.tenant_id
    return {
        "token_endpoint": f"{base}/{tid}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{base}/{tid}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": v2_issuer(ctx),
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tid}/oauth2/v2.0/authorize",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tid}/oauth2/v2.0/logout",
        "claims_supported": [
            "sub",
            "iss",
            "cloud_instance_name",
            "cloud_instance_host_name",
            "cloud_graph_host_name",
            "msgraph_host",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "acr",
            "nonce",
            "preferred_username",
            "name",
            "tid",
            "ver",
            "at_hash",
            "c_hash",
            "email",
        ],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "sandbox.local",
        "cloud_graph_host_name": ctx.settings.base_url.removeprefix("https://"),
        "msgraph_host": ctx.settings.base_url.removeprefix("https://"),
        "rbac_url": f"{base}/rbac",
    }


def routes_handlers(ctx: SandboxContext) -> dict[str, Any]:
    async def configuration(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not known_tenant(ctx, tenant):
            return error_json(
                request, tenant_not_found(tenant), ctx.controls.now(), ctx.settings.base_url
            )
        return JSONResponse(openid_configuration(ctx))

    async def keys(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if not known_tenant(ctx, tenant):
            return error_json(
                request, tenant_not_found(tenant), ctx.controls.now(), ctx.settings.base_url
            )
        return JSONResponse(ctx.identity.keys.jwks(v2_issuer(ctx)))

    async def error_lookup(request: Request) -> Response:
        code = request.query_params.get("code", "")
        return HTMLResponse(
            f"<!doctype html><title>Error lookup</title><p>AADSTS{code[:12]!s}</p>"
            if code.isdigit()
            else "<!doctype html><title>Error lookup</title><p>Unknown error code.</p>"
        )

    return {"configuration": configuration, "keys": keys, "error_lookup": error_lookup}
