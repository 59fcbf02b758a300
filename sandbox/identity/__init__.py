"""The Entra ID half of the sandbox: discovery, JWKS, authorize, token and logout endpoints
under `/{tenant}/` (see sandbox/README.md for what is faithful and what is simplified).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

if TYPE_CHECKING:
    from sandbox.context import SandboxContext


def routes(ctx: SandboxContext) -> list[BaseRoute]:
    from sandbox.identity.authorize import authorize_handler
    from sandbox.identity.discovery import routes_handlers
    from sandbox.identity.managed_identity import PATH, identity_endpoint_handler
    from sandbox.identity.token_endpoint import token_handler

    handlers = routes_handlers(ctx)

    async def logout(request: Request) -> Response:
        """Front-channel sign-out: the sandbox keeps no browser session, so it only sends
        the user back to a registered `post_logout_redirect_uri`.
        """
        target = request.query_params.get("post_logout_redirect_uri")
        if target and target in ctx.directory.app.redirect_uris:
            return RedirectResponse(target, status_code=302)
        return HTMLResponse("<!doctype html><title>Signed out</title><p>You signed out.</p>")

    return [
        Route("/error", handlers["error_lookup"], methods=["GET"]),
        Route(PATH, identity_endpoint_handler(ctx), methods=["GET"]),
        Route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            handlers["configuration"],
            methods=["GET"],
        ),
        Route("/{tenant}/discovery/v2.0/keys", handlers["keys"], methods=["GET"]),
        Route("/{tenant}/oauth2/v2.0/authorize", authorize_handler(ctx), methods=["GET", "POST"]),
        Route("/{tenant}/oauth2/v2.0/token", token_handler(ctx), methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/logout", logout, methods=["GET", "POST"]),
    ]
