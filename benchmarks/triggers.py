"""Trigger delivery under faults: 2,000 messages arrive in bursts over 60 s across 50
subscriptions; the receiver answers 500 to 30% of attempts and hangs past the webhook timeout
on 2%; the process running the delivery worker (the dev host: it runs the queue triggers
in-process) is SIGKILLed twice and started again. Then the same run with Graph's change
notifications dropped (`POST /_sandbox/notifications/pause {"drop": true}`), so that only the
reconciliation sweep delivers.

Run with `make bench-triggers` (or `python benchmarks/triggers.py --messages 200
--subscriptions 5 --seconds 10` for a quick one). Each run starts its own sandbox, Azurite
(in memory: only the dev host is killed, Azurite keeps its state as a separate process), a
local receiver and the app under the dev host, configured like the e2e tests. Reports, per
run: events expected (one per subscription whose folder a message arrived in), accepted
exactly once, accepted more than once (and how many of those the kills explain: the first
2xx came while the killed worker still had to settle it), lost (not accepted by the
deadline; 0 is the goal), attempts by answer, and the latency from the message's arrival in
the mailbox to the receiver's first 2xx (p50/p90/p99/max), against the Office 365 Outlook
connector's polling.

Arrival is taken as the moment the benchmark sent the sandbox's seeding call (the sandbox
stores the messages while answering it), so a latency is an upper bound by that call's
duration (reported as `seed call` below).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import math
import random
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.refresh import cpu_seconds, machine  # noqa: E402
from benchmarks.servers import LocalServers, local_servers  # noqa: E402
from shared.store.deliveries import delivery_id  # noqa: E402
from tests.support.app import AppServer, start_app  # noqa: E402
from tests.support.callers import Caller  # noqa: E402
from tests.support.drills import LoadResult  # noqa: E402
from tests.support.receiver import Received, Receiver, start_receiver  # noqa: E402

# The run's delivery settings. Retries keep the production defaults; the webhook timeout,
# the lease and the sweep are shortened so that a run (and its recoveries) fits in minutes.
WEBHOOK_TIMEOUT_SECONDS = 2.0
RETRY_INITIAL_SECONDS = 2.0  # production default
# Production default 600 s: capped here so that an event refused many times in a row (0.32^6:
# one in a thousand is refused six times) still lands within the run. The cap changes nothing
# below the p99: the 99th percentile event is refused at most four times (2 + 4 + 8 + 16 s).
RETRY_MAX_SECONDS = 30.0
RETRY_HOURS = 24.0  # production default
LEASE_SECONDS = 15  # production default 120
SWEEP_SECONDS = 30
RECONCILE_SCHEDULE = f"*/{SWEEP_SECONDS} * * * * *"  # production default every 15 minutes

FAIL_FRACTION = 0.30  # answered 500
HANG_FRACTION = 0.02  # answered only after the sender's timeout
HANG_SECONDS = WEBHOOK_TIMEOUT_SECONDS + 1.0
# A duplicate is put down to a kill when its first 2xx came at most this long before the
# kill: the attempt's worker was answered but died before it wrote the event settled.
KILL_WINDOW_SECONDS = 10.0

# The Office 365 Outlook connector's polling trigger: every 5 minutes by default, and Microsoft
# documents that a run may come up to an hour late (see benchmarks/README.md for the source).
POLL_DEFAULT_SECONDS = 300.0
POLL_WORST_SECONDS = 3600.0

# One user's subscriptions, by slot: two flows on the inbox, one on the archive, six on
# custom folders and one on a subfolder (the tenth slot's folder is a child of the ninth).
SLOTS = ["inbox", "inbox", "archive", "A", "B", "C", "D", "E", "F", "F/Sub"]


_shown = [0.0]


def progress(line: str) -> None:
    """A progress line on stderr, at most every 5 s (a terminal shows it in place)."""
    if time.monotonic() - _shown[0] >= 5:
        _shown[0] = time.monotonic()
        print(f"\r{line:<90}", end="", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the receiver ------------------------------------------------------------------------


def standard_webhooks_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks, from the specification (not from the app): the key is the base64
    after `whsec_`, the signed content `{id}.{timestamp}.{body}`, the header a list of
    `v1,<base64>` signatures, and the timestamp within five minutes."""
    lower = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp = lower.get("webhook-id", ""), lower.get("webhook-timestamp", "0")
    if abs(time.time() - int(stamp)) > 300:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(given, expected)
        for version, _, given in (s.partition(",") for s in lower["webhook-signature"].split())
    )


