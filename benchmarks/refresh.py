"""Refresh job: 10,000 connections due at once, sandbox identity latency 20 ms, the
lifecycle timer run + queue worker at refresh concurrency 16 and 32.

Run with `make bench-refresh` (or `python benchmarks/refresh.py --connections 2000`).
Reports, per concurrency: wall time of the whole run (timer: index query, claims, enqueue;
worker: every batch) against the floor (connections x latency / concurrency), peak RSS of
the process doing the work, and the grant checks: every row holds a refresh token issued in
this run (none lost), no two rows hold the same one, and exactly one redemption per
connection (none double-written). Target (docs/testing-and-performance.md): ≤ 2x the floor,
≤ 200 MB, zero lost or double-written grants.

How the connections are made (a faithful shortcut): one real sign-in through the sandbox's
authorize + token endpoints, then one refresh-token redemption per connection on a copy of
that MSAL cache. Every connection therefore holds its own, distinct, sandbox-issued grant
in a real MSAL cache, written through `ConnectionStore.save` (sealed, indexed) — only the
browser round trips of 10,000 sign-ins are skipped. Before each measurement every
connection is made due as a previous round of the job leaves it (last redeemed 8 days ago,
armed with that round's batch hints). Each measurement runs in a fresh process so its peak
RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
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


async def measure(
    ids: list[str], sandbox_url: str, ca: str, issued_before: int, servers: dict[str, int]
) -> dict[str, Any]:
    """The timed run. Bookkeeping stays outside what is measured: the parent counts the
    tokens issued before it (the sandbox's whole token log is tens of MB of JSON, which
    would otherwise set this process's peak RSS), and the servers' CPU is read around the
    run itself, before the grant checks."""
    import httpx
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
            await asyncio.sleep(1)
            elapsed = time.monotonic() - began
            progress(f"  refreshed {refreshed()}/{len(ids)} in {elapsed:.1f} s")

    servers_before = {name: cpu_seconds(pid) for name, pid in servers.items()}
    began = time.monotonic()
    reporter = asyncio.create_task(report())
    started = await container.lifecycle.run()
    planned = time.monotonic() - began
    async with queue:
        # The queue trigger's work, one message at a time, as one worker with
        # REFRESH_CONCURRENCY refreshes in flight.
        while not [e for e in audit.events if e.action == "lifecycle.run"]:
            messages = [m async for m in queue.receive_messages(max_messages=1)]
            if not messages:
                await asyncio.sleep(0.05)
                continue
            for message in messages:
                await container.lifecycle.work(base64.b64decode(message.content))
                await queue.delete_message(message)
    wall = time.monotonic() - began
    servers_cpu = {name: cpu_seconds(pid) - servers_before[name] for name, pid in servers.items()}
    reporter.cancel()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = own_peak_rss_kb() / 1024
    worker_cpu_s = usage.ru_utime + usage.ru_stime
    print(file=sys.stderr)
    summary = next(e for e in audit.events if e.action == "lifecycle.run")

    # Grant checks, after the timing and the RSS reading.
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
    new_refresh = [t["value"] for t in issued if t["kind"] == "refresh"]
    await container.aclose()
    return {
        "due": started.due,
        "plan_s": round(planned, 2),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "cpu_ms_per_refresh_worker": round(worker_cpu_s * 1000 / len(ids), 2),
        **{
            f"cpu_ms_per_refresh_{name}": round(seconds * 1000 / len(ids), 2)
            for name, seconds in servers_cpu.items()
        },
        "summary": summary.counts,
        # Rows not holding a refresh token issued in this run, beyond those the run itself
        # reports as not refreshed (failed / skipped: retried on a later run): lost updates.
        "lost": sum(1 for t in stored if t not in set(new_refresh))
        - (started.due - summary.counts.get("refreshed", 0)),
        # Two rows holding the same grant, or more redemptions than refreshes: double writes.
        "shared": len(stored) - len(set(stored)),
        "redemptions": len(new_refresh),
    }


def own_peak_rss_kb() -> int:
    """This process's peak resident size since it started (`VmHWM`, Linux).

    Not `ru_maxrss`: for a child started with fork + exec, Linux folds the forked copy of
    the parent's address space into it, so it can never read below the parent's size at
    the fork. (That made a run measured after the parent had parsed the sandbox's token log
    report 217 MB while the child itself never went past 132 MB.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- parent ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children that were waited for (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


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


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--concurrency", default="16,32")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--age", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        args.seed.write_text("\n".join(asyncio.run(seed(args.connections))))
        return 0
    if args.age:
        asyncio.run(age(args.age.read_text().split()))
        return 0
    if args.measure:
        profile = os.environ.get("BENCH_PROFILE")
        if profile:  # a cProfile of the measuring process, for finding where CPU goes
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        result = asyncio.run(
            measure(
                args.measure.read_text().split(),
                os.environ["BENCH_SANDBOX_URL"],
                os.environ["CA_BUNDLE"],
                int(os.environ["BENCH_ISSUED_BEFORE"]),
                json.loads(os.environ["BENCH_SERVER_PIDS"]),
            )
        )
        if profile:
            profiler.disable()
            profiler.dump_stats(profile)
        print(json.dumps(result))
        return 0

    from tests.support.app import app_settings
    from tests.support.azurite import start_azurite
    from tests.support.sandbox import start_sandbox

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
        print(f"machine: {machine()}")
        child(["--seed", str(ids), "--connections", str(args.connections)], env)
        results = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            child(["--age", str(ids)], env)
            with sandbox.client() as control:
                control.post(
                    "/_sandbox/latency", json={"identityMs": LATENCY_MS}
                ).raise_for_status()
                issued_before = len(control.get("/_sandbox/tokens").json())
            servers = {"sandbox": sandbox.process.popen.pid, "azurite": azurite.process.popen.pid}
            out = child(
                ["--measure", str(ids)],
                {
                    **env,
                    "REFRESH_CONCURRENCY": str(concurrency),
                    "BENCH_ISSUED_BEFORE": str(issued_before),
                    "BENCH_SERVER_PIDS": json.dumps(servers),
                },
            )
            with sandbox.client() as control:
                control.post("/_sandbox/latency", json={}).raise_for_status()
            result = json.loads(out.strip().splitlines()[-1])
            floor = args.connections * LATENCY_MS / 1000 / concurrency
            result.update(concurrency=concurrency, floor_s=round(floor, 2))
            result["ratio"] = round(result["wall_s"] / floor, 2)
            results.append(result)
            print(
                f"concurrency {concurrency}: {result['wall_s']} s wall "
                f"(floor {result['floor_s']} s, {result['ratio']}x; timer part "
                f"{result['plan_s']} s), peak RSS {result['peak_rss_mb']} MB, "
                f"refreshed {result['summary'].get('refreshed')}/{result['due']} "
                f"(failed {result['summary'].get('failed')}, "
                f"skipped {result['summary'].get('skipped')}), "
                f"lost {result['lost']}, shared {result['shared']}, "
                f"redemptions {result['redemptions']}; CPU ms per refresh: worker "
                f"{result['cpu_ms_per_refresh_worker']}, sandbox "
                f"{result['cpu_ms_per_refresh_sandbox']}, azurite "
                f"{result['cpu_ms_per_refresh_azurite']}"
            )
        print(json.dumps(results))
    finally:
        azurite.stop()
        sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
