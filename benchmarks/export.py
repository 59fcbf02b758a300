"""Export throughput: a full MIME export of 5,000 messages of ~20 KB in one folder of one
mailbox with the sandbox's Graph latency at 30 ms, then an incremental export after 50 new
messages. Reports messages/s, MB/s and Graph requests/s against the ceiling the per-mailbox
limit of 4 requests in flight allows (4 / 30 ms ≈ 133 requests/s), and the worker's peak RSS
(VmHWM).

In-process: this process is the worker. It starts the export through ExportService (as the
HTTP route does), then drains the exports queue in Azurite and hands each page job to
`ExportService.work`, as the `exports_page` trigger does; items go to Azurite's Blob
Storage. Run with `make bench-export` (or `python benchmarks/export.py`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bulk import connect  # noqa: E402
from benchmarks.servers import local_servers  # noqa: E402
from tests.support.sandbox import SandboxServer  # noqa: E402

if TYPE_CHECKING:
    from shared.export.service import ExportService

ALICE = "alice@contoso.test"
COUNT = int(os.environ.get("BENCH_EXPORT_COUNT", "5000"))
ADDED = int(os.environ.get("BENCH_EXPORT_ADDED", "50"))
LATENCY_MS = int(os.environ.get("BENCH_GRAPH_LATENCY_MS", "30"))
BODY_BYTES = int(os.environ.get("BENCH_EXPORT_BODY_BYTES", "20000"))
QUEUE = "bench-exports"


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
                },
            ).raise_for_status()
            done += n


def graph_requests(sandbox: SandboxServer) -> int:
    with sandbox.client() as control:
        logged = control.get("/_sandbox/requests").json()
        control.delete("/_sandbox/requests").raise_for_status()
    return sum(1 for r in logged if r["path"].startswith("/v1.0/"))


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


async def run(sandbox: SandboxServer, connection_string: str) -> None:
    from shared.export.service import ExportRequest

    container, connection_id, caller = await connect(sandbox)
    service = container.exports
    seed(sandbox, COUNT)
    with sandbox.client() as control:
        control.post("/_sandbox/latency", json={"graphMs": LATENCY_MS}).raise_for_status()
    graph_requests(sandbox)

    async def export(since: str | None) -> tuple[float, dict[str, int], int, str]:
        started = time.perf_counter()
        job = await service.start(
            caller,
            connection_id,
            ExportRequest(folders=["archive"], format="mime", since=since, received_after=None),
            None,
            "bench-export",
        )
        await drain(service, connection_string)
        elapsed = time.perf_counter() - started
        status = await service.get(caller, connection_id, job.id, None, "bench")
        assert status["status"] == "completed", status
        return elapsed, dict(status["counts"]), graph_requests(sandbox), job.id

    full_wall, full_counts, full_requests, full_id = await export(None)
    seed(sandbox, ADDED)
    graph_requests(sandbox)
    inc_wall, inc_counts, inc_requests, _ = await export(full_id)
    await container.aclose()

    ceiling = 4 / (max(LATENCY_MS, 1) / 1000)  # at 0 ms the figure is CPU-bound anyway
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"Graph latency {LATENCY_MS} ms; ceiling at 4 in flight: {ceiling:.0f} requests/s")
    for name, wall, counts, requests in (
        ("full", full_wall, full_counts, full_requests),
        (f"incremental (+{ADDED})", inc_wall, inc_counts, inc_requests),
    ):
        mb = counts["bytes"] / 1e6
        print(
            f"  {name:<18} {counts['messages']:5d} messages {mb:7.1f} MB in {wall:6.2f} s: "
            f"{counts['messages'] / wall:6.1f} msg/s, {mb / wall:5.2f} MB/s, "
            f"{requests} Graph requests = {requests / wall:6.1f} req/s "
            f"({requests / wall / ceiling:.0%} of the ceiling)"
        )
    print(f"  worker peak RSS (VmHWM): {vm_hwm_mb():.1f} MB")


async def main() -> None:
    with local_servers("bench-export-") as servers:
        os.environ.update(servers.settings)
        os.environ["EXPORTS_QUEUE"] = QUEUE
        os.environ["EXPORT_PAGE_SIZE"] = os.environ.get("BENCH_EXPORT_PAGE_SIZE", "50")
        await run(servers.sandbox, servers.azurite.connection_string)


if __name__ == "__main__":
    asyncio.run(main())