@dataclass
class Faults:
    """The receiver's answers: a bad signature 401; else 2% hang past the sender's timeout,
    30% answer 500, the rest 202. Seeded, so a run's sequence of answers is reproducible."""

    secrets: dict[str, str]  # path → signing secret
    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)

    def __call__(self, got: Received) -> int:
        secret = self.secrets.get(got.path)
        if secret is None or not standard_webhooks_valid(secret, got.headers, got.body):
            return self._count("bad_signature", 401)
        with self.lock:
            draw = self.rng.random()
        if draw < HANG_FRACTION:
            time.sleep(HANG_SECONDS)
            return self._count("hang", 504)
        if draw < HANG_FRACTION + FAIL_FRACTION:
            return self._count("500", 500)
        return self._count("2xx", 202)

    def _count(self, kind: str, status: int) -> int:
        with self.lock:
            self.answers[kind] += 1
        return status


# -- the layout: users, folders, subscriptions --------------------------------------------


@dataclass(frozen=True)
class Hook:
    """One subscription as the benchmark knows it."""

    index: int
    upn: str
    folder: str  # the folder id (or well-known name) the subscription watches
    subscription_id: str
    path: str  # the receiver path it posts to


@dataclass
class Layout:
    hooks: list[Hook]
    callers: list[Caller]

    def watching(self, upn: str, folder: str) -> list[Hook]:
        return [h for h in self.hooks if (h.upn, h.folder) == (upn, folder)]


def build_layout(
    app: AppServer, servers: LocalServers, receiver: Receiver, faults: Faults, count: int
) -> Layout:
    """ceil(count / 10) sandbox users, each connected through the browser flow, with up to
    ten subscriptions each (SLOTS), every one posting to its own receiver path."""
    sandbox = servers.sandbox
    users = math.ceil(count / len(SLOTS))
    hooks: list[Hook] = []
    callers: list[Caller] = []
    with sandbox.client() as control:
        for u in range(users):
            upn = f"trigger{u + 1}@contoso.test"
            made = control.post("/_sandbox/users", json={"upn": upn, "displayName": f"T{u + 1}"})
            made.raise_for_status()
            caller = Caller(app, sandbox, upn)
            callers.append(caller)
            folders: dict[str, str] = {"inbox": "inbox", "archive": "archive"}
            for slot in range(min(len(SLOTS), count - u * len(SLOTS))):
                name = SLOTS[slot]
                if name not in folders:
                    parent, _, child = name.rpartition("/")
                    body: dict[str, Any] = {"displayName": f"Bench {child}"}
                    if parent:
                        body["parentFolder"] = folders[parent]
                    created = caller.post("/folders", body)
                    assert created.status_code == 201, created.text
                    folders[name] = str(created.json()["id"])
                index = len(hooks)
                path = f"/hook/{index}"
                subscribed = caller.post(
                    "/subscriptions",
                    {
                        "notificationUrl": f"{receiver.url}{path}",
                        "folder": folders[name],
                        "includeMessage": index % 2 == 0,
                    },
                )
                assert subscribed.status_code == 201, subscribed.text
                faults.secrets[path] = str(subscribed.json()["signingSecret"])
                hooks.append(Hook(index, upn, folders[name], str(subscribed.json()["id"]), path))
                progress(f"  subscriptions: {len(hooks)}/{count}")
    print(file=sys.stderr)
    return Layout(hooks, callers)


# -- arrivals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    message_id: str
    upn: str
    folder: str
    sent: float  # monotonic, before the seeding call (the arrival time used)
    answered: float  # monotonic, after it


def burst_plan(
    rng: random.Random, layout: Layout, messages: int, seconds: float
) -> list[tuple[float, dict[tuple[str, str], int]]]:
    """Bursts every ~2 s over `seconds`, of uneven sizes (exponential weights: a few large
    ones); each message goes to the folder of a subscription drawn at random (so an inbox
    watched by two flows gets twice the mail)."""
    count = max(1, round(seconds / 2))
    weights = [rng.expovariate(1.0) for _ in range(count)]
    plan: list[dict[tuple[str, str], int]] = [defaultdict(int) for _ in range(count)]
    for _ in range(messages):
        burst = rng.choices(range(count), weights)[0]
        hook = rng.choice(layout.hooks)
        plan[burst][(hook.upn, hook.folder)] += 1
    return [(b * seconds / count, dict(plan[b])) for b in range(count)]


