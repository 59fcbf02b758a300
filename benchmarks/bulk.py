"""Bulk mark-read of 500 messages: the `$batch` path (BulkRunner: 20 per batch, 4 batches in
flight) against one PATCH per message (4 in flight, the mailbox limiter's ceiling), with the
sandbox's Graph latency at 50 ms per HTTP request. Reports Graph HTTP requests (from the
sandbox's request log) and wall time, each path on a fresh set of 500 unread messages.

In-process: the services the HTTP handlers call (authorization, token cache, Graph client
policies, audit), without the dev host's HTTP hop. Run with `make bench-write` (or
`python benchmarks/bulk.py`). Targets (docs/testing-and-performance.md): ≥ 10x fewer
requests, ≥ 5x faster.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.servers import local_servers  # noqa: E402
from tests.support.sandbox import SandboxServer  # noqa: E402

ALICE = "alice@contoso.test"
COUNT = int(os.environ.get("BENCH_BULK_COUNT", "500"))
LATENCY_MS = int(os.environ.get("BENCH_GRAPH_LATENCY_MS", "50"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


async def main() -> None:
    with local_servers("bench-bulk-") as servers:
        os.environ.update(servers.settings)
        await run(servers.sandbox)


async def connect(sandbox: SandboxServer) -> tuple[Any, str, Any]:
    from shared.auth.caller import Caller
    from shared.container import get_container

    container = get_container()
    start = await container.connections.start_login(ALICE, None, "bench")
    async with httpx.AsyncClient(verify=sandbox.ssl_context()) as client:
        redirect = await client.get(start.auth_uri)
    params = dict(parse_qsl(urlsplit(redirect.headers["location"]).query))
    finished = await container.connections.finish_login(params, start.browser_secret, "b")
    connection = finished.connection
    caller = Caller(
        "user",
        connection.owner_tid,
        connection.owner_oid,
        "bench",
        frozenset({"access_as_user"}),
        frozenset(),
    )
    return container, connection.id, caller


def seed(sandbox: SandboxServer) -> list[str]:
    with sandbox.client() as control:
        response = control.post(
            f"/_sandbox/users/{ALICE}/messages", json={"count": COUNT, "folder": "archive"}
        )
        response.raise_for_status()
        ids: list[str] = response.json()["ids"]
        control.delete("/_sandbox/requests").raise_for_status()
    return ids


def graph_requests(sandbox: SandboxServer) -> int:
    with sandbox.client() as control:
        logged = control.get("/_sandbox/requests").json()
    return sum(1 for r in logged if r["path"].startswith("/v1.0/"))


def all_read(sandbox: SandboxServer, ids: list[str]) -> bool:
    with sandbox.client() as control:
        view = control.get(f"/_sandbox/users/{ALICE}/mailbox").json()
    read = {m["id"] for m in view["messages"] if m["isRead"]}
    return set(ids) <= read


async def run(sandbox: SandboxServer) -> None:
    from shared.connections.mailbox import ConnectedMailbox
    from shared.mail.bulk import BulkRunner
    from shared.mail.compose import BulkBody, MessagePatchBody

    container, connection_id, caller = await connect(sandbox)
    writer = container.mail_writer

    async def opened() -> ConnectedMailbox:
        return await container.mailboxes.open(
            caller, connection_id, write=True, correlation_id="bench-bulk"
        )

    async def batched(ids: list[str]) -> None:
        result = await BulkRunner(writer).run(await opened(), BulkBody(ids=ids, action="markRead"))
        assert result["failed"] == 0, result

    async def one_by_one(ids: list[str]) -> None:
        gate = asyncio.Semaphore(4)
        patch = MessagePatchBody(isRead=True)
        # One request per message, as a caller doing it one by one would make.

        async def one(message_id: str) -> None:
            async with gate:
                await writer.update_message(await opened(), message_id, patch)

        await asyncio.gather(*(one(i) for i in ids))

    # Warm up (token cache, connections) without latency.
    await batched(seed(sandbox)[:20])
    with sandbox.client() as control:
        control.post("/_sandbox/latency", json={"graphMs": LATENCY_MS}).raise_for_status()
    figures: dict[str, list[tuple[float, int]]] = {"$batch": [], "one by one": []}
    for _ in range(RUNS):
        for name, path in (("$batch", batched), ("one by one", one_by_one)):
            ids = seed(sandbox)
            started = time.perf_counter()
            await path(ids)
            elapsed = time.perf_counter() - started
            assert all_read(sandbox, ids)
            figures[name].append((elapsed, graph_requests(sandbox)))
    await container.aclose()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"mark {COUNT} read, Graph latency {LATENCY_MS} ms, {RUNS} runs, medians:")
    medians = {}
    for name, samples in figures.items():
        wall = statistics.median(s[0] for s in samples)
        requests = int(statistics.median(s[1] for s in samples))
        medians[name] = (wall, requests)
        print(f"  {name:<11} {wall:7.2f} s   {requests:4d} Graph requests")
    (batch_wall, batch_requests), (single_wall, single_requests) = (
        medians["$batch"],
        medians["one by one"],
    )
    print(
        f"  ratio: {single_requests / batch_requests:.1f}x fewer requests, "
        f"{single_wall / batch_wall:.1f}x faster"
    )


if __name__ == "__main__":
    asyncio.run(main())
