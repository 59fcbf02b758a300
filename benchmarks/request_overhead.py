"""Request overhead: list 50 messages through the app vs a bare httpx GET of the same Graph
URL with a token of the same kind, against the same sandbox, interleaved, medians.

Two app paths are measured:
- in-process: the function's handler called with a real func.HttpRequest (caller-token
  validation, authorization, connection read + decrypt on the first call, token cache,
  Graph call, allow-list of fields, JSON out) — what the Functions host runs;
- over HTTP through the dev host (adds a local HTTP server hop that Azure's host replaces).

Run with `make bench` (or `python benchmarks/request_overhead.py`). Target
(docs/testing-and-performance.md): app ≤ 1.3 times bare and ≤ 2 ms added at the median.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.servers import local_servers  # noqa: E402
from tests.sandbox.graph.support import user_token  # noqa: E402
from tests.support.app import start_app  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "40"))
ALICE = "alice@contoso.test"


async def main() -> None:
    with local_servers("bench-overhead-") as servers:
        os.environ.update(servers.settings)
        with servers.sandbox.client() as control:
            control.post(f"/_sandbox/users/{ALICE}/messages", json={"count": 50}).raise_for_status()
        await run(servers.sandbox, servers.settings, servers.work, servers.app_port)


async def run(sandbox, settings, work: Path, app_port: int) -> None:  # type: ignore[no-untyped-def]
    import function_app
    from shared.container import get_container

    handler = next(
        f.get_user_function()
        for f in function_app.app.get_functions()
        if f.get_function_name() == "messages_list"
    )
    container = get_container()
    start = await container.connections.start_login(ALICE, None, "bench")
    async with httpx.AsyncClient(verify=sandbox.ssl_context()) as client:
        redirect = await client.get(start.auth_uri)
    params = dict(parse_qsl(urlsplit(redirect.headers["location"]).query))
    connection = (
        await container.connections.finish_login(params, start.browser_secret, "b")
    ).connection
    caller_token = sandbox.user_token(ALICE)
    graph_token = user_token(sandbox, ALICE)

    request = func.HttpRequest(
        "GET",
        f"http://127.0.0.1/api/connections/{connection.id}/messages?top=50",
        headers={"authorization": f"Bearer {caller_token}"},
        params={"top": "50"},
        route_params={"connectionId": connection.id},
        body=b"",
    )
    bare_url = f"{sandbox.graph_url}/me/mailFolders/inbox/messages"
    bare_headers = {"Authorization": f"Bearer {graph_token}", "Prefer": 'IdType="ImmutableId"'}
    app = start_app(settings, work, free_port())
    bare_client = httpx.AsyncClient(verify=sandbox.ssl_context(), timeout=30)
    http_client = httpx.AsyncClient(base_url=app.url, timeout=30)

    async def bare() -> None:
        response = await bare_client.get(bare_url, params={"$top": "50"}, headers=bare_headers)
        assert response.status_code == 200 and len(response.json()["value"]) == 50

    async def in_process() -> None:
        response = await handler(request)
        assert response.status_code == 200, response.get_body()[:300]

    async def over_http() -> None:
        response = await http_client.get(
            f"/api/connections/{connection.id}/messages",
            params={"top": "50"},
            headers={"authorization": f"Bearer {caller_token}"},
        )
        assert response.status_code == 200 and len(response.json()["value"]) == 50

    samples: dict[str, list[float]] = {"bare": [], "in-process": [], "over HTTP": []}
    steps = {"bare": bare, "in-process": in_process, "over HTTP": over_http}
    for step in steps.values():  # warm up: connections, token caches, JWKS, imports
        await step()
        await step()
    for i in range(RUNS):
        for name, step in steps.items():
            started = time.perf_counter()
            await step()
            samples[name].append((time.perf_counter() - started) * 1000)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{RUNS} rounds", flush=True)
    app.stop()
    await bare_client.aclose()
    await http_client.aclose()
    await container.aclose()

    base = statistics.median(samples["bare"])
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"list 50 messages, {RUNS} interleaved rounds, medians:")
    for name, values in samples.items():
        median = statistics.median(values)
        print(
            f"  {name:<11} {median:7.2f} ms   ratio {median / base:4.2f}x"
            f"   added {median - base:+.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
