"""Export throughput: a full MIME export of 5,000 messages of ~20 KB in one folder of one
mailbox with the sandbox's Graph latency at 30 ms, then an incremental export after 50 new
messages (asserted: only those 50 are fetched). Reports messages/s, MB/s and Graph
requests/s against the ceiling the per-mailbox limit of 4 requests in flight allows
(4 / 30 ms ≈ 133 requests/s), the worker's peak RSS (VmHWM), CPU-seconds of the worker, the
sandbox and Azurite, the Graph and storage requests each export made, and the time spent
inside page jobs' item stage against the time between pages.

In-process: this process is the worker. It starts the export through ExportService (as the
HTTP route does), then drains the exports queue in Azurite and hands each page job to
`ExportService.work`, as the `exports_page` trigger does; items go to Azurite's Blob
Storage. After the full export, the same export is done with msgraph-sdk-python from
`.venv/bench` (benchmarks/export_peer.py), sequentially and with 4 `$value` in flight.

Run with `make bench-export` (or `python benchmarks/export.py`). Knobs (environment):
BENCH_EXPORT_COUNT (5000), BENCH_EXPORT_ADDED (50), BENCH_GRAPH_LATENCY_MS (30),
BENCH_EXPORT_PAGE_SIZE (the app's default), BENCH_SANDBOX_MIME (kept | per-request),
BENCH_EXPORT_PEERS (1 | 0), BENCH_EXPORT_PROFILE (a path: cProfile of the worker during the
full export).
"""

from __future__ import annotations

import asyncio
import base64
import cProfile
import json
import os
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bulk import connect  # noqa: E402
from benchmarks.servers import local_servers  # noqa: E402
from tests.support.azurite import AzuriteServer  # noqa: E402
from tests.support.sandbox import SandboxServer  # noqa: E402

if TYPE_CHECKING:
    from shared.export.service import ExportService

ALICE = "alice@contoso.test"
COUNT = int(os.environ.get("BENCH_EXPORT_COUNT", "5000"))
ADDED = int(os.environ.get("BENCH_EXPORT_ADDED", "50"))
LATENCY_MS = int(os.environ.get("BENCH_GRAPH_LATENCY_MS", "30"))
BODY_BYTES = int(os.environ.get("BENCH_EXPORT_BODY_BYTES", "20000"))
# A path: write a cProfile of the worker during the full export there (pstats format).
PROFILE = os.environ.get("BENCH_EXPORT_PROFILE")
# "kept": the sandbox renders each message's MIME when it is seeded and serves those bytes
# (as Exchange serves a stored message); "per-request": it renders on every `$value` with
# the email package (~2 ms each on this machine, on the cores the worker needs).
SANDBOX_MIME = os.environ.get("BENCH_SANDBOX_MIME", "kept")
# The msgraph-sdk opponent (benchmarks/export_peer.py in .venv/bench); "0" skips it.
PEERS = os.environ.get("BENCH_EXPORT_PEERS", "1") != "0"
BENCH_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"
QUEUE = "bench-exports"


