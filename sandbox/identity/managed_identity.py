"""`GET /msi/token`: the managed identity endpoint App Service and Azure Functions provide.

The host sets `IDENTITY_ENDPOINT` (this URL) and `IDENTITY_HEADER` (a secret) in the app's
environment; the app asks `GET {IDENTITY_ENDPOINT}?resource=…&api-version=2019-08-01
&client_id=…` with `X-IDENTITY-HEADER: {IDENTITY_HEADER}` and gets
`{"access_token", "expires_on" (epoch seconds, a string), "resource", "token_type",
"client_id"}`. Errors are App Service's shape, `{"statusCode", "message"}`.

The sandbox issues tokens only for the token-exchange audience (`api://AzureADTokenExchange`),
to user-assigned identities a test configured (`POST /_sandbox/managed-identity`): enough for
a federated client assertion, which is what the app uses them for. They are v2-format JWTs
whose issuer is the sandbox tenant and whose subject is the identity's object id, as Entra's.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.identity.credentials import EXCHANGE_AUDIENCE
from sandbox.identity.tokens import sign_token, v2_issuer

if TYPE_CHECKING:
    from sandbox.context import SandboxContext

API_VERSION = "2019-08-01"
PATH = "/msi/token"
# Audiences the identity endpoint issues tokens for (the public cloud's and national ones').
EXCHANGE_AUDIENCES = (EXCHANGE_AUDIENCE, "api://AzureADTokenExchangeUSGov")


def _failure(status: int, message: str) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message}, status_code=status)


def identity_endpoint_handler(ctx: SandboxContext) -> Callable[[Request], Awaitable[Response]]:
    async def token(request: Request) -> Response:
        state = ctx.identity.credentials
        supplied = request.headers.get("x-identity-header", "")
        if not hmac.compare_digest(supplied.encode(), state.identity_header.encode()):
            return _failure(401, "The X-IDENTITY-HEADER is missing or wrong.")
        params = request.query_params
        if params.get("api-version") != API_VERSION:
            return _failure(400, f"api-version must be {API_VERSION}.")
        resource = params.get("resource", "")
        if not resource:
            return _failure(400, "The resource parameter is required.")
        client_id = (params.get("client_id") or "").lower()
        identity = state.managed_identities.get(client_id)
        if identity is None:
            return _failure(400, "No Managed Identity found for specified ClientId/ResourceId.")
        if resource.rstrip("/") not in EXCHANGE_AUDIENCES:
            return _failure(
                400, f"The sandbox issues managed identity tokens only for {EXCHANGE_AUDIENCE}."
            )
        lifetime = ctx.settings.access_token_lifetime_seconds
        now = ctx.controls.timestamp()
        claims: dict[str, Any] = {
            "aud": resource.rstrip("/"),
            "iss": v2_issuer(ctx),
            "iat": now - 300,
            "nbf": now - 300,
            "exp": now + lifetime,
            "sub": identity.principal_id,
            "oid": identity.principal_id,
            "azp": identity.client_id,
            "tid": ctx.directory.tenant_id,
            "idtyp": "app",
            "ver": "2.0",
        }
        value = sign_token(ctx, claims)
        ctx.identity.record("access", value, app_id=identity.client_id)
        body = {
            "access_token": value,
            "expires_on": str(now + lifetime),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return token