def arrive(
    servers: LocalServers,
    plan: list[tuple[float, dict[tuple[str, str], int]]],
    started: float,
) -> list[Arrival]:
    arrivals: list[Arrival] = []
    with servers.sandbox.client() as control:
        for at, folders in plan:
            wait = started + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            for (upn, folder), n in folders.items():
                sent = time.monotonic()
                seeded = control.post(
                    f"/_sandbox/users/{upn}/messages", json={"count": n, "folder": folder}
                )
                answered = time.monotonic()
                seeded.raise_for_status()
                arrivals += [Arrival(m, upn, folder, sent, answered) for m in seeded.json()["ids"]]
            progress(f"  arrived {len(arrivals)} messages at {time.monotonic() - started:.0f} s")
    return arrivals


# -- the worker process and its kills -----------------------------------------------------


@dataclass
class Worker:
    """The dev host running the app (HTTP routes, queue triggers, timers): the process that
    runs the delivery worker. Killed with SIGKILL and started again on the same port."""

    settings: dict[str, str]
    work: Path
    port: int
    app: AppServer
    incarnation: int = 1
    cpu_s: float = 0.0  # CPU of the incarnations killed so far
    kills: list[dict[str, float]] = field(default_factory=list)

    def kill_and_restart(self, started: float) -> None:
        self.cpu_s += cpu_seconds(self.app.process.popen.pid)
        killed = time.monotonic()
        self.app.process.stop(sig=signal.SIGKILL)
        self.incarnation += 1
        directory = self.work / f"app-{self.incarnation}"
        directory.mkdir(exist_ok=True)
        self.app = start_app(self.settings, directory, self.port)
        self.kills.append(
            {"at_s": killed - started, "down_s": time.monotonic() - killed, "mono": killed}
        )

    def total_cpu_s(self) -> float:
        return self.cpu_s + cpu_seconds(self.app.process.popen.pid)


def killer(
    worker: Worker, times: list[float], started: float, errors: list[BaseException]
) -> threading.Thread:
    def run() -> None:
        try:
            for at in times:
                wait = started + at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                worker.kill_and_restart(started)
        except BaseException as failure:  # reported by the main thread
            errors.append(failure)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- the ledger, read for the end condition and the lost ones ------------------------------


def ledger_rows(settings: dict[str, str]) -> list[dict[str, Any]]:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(
        settings["STORAGE_CONNECTION_STRING"], f"{settings['TABLE_PREFIX']}deliveries"
    ) as table:
        try:
            return [dict(e) for e in table.list_entities()]
        except ResourceNotFoundError:
            return []


def queue_lengths(settings: dict[str, str]) -> dict[str, int]:
    """Approximate message counts of the notification queue and its poison queue (invisible
    messages included: a job taken by a killed worker stays invisible for 10 minutes)."""
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import QueueClient

    out: dict[str, int] = {}
    for name in (settings["NOTIFICATIONS_QUEUE"], settings["NOTIFICATIONS_QUEUE"] + "-poison"):
        with QueueClient.from_connection_string(settings["AzureWebJobsStorage"], name) as queue:
            try:
                out[name] = int(queue.get_queue_properties().approximate_message_count or 0)
            except ResourceNotFoundError:
                out[name] = 0
    return out


def worker_log_counts(work: Path) -> dict[str, int]:
    """From every dev host incarnation's log: delivery jobs run (the dev host logs each queue
    message it settles), and notification POSTs from Graph answered."""
    text = "".join(f.read_text(errors="replace") for f in work.glob("app-*/devhost-*.log"))
    return {
        "jobs_succeeded": text.count("Queue function notifications_deliver succeeded"),
        "jobs_failed": text.count("Queue function notifications_deliver failed"),
        "graph_posts": text.count("POST notifications/graph ->"),
        "sweeps": text.count("Timer function notifications_reconcile succeeded"),
    }


# -- one run -------------------------------------------------------------------------------


