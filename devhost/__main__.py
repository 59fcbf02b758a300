"""Command line: ``python -m devhost [--app module:attr] [--host H] [--port P] [--root DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from devhost.loader import DEFAULT_APP_SPEC, DevHostConfigError, load_app
from devhost.server import DevHost

logger = logging.getLogger(__name__)


def _default_port() -> int:
    value = os.environ.get("DEVHOST_PORT", "7071")
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"DEVHOST_PORT must be a port number, not {value!r}") from None


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Serve a FunctionApp locally the way the Azure Functions host would.",
    )
    parser.add_argument("--app", default=DEFAULT_APP_SPEC, help="module:attribute of the app")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default $DEVHOST_PORT or 7071)"
    )
    parser.add_argument("--root", default=".", help="directory with host.json (default cwd)")
    parser.add_argument("--no-timers", action="store_true", help="do not run timer schedules")
    parser.add_argument("--no-queues", action="store_true", help="do not poll storage queues")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser.parse_args(argv)


async def _serve(host: DevHost) -> None:
    await host.start()
    print(host.banner(), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    waiter = asyncio.create_task(host.wait())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    logger.info("Dev host stopping")
    stopper.cancel()
    await host.stop()
    logger.info("Dev host stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dev host until SIGINT or SIGTERM; return the exit status."""
    arguments = parse_arguments(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx (and httpcore, urllib3) log each outbound request's full URL at INFO/DEBUG: the
    # served app's URLs may carry credentials (pre-authenticated upload URLs, webhook
    # signatures) and personal data (query strings). Apps log their calls their own way.
    for name in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = Path(arguments.root)
    port = arguments.port if arguments.port is not None else _default_port()
    try:
        app = load_app(arguments.app, root)
        host = DevHost(
            app,
            root=root,
            host=arguments.host,
            port=port,
            enable_timers=not arguments.no_timers,
            enable_queues=not arguments.no_queues,
        )
    except DevHostConfigError as error:
        if error.__cause__ is not None and arguments.log_level.upper() == "DEBUG":
            traceback.print_exception(error.__cause__)
        print(f"devhost: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(host))
    except OSError as error:
        print(f"devhost: cannot serve on {arguments.host}:{port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
