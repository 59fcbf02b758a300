"""`POST /_sandbox/users/{upn}/delta/expire`: forget every delta sync state of a mailbox, as
Exchange does when a state ages out, so that a test can drive a client's full resync. The
next delta call with an older `$deltatoken` or `$skiptoken` answers `410 syncStateNotFound`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from sandbox.context import SandboxContext


def delta_control_routes(ctx: SandboxContext) -> list[BaseRoute]:
    async def expire(request: Request) -> JSONResponse:
        upn = request.path_params["upn"]
        user = ctx.directory.find(upn)
        if user is None:
            return JSONResponse(
                {"error": "user_not_found", "message": f"No sandbox user '{upn}'."},
                status_code=404,
            )
        mailbox = ctx.mail.ensure_mailbox(user)
        mailbox.delta_epoch += 1
        return JSONResponse({"expired": True, "epoch": mailbox.delta_epoch})

    return [Route("/users/{upn}/delta/expire", expire, methods=["POST"])]