def run(args: argparse.Namespace, drop: bool) -> dict[str, Any]:
    name = "sweep only (notifications dropped)" if drop else "push (Graph notifications)"
    print(f"run: {name}", file=sys.stderr)
    rng = random.Random(args.seed)
    with local_servers("bench-triggers-") as servers:
        receiver = start_receiver()
        faults = Faults({}, random.Random(args.seed + 1))
        receiver.respond = faults
        settings = {
            **servers.settings,
            "TABLE_PREFIX": "benchtrig",
            "LIFECYCLE_QUEUE": "benchtrig-work",
            "NOTIFICATIONS_QUEUE": "benchtrig-notify",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{servers.app_port}",
            "ALLOW_HTTP_LOOPBACK_WEBHOOKS": "true",
            "WEBHOOK_TIMEOUT_SECONDS": str(WEBHOOK_TIMEOUT_SECONDS),
            "WEBHOOK_RETRY_INITIAL_SECONDS": str(RETRY_INITIAL_SECONDS),
            "WEBHOOK_RETRY_MAX_SECONDS": str(RETRY_MAX_SECONDS),
            "WEBHOOK_RETRY_HOURS": str(RETRY_HOURS),
            "WEBHOOK_LEASE_SECONDS": str(LEASE_SECONDS),
            "RECONCILE_SCHEDULE": RECONCILE_SCHEDULE,
        }
        first = servers.work / "app-1"
        first.mkdir()
        worker = Worker(
            settings, servers.work, servers.app_port, start_app(settings, first, servers.app_port)
        )
        try:
            return measure(args, drop, name, rng, servers, receiver, faults, worker)
        finally:
            worker.app.stop()
            receiver.stop()


