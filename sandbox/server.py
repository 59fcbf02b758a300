"""Assembles the sandbox's ASGI app and serves it over HTTPS with its own CA."""

from __future__ import annotations

import logging
import signal
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from sandbox.context import SandboxContext
from sandbox.middleware import SandboxMiddleware
from sandbox.settings import SandboxSettings
from sandbox.tls import create_server_tls

logger = logging.getLogger("sandbox")


def create_app(ctx: SandboxContext) -> Starlette:
    from sandbox import control, graph, identity

    routes = [
        *identity.routes(ctx),
        Mount("/_sandbox", routes=[*control.routes(ctx), *graph.control_routes(ctx)]),
        Mount("/v1.0", routes=graph.routes(ctx)),
    ]
    # One middleware for loopback-only control routes, the request log, latency and faults.
    app = Starlette(routes=routes, middleware=[Middleware(SandboxMiddleware, ctx=ctx)])
    app.state.ctx = ctx
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox %(levelname)s %(message)s")
    settings = SandboxSettings.from_env()
    tls = create_server_tls(settings.state_dir, settings.ca_path, settings.ca_bundle_path)
    ctx = SandboxContext.create(settings)
    app = create_app(ctx)
    print(
        f"sandbox: Entra ID authority {settings.base_url}/{ctx.directory.tenant_id}\n"
        f"sandbox: Graph {settings.base_url}/v1.0\n"
        f"sandbox: CA {tls.ca_path}",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(tls.cert_path),
        ssl_keyfile=str(tls.key_path),
        log_level="warning",
        access_log=False,
        lifespan="off",
        # Clients keep connections alive; a test or demo shutdown must not wait on them.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    server.run()
    sys.exit(0)