def tree_cpu(pid: int) -> float:
    """User + system CPU-seconds of a process and its children (Azurite runs under node)."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        with_children = proc.cpu_times()
        total += with_children.user + with_children.system
    return total


@dataclass(frozen=True)
class CpuSplit:
    worker: float
    sandbox: float
    azurite: float

    def __sub__(self, other: CpuSplit) -> CpuSplit:
        return CpuSplit(
            self.worker - other.worker, self.sandbox - other.sandbox, self.azurite - other.azurite
        )


class Meters:
    """CPU-seconds per process, and the worker's storage requests by service (counted at
    the Azure SDK's transport, so retries count too)."""

    def __init__(self, sandbox_pid: int, azurite_pid: int, ports: dict[int, str]) -> None:
        self._pids = (sandbox_pid, azurite_pid)
        self._ports = ports
        self.storage: Counter[str] = Counter()
        from azure.core.pipeline.transport import AioHttpTransport

        original = AioHttpTransport.send
        meters = self

        async def counted(transport: Any, request: Any, **kwargs: Any) -> Any:
            port = urlsplit(request.url).port or 0
            meters.storage[f"{meters._ports.get(port, str(port))} {request.method}"] += 1
            return await original(transport, request, **kwargs)

        AioHttpTransport.send = counted  # type: ignore[method-assign]

    def cpu(self) -> CpuSplit:
        me = psutil.Process().cpu_times()
        return CpuSplit(me.user + me.system, tree_cpu(self._pids[0]), tree_cpu(self._pids[1]))

    def take_storage(self) -> Counter[str]:
        out, self.storage = self.storage, Counter()
        return out


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed(sandbox: SandboxServer, count: int) -> None:
    # Plain text of BODY_BYTES: with the headers the MIME is ~20 KB per message.
    line = "The quick brown fox jumps over the lazy dog. " * 2 + "\n"
    text = (line * (BODY_BYTES // len(line) + 1))[:BODY_BYTES]
    with httpx.Client(base_url=sandbox.url, verify=sandbox.ssl_context(), timeout=600) as control:
        done = 0
        while done < count:
            n = min(1000, count - done)
            control.post(
                f"/_sandbox/users/{ALICE}/messages",
                json={
                    "count": n,
                    "folder": "archive",
                    "template": {"body": {"contentType": "text", "content": text}},
                    **({"renderMime": True} if SANDBOX_MIME == "kept" else {}),
                },
            ).raise_for_status()
            done += n


def graph_log(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """The Graph requests the sandbox received since the last call (and forget them)."""
    with sandbox.client() as control:
        logged = control.get("/_sandbox/requests").json()
        control.delete("/_sandbox/requests").raise_for_status()
    return [r for r in logged if r["path"].startswith("/v1.0/")]


def time_pages(service: ExportService) -> list[float]:
    """Add up the wall time spent in the page jobs' item stage (`_store_page`)."""
    total = [0.0]
    inner = service._store_page

    async def timed(*args: Any) -> dict[str, int]:
        started = time.perf_counter()
        try:
            return await inner(*args)
        finally:
            total[0] += time.perf_counter() - started

    service._store_page = timed  # type: ignore[method-assign]
    return total


def graph_kinds(logged: list[dict[str, Any]]) -> Counter[str]:
    return Counter(
        "$value" if r["path"].endswith("/$value") else "delta" if "/delta" in r["path"] else "other"
        for r in logged
    )


async def drain(service: ExportService, connection_string: str) -> None:
    """Receive page jobs and run them as the queue trigger does, until the queue stays empty.
    Pages of one folder follow each other (each queues the next), so one at a time here is
    what one folder gets on any number of workers."""
    from azure.storage.queue.aio import QueueClient

    async with QueueClient.from_connection_string(connection_string, QUEUE) as queue:
        idle = 0
        while idle < 3:
            got = False
            async for message in queue.receive_messages(
                messages_per_page=16, visibility_timeout=300
            ):
                got = True
                await service.work(base64.b64decode(message.content).decode())
                await queue.delete_message(message)
            idle = 0 if got else idle + 1
            if not got:
                await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Result:
    name: str
    wall: float
    counts: dict[str, int]
    graph: Counter[str]
    storage: Counter[str]
    cpu: CpuSplit
    in_pages: float  # seconds inside page jobs' item fetching and storing

    def report(self, ceiling: float) -> None:
        n, mb, requests = self.counts["messages"], self.counts["bytes"] / 1e6, self.graph.total()
        print(
            f"  {self.name:<18} {n:5d} messages {mb:7.1f} MB in {self.wall:6.2f} s: "
            f"{n / self.wall:6.1f} msg/s, {mb / self.wall:5.2f} MB/s, "
            f"{requests} Graph requests = {requests / self.wall:6.1f} req/s "
            f"({requests / self.wall / ceiling:.0%} of the ceiling)"
        )
        per = max(n, 1)
        print(
            f"    CPU-s: worker {self.cpu.worker:.2f}, sandbox {self.cpu.sandbox:.2f}, "
            f"Azurite {self.cpu.azurite:.2f}; per message (ms): "
            f"worker {self.cpu.worker / per * 1e3:.2f}, sandbox {self.cpu.sandbox / per * 1e3:.2f},"
            f" Azurite {self.cpu.azurite / per * 1e3:.2f}"
        )
        print(
            f"    wall: {self.in_pages:.2f} s fetching and storing items, "
            f"{self.wall - self.in_pages:.2f} s between them (delta pages, checkpoints, queue)"
        )
        print(f"    Graph requests: {dict(self.graph)}")
        print(f"    storage requests: {dict(sorted(self.storage.items()))}")


def run_peer(
    variant: str, sandbox: SandboxServer, meters: Meters, work: Path
) -> dict[str, Any] | None:
    """The same export with msgraph-sdk in a `.venv/bench` child process."""
    if not PEERS:
        return None
    if not BENCH_PYTHON.exists():
        print("  msgraph-sdk: skipped (no .venv/bench: run `make bench-peers` once)")
        return None
    import shutil
    import subprocess

    from tests.sandbox.graph.support import user_token

    env_path, out = work / "peer-env.json", work / f"peer-{variant}"
    out.mkdir()
    env_path.write_text(
        json.dumps(
            {
                "graph_token": user_token(sandbox, ALICE),
                "graph_url": sandbox.graph_url,
                "ca_bundle": str(sandbox.ca_bundle_path),
                "upn": ALICE,
                "folder": "archive",
                "page_size": int(os.environ["EXPORT_PAGE_SIZE"]),
            }
        )
    )
    graph_log(sandbox)
    cpu = meters.cpu()
    done = subprocess.run(
        [str(BENCH_PYTHON), str(ROOT / "benchmarks" / "export_peer.py"), variant, env_path, out],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    sandbox_cpu = (meters.cpu() - cpu).sandbox
    if done.returncode != 0:
        raise SystemExit(f"msgraph-sdk ({variant}) failed:\n{done.stdout}\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    figures["graph"] = graph_kinds(graph_log(sandbox))
    figures["sandbox_cpu_s"] = sandbox_cpu
    stored = sorted(out.iterdir())
    assert len(stored) == figures["messages"] == COUNT, (len(stored), figures["messages"])
    shutil.rmtree(out)
    return figures


def report_peer(variant: str, figures: dict[str, Any], app: Result, ceiling: float) -> None:
    n, wall, requests = figures["messages"], figures["wall_s"], figures["graph"].total()
    mb = figures["bytes"] / 1e6
    app_rate = app.counts["messages"] / app.wall
    print(
        f"  msgraph-sdk {variant:<11} {n:5d} messages {mb:7.1f} MB in {wall:6.2f} s: "
        f"{n / wall:6.1f} msg/s, {mb / wall:5.2f} MB/s, {requests} Graph requests = "
        f"{requests / wall:6.1f} req/s ({requests / wall / ceiling:.0%} of the ceiling); "
        f"app/sdk {app_rate / (n / wall):.2f}x"
    )
    print(
        f"    CPU-s: client {figures['cpu_s']:.2f} ({figures['cpu_s'] / n * 1e3:.2f} ms/message), "
        f"sandbox {figures['sandbox_cpu_s']:.2f}; import {figures['import_s']:.2f} s; "
        f"VmHWM {figures['vm_hwm_mb']:.1f} MB"
    )


async def run(sandbox: SandboxServer, azurite: AzuriteServer, work: Path) -> None:
    from shared.export.service import ExportRequest

    meters = Meters(
        sandbox.process.popen.pid,
        azurite.process.popen.pid,
        {azurite.blob_port: "blob", azurite.queue_port: "queue", azurite.table_port: "table"},
    )
    container, connection_id, caller = await connect(sandbox)
    service = container.exports
    in_pages = time_pages(service)
    seed(sandbox, COUNT)
    with sandbox.client() as control:
        control.post("/_sandbox/latency", json={"graphMs": LATENCY_MS}).raise_for_status()
    graph_log(sandbox)

    hwm = [0.0]

    async def export(name: str, since: str | None) -> tuple[Result, str]:
        meters.take_storage()
        in_pages[0] = 0.0
        cpu = meters.cpu()
        started = time.perf_counter()
        job = await service.start(
            caller,
            connection_id,
            ExportRequest(folders=["archive"], format="mime", since=since, received_after=None),
            None,
            "bench-export",
        )
        await drain(service, azurite.connection_string)
        elapsed = time.perf_counter() - started
        # Before the benchmark reads the sandbox's request log (thousands of records) into
        # this process: the figure is the worker's, not the harness's.
        hwm[0] = vm_hwm_mb()
        used = meters.cpu() - cpu
        status = await service.get(caller, connection_id, job.id, None, "bench")
        assert status["status"] == "completed", status
        logged = graph_log(sandbox)
        result = Result(
            name,
            elapsed,
            dict(status["counts"]),
            graph_kinds(logged),
            meters.take_storage(),
            used,
            in_pages[0],
        )
        return result, job.id

    profile = cProfile.Profile() if PROFILE else None
    if profile:
        profile.enable()
    full, full_id = await export("full", None)
    if profile:
        profile.disable()
        profile.dump_stats(PROFILE)
    hwm_full = hwm[0]
    ceiling = 4 / (max(LATENCY_MS, 1) / 1000)  # at 0 ms the figure is CPU-bound anyway
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load average: {os.getloadavg()}")
    print(
        f"Graph latency {LATENCY_MS} ms; ceiling at 4 in flight: {ceiling:.0f} requests/s; "
        f"page size {os.environ['EXPORT_PAGE_SIZE']}; sandbox MIME {SANDBOX_MIME}"
    )
    full.report(ceiling)
    print(f"  worker peak RSS (VmHWM): {hwm_full:.1f} MB after the full export", flush=True)
    peers = {v: run_peer(v, sandbox, meters, work) for v in ("sequential", "concurrent")}
    seed(sandbox, ADDED)
    graph_log(sandbox)
    incremental, _ = await export(f"incremental (+{ADDED})", full_id)
    # Only the new messages are fetched: one `$value` each, nothing of the earlier COUNT.
    assert incremental.counts["messages"] == ADDED, incremental.counts
    assert incremental.graph["$value"] == ADDED, incremental.graph
    await container.aclose()

    print(f"load average: {os.getloadavg()}")
    incremental.report(ceiling)
    for variant, figures in peers.items():
        if figures is not None:
            report_peer(variant, figures, full, ceiling)


async def main() -> None:
    # Outlook's budget is 10,000 requests per app and mailbox per 10 minutes; the app's
    # export and the two msgraph-sdk ones (~5,100 requests each) run back to back in one
    # sandbox, so each gets a budget of its own size here. The 4-in-flight limit stays.
    os.environ.setdefault("SANDBOX_THROTTLE_REQUESTS", "100000")
    with local_servers("bench-export-") as servers:
        os.environ.update(servers.settings)
        os.environ["EXPORTS_QUEUE"] = QUEUE
        from shared.config import Settings

        default = str(Settings.model_fields["EXPORT_PAGE_SIZE"].default)
        os.environ["EXPORT_PAGE_SIZE"] = os.environ.get("BENCH_EXPORT_PAGE_SIZE", default)
        await run(servers.sandbox, servers.azurite, servers.work)


if __name__ == "__main__":
    asyncio.run(main())