def measure(
    args: argparse.Namespace,
    drop: bool,
    name: str,
    rng: random.Random,
    servers: LocalServers,
    receiver: Receiver,
    faults: Faults,
    worker: Worker,
) -> dict[str, Any]:
    layout = build_layout(worker.app, servers, receiver, faults, args.subscriptions)
    plan = burst_plan(rng, layout, args.messages, args.seconds)
    if drop:
        with servers.sandbox.client() as control:
            paused = control.post("/_sandbox/notifications/pause", json={"drop": True})
            paused.raise_for_status()
    load_before = load_average()
    server_pids = {
        "sandbox": servers.sandbox.process.popen.pid,
        "azurite": servers.azurite.process.popen.pid,
    }
    cpu_before = {k: cpu_seconds(pid) for k, pid in server_pids.items()}
    worker_cpu_before = worker.total_cpu_s()
    own_before = time.process_time()

    started = time.monotonic()
    kill_times = [args.seconds * (k + 1) / (args.kills + 1) for k in range(args.kills)]
    errors: list[BaseException] = []
    kills = killer(worker, kill_times, started, errors)
    arrivals = arrive(servers, plan, started)
    arrived = time.monotonic()
    print(file=sys.stderr)

    expected: dict[str, tuple[Hook, Arrival]] = {}
    for a in arrivals:
        for hook in layout.watching(a.upn, a.folder):
            expected[delivery_id(hook.subscription_id, a.message_id, "created")] = (hook, a)

    def accepted() -> dict[str, list[Received]]:
        with receiver.lock:
            got = list(receiver.received)
        by_id: dict[str, list[Received]] = defaultdict(list)
        for r in got:
            by_id[r.headers.get("webhook-id", "")].append(r)
        return by_id

    deadline = arrived + args.drain
    settled = False
    while time.monotonic() < deadline:
        kills.join(0)
        if errors:
            raise errors[0]
        got = accepted()
        missing = sum(1 for d in expected if d not in got)
        elapsed = time.monotonic() - started
        progress(f"  accepted {len(expected) - missing}/{len(expected)} events at {elapsed:.0f} s")
        # Done when nothing is left pending in the ledger either: an event whose worker was
        # killed after its 2xx is redelivered (a duplicate) before it settles.
        if (
            missing == 0
            and not kills.is_alive()
            and not any(r.get("Status") == "pending" for r in ledger_rows(worker.settings))
        ):
            settled = True
            break
        time.sleep(1.0)
    ended = time.monotonic()
    print(file=sys.stderr)
    kills.join(60)

    own_cpu = time.process_time() - own_before
    cpu = {k: round(cpu_seconds(pid) - cpu_before[k], 1) for k, pid in server_pids.items()}
    cpu["app (dev host, all incarnations)"] = round(worker.total_cpu_s() - worker_cpu_before, 1)
    cpu["benchmark (receiver + seeding)"] = round(own_cpu, 1)
    load_after = load_average()

    got = accepted()
    with receiver.lock:
        refused = list(receiver.refused)
    attempts_by_id = Counter(r.headers.get("webhook-id", "") for r in [*refused])
    for webhook_id, posts in got.items():
        attempts_by_id[webhook_id] += len(posts)
    once = [d for d in expected if len(got.get(d, [])) == 1]
    many = [d for d in expected if len(got.get(d, [])) > 1]
    undelivered = [d for d in expected if d not in got]
    rows = ledger_rows(worker.settings)
    by_key = {str(r["RowKey"]): r for r in rows}
    now = datetime.now(UTC)

    def where(d: str) -> str:
        row = by_key.get(d)
        if row is None:
            return "no ledger row"
        lease = row.get("LeaseUntil")
        if row.get("Status") == "pending" and lease is not None and lease > now:
            return f"pending, retry scheduled or in flight (attempts {row.get('Attempts')})"
        return f"{row.get('Status')}, nothing scheduled"

    undelivered_where = Counter(where(d) for d in undelivered)
    queues = queue_lengths(worker.settings)
    # Lost: not accepted, nothing in the ledger will send it again, and no job is left in the
    # queue that might (with jobs still queued at the deadline, it cannot be told: None).
    unscheduled = [d for d in undelivered if "retry scheduled" not in where(d)]
    lost = None if unscheduled and queues[worker.settings["NOTIFICATIONS_QUEUE"]] else unscheduled
    unexpected = [d for d in got if d not in expected]
    kill_marks = [k["mono"] for k in worker.kills]
    explained = [
        d
        for d in many
        if any(0 <= mark - got[d][0].at <= KILL_WINDOW_SECONDS for mark in kill_marks)
    ]
    mismatched = [
        d
        for d, posts in got.items()
        if d in expected
        and any(
            json.loads(p.body).get("messageId") != expected[d][1].message_id
            or json.loads(p.body).get("subscriptionId") != expected[d][0].subscription_id
            for p in posts
        )
    ]
    latencies = [min(p.at for p in got[d]) - expected[d][1].sent for d in expected if d in got]
    seed_calls = sorted({(a.sent, a.answered) for a in arrivals})
    seed_ms = LoadResult({}, [b - a for a, b in seed_calls], 1.0)
    result = LoadResult({}, latencies or [float("nan")], 1.0)
    statuses = Counter(str(r.get("Status")) for r in rows)
    with servers.sandbox.client() as control:
        graph_subs = control.get("/_sandbox/subscriptions").json()["value"]
    notified = {
        "delivered": sum(int(s.get("delivered") or 0) for s in graph_subs),
        "failed": sum(int(s.get("failed") or 0) for s in graph_subs),
    }

    def pct(p: float) -> float:
        return round(result.percentile(p), 2)

    return {
        "run": name,
        "messages": len(arrivals),
        "subscriptions": len(layout.hooks),
        "users": len(layout.callers),
        "arrival_window_s": round(arrived - started, 1),
        "bursts": len(plan),
        "kills": [
            {k: round(v, 1) for k, v in kill.items() if k != "mono"} for kill in worker.kills
        ],
        "events_expected": len(expected),
        "accepted_once": len(once),
        "accepted_more_than_once": len(many),
        "duplicates_explained_by_kills": len(explained),
        "undelivered_at_deadline": len(undelivered),
        "undelivered_where": dict(undelivered_where),
        "lost": None if lost is None else len(lost),
        "unexpected_events": len(unexpected),
        "wrong_event_for_id": len(mismatched),
        "attempts": sum(faults.answers.values()),
        "answers": dict(faults.answers),
        "attempts_per_event_max": max(attempts_by_id.values(), default=0),
        "latency_s": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(max(result.latencies), 2),
        },
        "seed_call_ms": {
            "p50": round(seed_ms.percentile(50) * 1000, 1),
            "max": round(max(seed_ms.latencies) * 1000, 1),
        },
        "ledger": dict(statuses),
        "queues_at_end": queues,
        "worker_log": worker_log_counts(worker.work),
        "graph_notifications": notified,
        "settled": settled,
        "run_s": round(ended - started, 1),
        "cpu_s": cpu,
        "load_average": {"before": load_before, "after": load_after},
    }


