"""Request overhead: four operations through the app against the bare httpx call that does
the same thing in Graph with a token of the same kind, on the same sandbox, interleaved,
medians.

| operation | the app (in process) | the bare equivalent |
|---|---|---|
| list 50 | `GET messages?top=50` | `GET /me/mailFolders/inbox/messages?$top=50` + JSON parse |
| get one | `GET messages/{id}` | `GET /me/messages/{id}` + JSON parse |
| send (small) | `POST messages/send` (one recipient, a short text) | `POST /me/sendMail` |
| bulk 20 | `POST messages/bulk` (markRead, 20 ids) | one `POST /$batch` of 20 PATCHes + parse |

"In process" calls the function's handler with a real `func.HttpRequest`: caller-token
validation, authorization, the per-worker connection and access-token caches, the Graph
client's policies, the field allow-list, audit and JSON out — what the Functions host runs.
For list 50, "over HTTP" adds the dev host's local HTTP server (h11), which Azure's host
replaces. CPU per operation is `time.process_time()` around each call, in this process (the
app's work plus its HTTP client; the sandbox runs in its own process).

Run with `make bench`, or `python benchmarks/request_overhead.py` (BENCH_RUNS rounds, 40 by
default). `--profile OP` (list, get, send, bulk) profiles the in-process path instead:
the time per stage over BENCH_RUNS calls, the JSON work on a real Graph page, then cProfile's
top functions. Targets (issue #22): every operation ≤ 1.10 times bare and ≤ 0.6 ms added at the
median.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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
BOB = "bob@contoso.test"
IMMUTABLE = 'IdType="ImmutableId"'
TARGET_RATIO = 1.10
TARGET_ADDED_MS = 0.6

Call = Callable[[], Awaitable[None]]


@dataclass
class Operation:
    name: str
    bare: Call
    app: Call
    over_http: Call | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def steps(self) -> dict[str, Call]:
        steps = {"bare": self.bare, "in-process": self.app}
        if self.over_http is not None:
            steps["over HTTP"] = self.over_http
        return steps


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("list", "get", "send", "bulk"))
    args = parser.parse_args()
    with local_servers("bench-overhead-") as servers:
        os.environ.update(servers.settings)
        with servers.sandbox.client() as control:
            control.post(f"/_sandbox/users/{ALICE}/messages", json={"count": 50}).raise_for_status()
        await run(servers.sandbox, servers.settings, servers.work, args.profile)


Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def _handlers(*names: str) -> dict[str, Handler]:
    import function_app

    # get_functions() validates the app and may be called once per process.
    found = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
    return {name: found[name] for name in names}


async def run(sandbox, settings, work: Path, profile: str | None) -> None:  # type: ignore[no-untyped-def]
    from shared.container import get_container

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
    graph = sandbox.graph_url
    bare_client = httpx.AsyncClient(verify=sandbox.ssl_context(), timeout=30)
    bare_headers = {"Authorization": f"Bearer {graph_token}", "Prefer": IMMUTABLE}
    listing = await bare_client.get(
        f"{graph}/me/mailFolders/inbox/messages", params={"$top": "50"}, headers=bare_headers
    )
    ids = [m["id"] for m in listing.json()["value"]]
    one = ids[0]
    base = f"http://127.0.0.1/api/connections/{connection.id}"
    auth = {"authorization": f"Bearer {caller_token}"}
    json_headers = {**auth, "content-type": "application/json"}
    route = {"connectionId": connection.id}

    def request(
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        **more: str,
    ) -> func.HttpRequest:
        return func.HttpRequest(
            method,
            f"{base}{path}",
            headers=json_headers if body is not None else auth,
            params=params or {},
            route_params={**route, **more},
            body=json.dumps(body).encode() if body is not None else b"",
        )

    send_body = {
        "subject": "Overhead",
        "body": {"contentType": "text", "content": "A short note."},
        "toRecipients": [{"emailAddress": {"address": BOB}}],
        "saveToSentItems": False,
    }
    graph_send = {
        "message": {
            "subject": "Overhead",
            "body": {"contentType": "text", "content": "A short note."},
            "toRecipients": [{"emailAddress": {"address": BOB}}],
        },
        "saveToSentItems": False,
    }
    bulk_ids = ids[:20]
    batch = {
        "requests": [
            {
                "id": str(i),
                "method": "PATCH",
                "url": f"/me/messages/{mid}",
                "headers": {"Prefer": IMMUTABLE, "Content-Type": "application/json"},
                "body": {"isRead": True},
            }
            for i, mid in enumerate(bulk_ids)
        ]
    }

    handlers = _handlers("messages_list", "messages_get", "messages_send", "messages_bulk")
    requests = {
        "list": request("GET", "/messages", params={"top": "50"}),
        "get": request("GET", f"/messages/{one}", messageId=one),
        "send": request("POST", "/messages/send", body=send_body),
        "bulk": request("POST", "/messages/bulk", body={"ids": bulk_ids, "action": "markRead"}),
    }

    def app_call(handler_name: str, key: str, status: int) -> Call:
        handler = handlers[handler_name]
        req = requests[key]

        async def call() -> None:
            response = await handler(req)
            assert response.status_code == status, response.get_body()[:300]
            if key == "bulk":  # every item done, not just the call
                assert json.loads(response.get_body())["succeeded"] == 20, response.get_body()

        return call

    async def bare_list() -> None:
        response = await bare_client.get(
            f"{graph}/me/mailFolders/inbox/messages", params={"$top": "50"}, headers=bare_headers
        )
        assert response.status_code == 200 and len(response.json()["value"]) == 50

    async def bare_get() -> None:
        response = await bare_client.get(f"{graph}/me/messages/{one}", headers=bare_headers)
        assert response.status_code == 200 and response.json()["id"] == one

    async def bare_send() -> None:
        response = await bare_client.post(
            f"{graph}/me/sendMail", json=graph_send, headers=bare_headers
        )
        assert response.status_code == 202

    async def bare_bulk() -> None:
        response = await bare_client.post(f"{graph}/$batch", json=batch, headers=bare_headers)
        assert response.status_code == 200
        assert [r["status"] for r in response.json()["responses"]] == [200] * 20

    operations = [
        Operation("list 50", bare_list, app_call("messages_list", "list", 200)),
        Operation("get one", bare_get, app_call("messages_get", "get", 200)),
        Operation("send (small)", bare_send, app_call("messages_send", "send", 202)),
        Operation("bulk 20", bare_bulk, app_call("messages_bulk", "bulk", 200)),
    ]
    try:
        if profile:
            op = operations[["list", "get", "send", "bulk"].index(profile)]
            await _profile(op, container, listing.content)
            return
        app = start_app(settings, work, free_port())
        http_client = httpx.AsyncClient(base_url=app.url, timeout=30)

        async def over_http() -> None:
            response = await http_client.get(
                f"/api/connections/{connection.id}/messages", params={"top": "50"}, headers=auth
            )
            assert response.status_code == 200 and len(response.json()["value"]) == 50

        operations[0].over_http = over_http
        try:
            await _measure(operations)
        finally:
            app.stop()
            await http_client.aclose()
    finally:
        await bare_client.aclose()
        await container.aclose()
    _report(operations)


async def _measure(operations: list[Operation]) -> None:
    for op in operations:  # warm up: connections, token caches, JWKS, imports
        for step in op.steps().values():
            await step()
            await step()
    for i in range(RUNS):
        for op in operations:
            steps = list(op.steps().items())
            if i % 2:  # alternate which side goes first, so neither always follows the other
                steps.reverse()
            for name, step in steps:
                cpu = time.process_time()
                started = time.perf_counter()
                await step()
                op.samples.setdefault(name, []).append((time.perf_counter() - started) * 1000)
                op.cpu.setdefault(name, []).append((time.process_time() - cpu) * 1000)
        if (i + 1) % 10 == 0:
            print(f"  {i + 1}/{RUNS} rounds", flush=True)


def _report(operations: list[Operation]) -> None:
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{RUNS} interleaved rounds, medians (CPU: this process, per call):")
    met = True
    for op in operations:
        base = statistics.median(op.samples["bare"])
        for name, values in op.samples.items():
            median = statistics.median(values)
            cpu = statistics.median(op.cpu[name])
            print(
                f"  {op.name:<13} {name:<11} {median:7.2f} ms   ratio {median / base:4.2f}x"
                f"   added {median - base:+.2f} ms   CPU {cpu:5.2f} ms"
            )
        app = statistics.median(op.samples["in-process"])
        met = met and app / base <= TARGET_RATIO and app - base <= TARGET_ADDED_MS
    # The peer benchmark's sequence (benchmarks/peers.py): list 50, get 10, send 5, mark 20
    # read in one bulk call. CPU of this process: the app's work plus its HTTP client's.
    counts = {"list 50": 1, "get one": 10, "send (small)": 5, "bulk 20": 1}
    for side in ("bare", "in-process"):
        total = sum(statistics.median(op.cpu[side]) * counts[op.name] for op in operations)
        print(f"  peer sequence (list 50, 10 get, 5 send, bulk 20), CPU {side}: {total:.1f} ms")
    print(f"targets (in-process ≤ {TARGET_RATIO}x and ≤ {TARGET_ADDED_MS} ms added): ", end="")
    print("met" if met else "NOT met")


async def _profile(op: Operation, container: Any, graph_page: bytes) -> None:
    """Where the in-process time goes: stages timed by wrapping the container's parts, the
    JSON work on a real Graph page, then cProfile's view of the same calls."""
    stages: dict[str, list[float]] = {}

    def timed(owner: Any, attribute: str, stage: str) -> None:
        inner = getattr(owner, attribute)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                stages.setdefault(stage, []).append((time.perf_counter() - started) * 1000)

        setattr(owner, attribute, wrapper)

    def timed_sync(owner: Any, attribute: str, stage: str) -> None:
        inner = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                stages.setdefault(stage, []).append((time.perf_counter() - started) * 1000)

        setattr(owner, attribute, wrapper)

    for _ in range(3):
        await op.app()
    timed(container.callers, "authenticate", "caller token")
    timed(container.mailboxes, "open", "open mailbox (authorize, connection)")
    timed(container.tokens, "access_token", "access token")
    timed(container.graph, "send", "Graph call (network + sandbox)")
    timed_sync(container.audit, "emit", "audit")
    totals: list[float] = []
    bare: list[float] = []
    cpu = {"bare": 0.0, "in-process": 0.0}
    for _ in range(RUNS):  # interleaved with the bare call, to compare the Graph call with it
        started, cpu_started = time.perf_counter(), time.process_time()
        await op.app()
        totals.append((time.perf_counter() - started) * 1000)
        cpu["in-process"] += time.process_time() - cpu_started
        started, cpu_started = time.perf_counter(), time.process_time()
        await op.bare()
        bare.append((time.perf_counter() - started) * 1000)
        cpu["bare"] += time.process_time() - cpu_started
    total = statistics.median(totals)
    print(f"{op.name}: in-process, {RUNS} calls, per call (median; sum of means for the rest):")
    accounted = 0.0
    for stage, values in stages.items():
        per_call = sum(values) / RUNS
        accounted += per_call
        print(f"  {stage:<38} {statistics.median(values):6.3f} ms  ({len(values) / RUNS:g}/call)")
    mean_total = sum(totals) / RUNS
    print(f"  {'everything else (handler, JSON, ...)':<38} {mean_total - accounted:6.3f} ms (mean)")
    print(f"  {'total':<38} {total:6.3f} ms median, {mean_total:.3f} ms mean")
    print(f"  {'the bare call, interleaved':<38} {statistics.median(bare):6.3f} ms median")
    print(
        f"  CPU per call: in-process {cpu['in-process'] * 1000 / RUNS:.3f} ms, "
        f"bare {cpu['bare'] * 1000 / RUNS:.3f} ms"
    )

    if op.name == "list 50":
        if os.environ.get("BENCH_PAGE_OUT"):  # the page itself, for trying codecs on it
            Path(os.environ["BENCH_PAGE_OUT"]).write_bytes(graph_page)  # noqa: ASYNC240
        _json_costs(graph_page)

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(RUNS):
        await op.app()
    profiler.disable()
    if os.environ.get("BENCH_PROFILE_OUT"):  # for pstats' callers view, snakeviz, ...
        profiler.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
    print(out.getvalue())


def _json_costs(page: bytes) -> None:
    """The JSON round trip the allow-list needs, on the real Graph page (73 KB, 50 items)."""
    from shared.mail.models import MESSAGE_FIELDS, only

    def per_call(fn: Callable[[], object], n: int = 200) -> float:
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) * 1000 / n

    body = json.loads(page)
    items = [only(item, MESSAGE_FIELDS) for item in body["value"]]
    out = {"value": items, "nextCursor": None, "nextLink": None}
    print(f"  JSON on a real page ({len(page) / 1024:.0f} KB):")
    print(f"    json.loads          {per_call(lambda: json.loads(page)):6.3f} ms")
    print(
        f"    allow-list (only)   "
        f"{per_call(lambda: [only(i, MESSAGE_FIELDS) for i in body['value']]):6.3f} ms"
    )
    print(f"    json.dumps          {per_call(lambda: json.dumps(out)):6.3f} ms")
    try:
        from shared.jsonwire import dumps, loads  # after the change: the app's own codec
    except ImportError:
        return
    print(f"    app loads           {per_call(lambda: loads(page)):6.3f} ms")
    print(f"    app dumps           {per_call(lambda: dumps(out)):6.3f} ms")


if __name__ == "__main__":
    asyncio.run(main())
