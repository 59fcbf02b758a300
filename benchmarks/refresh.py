"""Refresh job: 10,000 connections due at once, sandbox identity latency 20 ms, the
lifecycle timer run once and its batches worked from the Azurite queue by one or more
worker processes: one worker at refresh concurrency 16 and 32, and two workers at 16.

Run with `make bench-refresh` (or `python benchmarks/refresh.py --connections 2000
--plans 1x16,2x16`). Reports, per run: wall time of the whole run (timer: index query,
claims, enqueue; workers: every batch) against the floor (connections x latency ÷ refreshes
in flight), refreshes per second and per CPU-second (worker CPU, and worker + sandbox +
Azurite), each process's CPU and peak RSS (VmHWM), how many cores the run kept busy and how
many other work on the machine did, and the grant checks: every row holds a refresh token
issued in this run (none lost), no two rows hold the same one, and exactly one redemption
per connection (none double-written). Target (docs/testing-and-performance.md): ≤ 2x the
floor, ≤ 200 MB, zero lost or double-written grants.

How the connections are made (a faithful shortcut): one real sign-in through the sandbox's
authorize + token endpoints, then one refresh-token redemption per connection on a copy of
that MSAL cache. Every connection therefore holds its own, distinct, sandbox-issued grant
in a real MSAL cache, written through `ConnectionStore.save` (sealed, indexed) — only the
browser round trips of 10,000 sign-ins are skipped. Before each measurement every
connection is made due as a previous round of the job leaves it (last redeemed 8 days ago,
armed with that round's batch hints). Each worker is a fresh process running the queue
trigger's code (`LifecycleService.work`, one message at a time), so its peak RSS is its own;
worker 0 also runs the timer once, as the timer trigger would on one of the instances.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import cpu_seconds, load, machine, peak_rss_kb  # noqa: E402

ALICE = "alice@contoso.test"
LATENCY_MS = 20


def progress(line: str) -> None:
    print(f"\r{line}", end="", file=sys.stderr, flush=True)


# -- child: seed -----------------------------------------------------------------------


async def seed(count: int) -> list[str]:
    import msal
    import requests

    from shared.audit import MemoryAuditSink
    from shared.config import load_settings
    from shared.connections.models import Connection, ConnectionStatus
    from shared.container import Container
    from tests.support.browser import connect_in_process

    settings = load_settings()
    container = Container.build(settings, audit=MemoryAuditSink())
    store = container.connections._store  # type: ignore[attr-defined]
    msal_client = container.connections._msal  # type: ignore[attr-defined]
    template = await connect_in_process(container, ALICE, str(settings.CA_BUNDLE))
    base_cache = (await store.open_cache(template.id)).cache.decode()
    # Made fresh (their first keep-alive a week ahead); `age` then makes them due.
    basis = datetime.now(UTC)
    pool = ThreadPoolExecutor(32)
    gate = asyncio.Semaphore(32)
    made: list[str] = []
    began = time.monotonic()

    def own_grant() -> bytes:
        # A redemption of the signed-in grant into a copy of its cache: a new refresh token.
        # Seeding is not measured: a request lost to a keep-alive connection the sandbox
        # closed just then is simply made again (the grant it would redeem stays valid).
        for attempt in range(3):
            cache = msal.SerializableTokenCache()
            cache.deserialize(base_cache)
            app = msal_client.application(cache)
            account = app.get_accounts()[0]
            try:
                result = app.acquire_token_silent_with_error(
                    msal_client.scopes, account, force_refresh=True
                )
            except requests.ConnectionError:
                if attempt == 2:
                    raise
                continue
            assert result and "access_token" in result, result
            return cache.serialize().encode()
        raise AssertionError("unreachable")

    async def one() -> None:
        async with gate:
            cache = await asyncio.get_running_loop().run_in_executor(pool, own_grant)
            connection = Connection(
                id=secrets.token_urlsafe(24),
                owner_oid=template.owner_oid,
                owner_tid=template.owner_tid,
                mailbox=template.mailbox,
                scopes=template.scopes,
                status=ConnectionStatus.ACTIVE,
                created_at=basis,
                last_refreshed_at=basis,
                home_account_id=template.home_account_id,
            )
            # Armed as a sign-in arms it (the scheduler writes its hint first).
            connection = await container.scheduler.arm(connection, cache, basis)
            await store.save(connection, cache)
            made.append(connection.id)
            if len(made) % 250 == 0 or len(made) == count:
                rate = len(made) / (time.monotonic() - began)
                progress(f"seeding: {len(made)}/{count} connections ({rate:.0f}/s)")

    await asyncio.gather(*(one() for _ in range(count)))
    print(file=sys.stderr)
    # A deployment that has run before: its first timer run (nothing due yet) records the
    # key versions, so the measured run does not include the one-off rotation scan.
    await container.lifecycle.run()
    await container.aclose()
    return made


async def age(ids: list[str]) -> None:
    """Make every connection due again: last redemption 8 days ago, armed with keep-alive
    hints in the past — what a previous round of the job leaves (its batches' hints)."""
    from shared.audit import MemoryAuditSink
    from shared.config import load_settings
    from shared.container import Container
    from tests.support.lifecycle import age as age_connections

    container = Container.build(load_settings(), audit=MemoryAuditSink())
    await age_connections(container, ids, days=8)
    await container.aclose()


# -- child: measure --------------------------------------------------------------------

# The queue trigger's work, one message at a time. A batch stays invisible to the other
# workers while one works it: longer than a batch can take here, so that the figures count
# each batch once (the Functions host renews the lease of a message it is still working on).
VISIBILITY_S = 300


def settled(done_path: Path) -> bool:
    """Whether a worker has settled the run's last batch (a local file: microseconds)."""
    return done_path.exists()


def settle(done_path: Path, summary: dict[str, int]) -> None:
    done_path.write_text(json.dumps(summary))


async def measure(ids: list[str], index: int, done_path: Path) -> dict[str, Any]:
    """One worker process's part of a timed run: worker 0 runs the timer once (due-index
    query, hint claims, enqueue), then every worker takes batches from the queue until the
    run is complete (the worker that settles the last batch emits the run's summary and
    writes it to `done_path`; the others stop when the queue is empty and that file exists).

    Set-up (imports, container, clients) happens before the parent's "go" on stdin, and the
    clocks start there: the parent starts every worker at the same moment, and this
    process's CPU is counted from then on. The grant checks are another process's job
    (`check`), so that this process's peak RSS is its own work's."""
    from azure.storage.queue.aio import QueueClient

    from shared.audit import MemoryAuditSink
    from shared.config import load_settings
    from shared.container import Container
    from shared.store.queue import queue_connection_string

    settings = load_settings()
    audit = MemoryAuditSink()
    container = Container.build(settings, audit=audit)
    queue = QueueClient.from_connection_string(
        queue_connection_string(settings), settings.LIFECYCLE_QUEUE
    )

    def refreshed() -> int:
        return sum(1 for e in audit.events if e.action == "token.refreshed")

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            elapsed = time.monotonic() - began
            print(f"  worker {index}: refreshed {refreshed()} in {elapsed:.1f} s", file=sys.stderr)

    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    began, cpu_began = time.monotonic(), time.process_time()
    reporter = asyncio.create_task(report())
    due, planned = None, None
    if index == 0:
        due = (await container.lifecycle.run()).due
        planned = time.monotonic() - began
    summary: dict[str, int] | None = None
    batches = 0
    async with queue:
        while summary is None:
            messages = [
                m
                async for m in queue.receive_messages(
                    max_messages=1, visibility_timeout=VISIBILITY_S
                )
            ]
            if not messages:
                if settled(done_path):
                    break  # another worker settled the run's last batch
                await asyncio.sleep(0.05)
                continue
            for message in messages:
                await container.lifecycle.work(base64.b64decode(message.content))
                await queue.delete_message(message)
                batches += 1
            run = [e for e in audit.events if e.action == "lifecycle.run"]
            if run:
                summary = dict(run[0].counts)
                settle(done_path, summary)
    ended, cpu_ended = time.monotonic(), time.process_time()
    reporter.cancel()
    result = {
        "index": index,
        "began": began,
        "ended": ended,
        "cpu_s": cpu_ended - cpu_began,
        "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
        "refreshed": refreshed(),
        "batches": batches,
        "due": due,
        "plan_s": planned,
        "summary": summary,
    }
    await container.aclose()
    return result


async def check(ids: list[str], sandbox_url: str, ca: str, issued_before: int) -> dict[str, Any]:
    """The grant checks after a run, from stored state and the sandbox's token log: the
    refresh token each row holds, and the refresh tokens the sandbox issued in the run."""
    import httpx

    from shared.audit import MemoryAuditSink
    from shared.config import load_settings
    from shared.container import Container

    container = Container.build(load_settings(), audit=MemoryAuditSink())
    store = container.connections._store  # type: ignore[attr-defined]
    gate = asyncio.Semaphore(32)

    async def stored_refresh_token(cid: str) -> str:
        async with gate:
            sealed = await store.open_cache(cid)
        tokens = json.loads(sealed.cache)["RefreshToken"]
        return str(next(iter(tokens.values()))["secret"])

    stored = await asyncio.gather(*(stored_refresh_token(cid) for cid in ids))
    async with httpx.AsyncClient(base_url=sandbox_url, verify=ca, timeout=120) as control:
        issued = (await control.get("/_sandbox/tokens")).json()[issued_before:]
    new_refresh = {t["value"] for t in issued if t["kind"] == "refresh"}
    await container.aclose()
    return {
        "not_new": sum(1 for t in stored if t not in new_refresh),
        "shared": len(stored) - len(set(stored)),
        "redemptions": sum(1 for t in issued if t["kind"] == "refresh"),
    }


# -- parent ----------------------------------------------------------------------------


def child(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, __file__, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return done.stdout


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores, /proc/stat): what
    the run's own processes did not use of it was other load on the shared cores."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_workers(
    workers: int, ids: Path, env: dict[str, str], servers: dict[str, int], done_path: Path
) -> dict[str, Any]:
    """Start `workers` worker processes, let them set up, start them at once, and collect
    each one's figures with the servers' and the machine's CPU over the same window."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--measure", str(ids), "--worker-index", str(i)],
            cwd=ROOT,
            env={**os.environ, **env, "BENCH_DONE": str(done_path)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a worker did not start")
        servers_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        busy_before = machine_busy_seconds()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=3600)[0] for proc in procs]
        servers_cpu = {
            name: cpu_seconds(pid) - servers_before[name] for name, pid in servers.items()
        }
        busy = machine_busy_seconds() - busy_before
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if any(proc.returncode for proc in procs):
        raise RuntimeError(f"a worker failed: {[proc.returncode for proc in procs]}")
    parts = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    return {"workers": parts, "servers_cpu_s": servers_cpu, "machine_busy_s": busy}


def summarise(
    workers: int, concurrency: int, connections: int, run: dict[str, Any], checked: dict[str, Any]
) -> dict[str, Any]:
    parts = run["workers"]
    timer = next(p for p in parts if p["index"] == 0)
    summary = next(p["summary"] for p in parts if p["summary"] is not None)
    wall = max(p["ended"] for p in parts) - min(p["began"] for p in parts)
    worker_cpu = sum(p["cpu_s"] for p in parts)
    servers = run["servers_cpu_s"]
    ours = worker_cpu + sum(servers.values())
    refreshed = summary.get("refreshed", 0)
    floor = connections * LATENCY_MS / 1000 / (concurrency * workers)
    per = 1000 / connections
    return {
        "workers": workers,
        "concurrency": concurrency,
        "due": timer["due"],
        "plan_s": round(timer["plan_s"], 2),
        "wall_s": round(wall, 2),
        "floor_s": round(floor, 2),
        "ratio": round(wall / floor, 2),
        "refreshes_per_s": round(refreshed / wall, 1),
        "refreshes_per_worker_cpu_s": round(refreshed / worker_cpu, 1),
        "refreshes_per_cpu_s": round(refreshed / ours, 1),
        "cpu_ms_per_refresh_worker": round(worker_cpu * per, 2),
        **{f"cpu_ms_per_refresh_{name}": round(sec * per, 2) for name, sec in servers.items()},
        # Cores busy over the run: the run's own processes, and everything else on the
        # machine (the other work sharing these cores) — what explains a scale-out figure.
        "cores_busy_ours": round(ours / wall, 2),
        "cores_busy_others": round(max(0.0, run["machine_busy_s"] - ours) / wall, 2),
        "per_worker": [
            {
                "cpu_s": round(p["cpu_s"], 2),
                "cores": round(p["cpu_s"] / wall, 2),
                "batches": p["batches"],
                "refreshed": p["refreshed"],
                "peak_rss_mb": p["peak_rss_mb"],
            }
            for p in sorted(parts, key=lambda p: p["index"])
        ],
        "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        "summary": summary,
        # Rows not holding a refresh token issued in this run, beyond those the run itself
        # reports as not refreshed (failed / skipped: retried on a later run): lost updates.
        "lost": checked["not_new"] - (timer["due"] - refreshed),
        # Two rows holding the same grant, or more redemptions than refreshes: double writes.
        "shared": checked["shared"],
        "redemptions": checked["redemptions"],
    }


def parse_plans(text: str) -> list[tuple[int, int]]:
    """ "1x16,2x16" -> [(1, 16), (2, 16)]: worker processes x refreshes in flight in each."""
    plans = []
    for part in text.split(","):
        workers, _, concurrency = part.strip().partition("x")
        plans.append((int(workers), int(concurrency)))
    return plans


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument(
        "--plans",
        default="1x16,1x32,2x16",
        help="runs to measure, as WORKERS x REFRESH_CONCURRENCY (default 1x16,1x32,2x16)",
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--age", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--check", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        args.seed.write_text("\n".join(asyncio.run(seed(args.connections))))
        return 0
    if args.age:
        asyncio.run(age(args.age.read_text().split()))
        return 0
    if args.check:
        checked = asyncio.run(
            check(
                args.check.read_text().split(),
                os.environ["BENCH_SANDBOX_URL"],
                os.environ["CA_BUNDLE"],
                int(os.environ["BENCH_ISSUED_BEFORE"]),
            )
        )
        print(json.dumps(checked))
        return 0
    if args.measure:
        profile = os.environ.get("BENCH_PROFILE")
        if profile:  # a cProfile of the measuring process, for finding where CPU goes
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        result = asyncio.run(
            measure(
                args.measure.read_text().split(), args.worker_index, Path(os.environ["BENCH_DONE"])
            )
        )
        if profile:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{args.worker_index}")
        print(json.dumps(result))
        return 0

    from tests.support.app import app_settings
    from tests.support.azurite import start_azurite
    from tests.support.sandbox import start_sandbox

    plans = parse_plans(args.plans)
    tmp = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    callback = "http://127.0.0.1:7071/api/auth/callback"
    sandbox = start_sandbox(tmp, {"SANDBOX_REDIRECT_URIS": callback})
    azurite = start_azurite(tmp)
    try:
        env = {
            **app_settings(sandbox, azurite, tmp, 7071),
            "TABLE_PREFIX": "bench",
            "LIFECYCLE_QUEUE": "bench-work",
            "LIFECYCLE_BATCH_SIZE": str(args.batch_size),
            "LIFECYCLE_RUN_BUDGET": str(args.connections + 1000),
            "BENCH_SANDBOX_URL": sandbox.url,
        }
        ids = tmp / "ids.txt"
        print(f"machine: {machine()}; {load()}", flush=True)
        began = time.monotonic()
        child(["--seed", str(ids), "--connections", str(args.connections)], env)
        print(f"seeded {args.connections} connections in {time.monotonic() - began:.0f} s")
        servers = {"sandbox": sandbox.process.popen.pid, "azurite": azurite.process.popen.pid}
        results = []
        for number, (workers, concurrency) in enumerate(plans):
            child(["--age", str(ids)], env)
            with sandbox.client() as control:
                control.post(
                    "/_sandbox/latency", json={"identityMs": LATENCY_MS}
                ).raise_for_status()
                issued_before = len(control.get("/_sandbox/tokens").json())
            print(f"{workers} worker(s) x concurrency {concurrency}: {load()}", flush=True)
            run = run_workers(
                workers,
                ids,
                {**env, "REFRESH_CONCURRENCY": str(concurrency)},
                servers,
                tmp / f"done-{number}.json",
            )
            with sandbox.client() as control:
                control.post("/_sandbox/latency", json={}).raise_for_status()
            checked = json.loads(
                child(["--check", str(ids)], {**env, "BENCH_ISSUED_BEFORE": str(issued_before)})
                .strip()
                .splitlines()[-1]
            )
            result = summarise(workers, concurrency, args.connections, run, checked)
            results.append(result)
            print(describe(result), flush=True)
        print(json.dumps(results))
    finally:
        azurite.stop()
        sandbox.stop()
    return 0


def describe(r: dict[str, Any]) -> str:
    workers = ", ".join(
        f"#{i}: {w['cpu_s']} s CPU ({w['cores']} cores), {w['batches']} batches, "
        f"{w['refreshed']} refreshed, VmHWM {w['peak_rss_mb']} MB"
        for i, w in enumerate(r["per_worker"])
    )
    return (
        f"  {r['wall_s']} s wall (floor {r['floor_s']} s, {r['ratio']}x; timer part "
        f"{r['plan_s']} s); {r['refreshes_per_s']} refreshes/s; per CPU-second: "
        f"{r['refreshes_per_worker_cpu_s']} (worker CPU), {r['refreshes_per_cpu_s']} (worker + "
        f"sandbox + Azurite); CPU ms per refresh: worker {r['cpu_ms_per_refresh_worker']}, "
        f"sandbox {r['cpu_ms_per_refresh_sandbox']}, azurite {r['cpu_ms_per_refresh_azurite']}; "
        f"cores busy: ours {r['cores_busy_ours']}, others' {r['cores_busy_others']}\n"
        f"  workers: {workers}\n"
        f"  refreshed {r['summary'].get('refreshed')}/{r['due']} (failed "
        f"{r['summary'].get('failed')}, skipped {r['summary'].get('skipped')}), lost "
        f"{r['lost']}, shared {r['shared']}, redemptions {r['redemptions']}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