def ratios(p50: float, p99: float) -> dict[str, float]:
    """How many times sooner than the connector's polling: against the interval, and against
    what polling itself gives for mail arriving at random (median half the interval, p99
    99% of it)."""
    out: dict[str, float] = {}
    for label, interval in (("5min", POLL_DEFAULT_SECONDS), ("1h", POLL_WORST_SECONDS)):
        out[f"interval_{label}/p50"] = round(interval / p50, 1)
        out[f"interval_{label}/p99"] = round(interval / p99, 1)
        out[f"poll_{label}_p50/p50"] = round(interval * 0.5 / p50, 1)
        out[f"poll_{label}_p99/p99"] = round(interval * 0.99 / p99, 1)
    return out


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"machine: {machine()}; load average {results[0]['load_average']['before']} at start",
        f"settings: WEBHOOK_TIMEOUT_SECONDS={WEBHOOK_TIMEOUT_SECONDS:g}, "
        f"WEBHOOK_RETRY_INITIAL_SECONDS={RETRY_INITIAL_SECONDS:g}, "
        f"WEBHOOK_RETRY_MAX_SECONDS={RETRY_MAX_SECONDS:g}, WEBHOOK_RETRY_HOURS={RETRY_HOURS:g}, "
        f"WEBHOOK_LEASE_SECONDS={LEASE_SECONDS}, RECONCILE_SCHEDULE='{RECONCILE_SCHEDULE}' "
        f"(the dev host's timer); receiver: {FAIL_FRACTION:.0%} 500, {HANG_FRACTION:.0%} hang "
        f"{HANG_SECONDS:g} s",
    ]
    for r in results:
        lat = r["latency_s"]
        kills = ", ".join(f"{k['at_s']} s (down {k['down_s']} s)" for k in r["kills"])
        lines += [
            "",
            f"{r['run']}: {r['messages']} messages in {r['bursts']} bursts over "
            f"{r['arrival_window_s']} s, {r['subscriptions']} subscriptions of {r['users']} "
            f"mailboxes; kills at {kills or 'none'}",
            f"  events expected {r['events_expected']}: accepted once {r['accepted_once']}, "
            f"more than once {r['accepted_more_than_once']} "
            f"(explained by the kills {r['duplicates_explained_by_kills']}), "
            f"not accepted by the deadline {r['undelivered_at_deadline']} "
            f"{r['undelivered_where'] or ''}, lost "
            f"{'unknown (jobs still queued)' if r['lost'] is None else r['lost']}, "
            f"unexpected {r['unexpected_events']}, "
            f"wrong event for its id {r['wrong_event_for_id']}",
            f"  attempts {r['attempts']} {r['answers']}, at most {r['attempts_per_event_max']} "
            f"for one event; ledger {r['ledger']}; queues at the end {r['queues_at_end']}; "
            f"Graph notifications {r['graph_notifications']}; worker log {r['worker_log']}",
            f"  latency arrival → first 2xx: p50 {lat['p50']} s, p90 {lat['p90']} s, "
            f"p99 {lat['p99']} s, max {lat['max']} s (seed call p50 {r['seed_call_ms']['p50']} ms, "
            f"max {r['seed_call_ms']['max']} ms)",
            f"  against the Outlook connector's polling: {r['ratios']}",
            f"  run {r['run_s']} s ({'all settled' if r['settled'] else 'DEADLINE reached'}); "
            f"CPU s {r['cpu_s']}; load average {r['load_average']['before']} → "
            f"{r['load_average']['after']}",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--subscriptions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="arrival window")
    parser.add_argument("--kills", type=int, default=2, help="SIGKILLs of the worker per run")
    parser.add_argument(
        "--drain",
        type=float,
        default=420.0,
        help="deadline after arrivals (the run ends once every event settled)",
    )
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--only", choices=("push", "sweep"), help="one of the two runs")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    results = []
    for drop in (False, True):
        if args.only and args.only != ("sweep" if drop else "push"):
            continue
        result = run(args, drop)
        result["ratios"] = ratios(result["latency_s"]["p50"], result["latency_s"]["p99"])
        results.append(result)
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return 0 if all(r["undelivered_at_deadline"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
