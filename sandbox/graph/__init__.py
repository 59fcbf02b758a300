"""The Microsoft Graph mail half of the sandbox (see README.md beside this file)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from sandbox.context import SandboxContext


def routes(ctx: SandboxContext) -> list[BaseRoute]:
    """Routes mounted under `/v1.0`."""
    from sandbox.graph.routes import graph_routes

    return graph_routes(ctx)


def control_routes(ctx: SandboxContext) -> list[BaseRoute]:
    """Routes mounted under `/_sandbox` (mail seeding and inspection for tests)."""
    from sandbox.graph.control import mail_control_routes

    return mail_control_routes(ctx)
