"""Peer comparison: the same sequence — list 50 messages, get 10, send 5, mark 20 read — done
through this app (over HTTP, dev host), with msgraph-sdk-python (one PATCH per mark-read, and
with its batch request builder), with python-o365 (its default 200 ms `requests_delay`, and
with none), and by a bare httpx client calling Graph directly (the floor), all against one
sandbox in one run; medians of repeated rounds.

Each contestant runs in a fresh child process (so peak RSS and CPU are its own): wall time and
CPU time of client setup + the sequence, import time, peak RSS of the process (`VmHWM`, read
by the child itself at its end); the Graph requests it caused are counted from the sandbox's
request log (for this app they are made by the dev host, whose CPU time for the sequence is
reported beside, split into its event-loop thread and the rest). Install size is the size on
disk of the package and its dependency closure in the bench venv. After the measured rounds,
a few more app sequences run with the dev host's event-loop thread profiled
(benchmarks/profiled_devhost.py), to tell the app's own CPU from the dev host's HTTP server.

Run: `make bench-peers` (installs requirements-bench.txt into .venv/bench first), or
`.venv/bin/python benchmarks/peers.py [--runs 5] [--profile-rounds 3]`.
Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.procstat import load, machine, peak_rss_kb  # noqa: E402

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
# Row order of the table; the floor first, since every ratio is to it.
CONTESTANTS = {
    "floor": "bare httpx (floor)",
    "app": "this app",
    "msgraph-sdk": "msgraph-sdk, PATCH each",
    "msgraph-sdk-batch": "msgraph-sdk, `$batch`",
    "python-o365": "python-o365, default delay",
    "python-o365-nodelay": "python-o365, `requests_delay=0`",
}
# The servers run from the project's venv; the contestants from the bench venv, which has the
# peers beside the app's own pins (requirements-bench.txt).
BENCH_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"
LIST, GET, SEND, MARK = 50, 10, 5, 20
# Wall time of each step of the sequence, for the contestants that record it (the floor and
# this app: where a gap between them is, step by step).
STEPS: dict[str, float] = {}


# --- the contestants (each in its own child process) --------------------------------------
def run_floor(env: dict[str, Any]) -> None:
    """What a careful programmer writes against Graph with httpx alone: one client (one TLS
    connection, kept alive), the delegated token in a header, mark-read as one `$batch`."""
    import httpx

    headers = {"Authorization": f"Bearer {env['graph_token']}"}
    base = f"{env['graph_url']}/users/{ALICE}"
    cpu = time.process_time()
    with httpx.Client(
        base_url=env["graph_url"], headers=headers, verify=env["ca_bundle"], timeout=60
    ) as graph:
        STEPS["client_cpu_s"] = time.process_time() - cpu
        t0 = time.perf_counter()
        listed = graph.get(f"{base}/messages", params={"$top": LIST})
        listed.raise_for_status()
        ids = [m["id"] for m in listed.json()["value"]]
        t1 = time.perf_counter()
        for message_id in ids[:GET]:
            got = graph.get(f"{base}/messages/{message_id}")
            got.raise_for_status()
            got.json()
        t2 = time.perf_counter()
        for n in range(SEND):
            graph.post(f"{base}/sendMail", json={"message": outgoing_graph(n)}).raise_for_status()
        t3 = time.perf_counter()
        requests = [
            {
                "id": str(i),
                "method": "PATCH",
                "url": f"/users/{ALICE}/messages/{message_id}",
                "headers": {"Content-Type": "application/json"},
                "body": {"isRead": True},
            }
            for i, message_id in enumerate(ids[:MARK])
        ]
        batch = graph.post("/$batch", json={"requests": requests})
        batch.raise_for_status()
        assert all(r["status"] == 200 for r in batch.json()["responses"]), batch.text
        t4 = time.perf_counter()
    STEPS.update(list_s=t1 - t0, get_s=t2 - t1, send_s=t3 - t2, mark_s=t4 - t3)


def outgoing_graph(n: int) -> dict[str, Any]:
    return {
        "subject": f"Peer benchmark {n}",
        "body": {"contentType": "Text", "content": "Sent by benchmarks/peers.py."},
        "toRecipients": [{"emailAddress": {"address": BOB}}],
    }


def run_app(env: dict[str, Any]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {env['caller_token']}"}
    base = f"{env['app_url']}/api/connections/{env['connection_id']}"
    cpu = time.process_time()
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        STEPS["client_cpu_s"] = time.process_time() - cpu
        t0 = time.perf_counter()
        listed = api.get("/messages", params={"top": LIST})
        listed.raise_for_status()
        ids = [m["id"] for m in listed.json()["value"]]
        t1 = time.perf_counter()
        for message_id in ids[:GET]:
            api.get(f"/messages/{message_id}").raise_for_status()
        t2 = time.perf_counter()
        for n in range(SEND):
            api.post("/messages/send", json=outgoing_json(n)).raise_for_status()
        t3 = time.perf_counter()
        marked = api.post("/messages/bulk", json={"action": "markRead", "ids": ids[:MARK]})
        marked.raise_for_status()
        assert marked.json()["failed"] == 0
        t4 = time.perf_counter()
    STEPS.update(list_s=t1 - t0, get_s=t2 - t1, send_s=t3 - t2, mark_s=t4 - t3)


def outgoing_json(n: int) -> dict[str, Any]:
    return {
        "subject": f"Peer benchmark {n}",
        "body": {"contentType": "text", "content": "Sent by benchmarks/peers.py."},
        "toRecipients": [{"emailAddress": {"address": BOB}}],
    }


def run_msgraph(env: dict[str, Any], batch: bool = False) -> None:
    import asyncio

    import httpx
    from azure.core.credentials import AccessToken
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.messages.messages_request_builder import (
        MessagesRequestBuilder,
    )
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
        SendMailPostRequestBody,
    )
    from msgraph_core import GraphClientFactory
    from msgraph_core.requests.batch_request_content import BatchRequestContent

    class StaticToken:
        """The delegated Graph token the sandbox issued (as azure-identity would return)."""

        async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken(env["graph_token"], int(time.time()) + 3000)

        async def close(self) -> None:
            return None

        async def __aenter__(self) -> StaticToken:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def sequence() -> None:
        auth = AzureIdentityAuthenticationProvider(
            StaticToken(),  # type: ignore[arg-type]
            scopes=["https://graph.microsoft.com/.default"],
            allowed_hosts=["127.0.0.1"],
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(verify=env["ca_bundle"], timeout=60)
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = env["graph_url"]
        client = GraphServiceClient(request_adapter=adapter)
        # `client.me` relies on a URL-replace middleware that this factory does not add;
        # /users/{upn} is the same mailbox for the signed-in user.
        me = client.users.by_user_id(ALICE)
        query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=LIST)
        config = MessagesRequestBuilder.MessagesRequestBuilderGetRequestConfiguration(
            query_parameters=query
        )
        page = await me.messages.get(request_configuration=config)
        assert page is not None and page.value is not None
        ids = [m.id for m in page.value if m.id]
        for message_id in ids[:GET]:
            await me.messages.by_message_id(message_id).get()
        for n in range(SEND):
            message = Message(
                subject=f"Peer benchmark {n}",
                body=ItemBody(content_type=BodyType.Text, content="Sent by benchmarks/peers.py."),
                to_recipients=[Recipient(email_address=EmailAddress(address=BOB))],
            )
            await me.send_mail.post(SendMailPostRequestBody(message=message))
        if not batch:
            for message_id in ids[:MARK]:
                await me.messages.by_message_id(message_id).patch(Message(is_read=True))
            return
        # The SDK's batch request builder (msgraph-core), as its docs show it: each request's
        # RequestInformation from the usual builder, up to 20 in one BatchRequestContent.
        content = BatchRequestContent(
            {
                str(i): me.messages.by_message_id(message_id).to_patch_request_information(
                    Message(is_read=True)
                )
                for i, message_id in enumerate(ids[:MARK])
            }
        )
        answer = await client.batch.post(batch_request_content=content)
        responses = list((answer.responses or {}).values())  # type: ignore[union-attr]
        failed = [r.body.getvalue() for r in responses if r.status != 200 and r.body]
        assert len(responses) == MARK and not failed, failed[:1]

    asyncio.run(sequence())


def run_o365(env: dict[str, Any], requests_delay: int | None = None) -> None:
    from msal import ConfidentialClientApplication
    from O365 import Account
    from O365.connection import MSGraphProtocol
    from O365.utils.token import MemoryTokenBackend

    protocol = MSGraphProtocol()
    protocol.service_url = env["graph_url"].rstrip("/") + "/"
    # Its default (200 ms between calls) unless told otherwise.
    options = {} if requests_delay is None else {"requests_delay": requests_delay}
    account = Account(
        (env["client_id"], env["client_secret"]),
        auth_flow_type="credentials",
        tenant_id=env["tenant_id"],
        protocol=protocol,
        token_backend=MemoryTokenBackend(),  # the default writes o365_token.txt to the cwd
        **options,
    )
    con = account.con
    con.verify_ssl = env["ca_bundle"]
    # The only change for the sandbox: MSAL's authority (and no instance discovery, offline).
    con._msal_client = ConfidentialClientApplication(
        env["client_id"],
        client_credential=env["client_secret"],
        authority=env["authority"],
        instance_discovery=False,
        token_cache=con.token_backend,
        verify=env["ca_bundle"],
    )
    assert account.authenticate()
    mailbox = account.mailbox(resource=ALICE)
    messages = list(mailbox.get_messages(limit=LIST))
    for message in messages[:GET]:
        mailbox.get_message(object_id=message.object_id)
    for n in range(SEND):
        outgoing = mailbox.new_message()
        outgoing.to.add(BOB)
        outgoing.subject = f"Peer benchmark {n}"
        outgoing.body = "Sent by benchmarks/peers.py."
        assert outgoing.send()
    for message in messages[:MARK]:
        assert message.mark_as_read()


RUNNERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "floor": run_floor,
    "app": run_app,
    "msgraph-sdk": run_msgraph,
    "msgraph-sdk-batch": lambda env: run_msgraph(env, batch=True),
    "python-o365": run_o365,
    "python-o365-nodelay": lambda env: run_o365(env, requests_delay=0),
}
_MSGRAPH_IMPORT = "import msgraph, msgraph.generated.users.item.messages.messages_request_builder"
IMPORTS = {
    "floor": "import httpx",
    "app": "import httpx",
    "msgraph-sdk": _MSGRAPH_IMPORT,
    "msgraph-sdk-batch": _MSGRAPH_IMPORT,
    "python-o365": "import O365",
    "python-o365-nodelay": "import O365",
}


def child(name: str, env_path: Path) -> None:
    env = json.loads(env_path.read_text())
    started = time.perf_counter()
    exec(IMPORTS[name], {})  # noqa: S102 - a fixed import line per contestant
    imported, cpu_imported = time.perf_counter(), time.process_time()
    RUNNERS[name](env)
    done, cpu_done = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "wall_s": done - imported,
                "cpu_s": cpu_done - cpu_imported,
                "peak_rss_mb": peak_rss_kb() / 1024,
                **STEPS,
            }
        )
    )


# --- the dev host's profile: whose CPU is it -----------------------------------------------
# A function's own time goes to the first of these its file matches; the standard library
# and built-ins go to whoever called them (json.loads from shared/ is the app's, a socket
# write under uvicorn is the dev host's), except the event loop itself, which both share.
# asyncio's TLS layer is the Graph calls': the dev host serves plain HTTP, so the only TLS in
# its process is the app's, to Graph and the identity provider.
_BUCKETS = (
    ("dev host: HTTP server (uvicorn, h11)", ("/uvicorn/", "/h11/", "/httptools/")),
    ("dev host: routing, keys, invocation (devhost/)", ("/devhost/",)),
    ("azure.functions request/response types", ("/azure/functions/", "/werkzeug/")),
    (
        "app: outbound HTTP to Graph (httpx, httpcore, TLS)",
        ("/httpx/", "/httpcore/", "/anyio/", "/asyncio/sslproto.py"),
    ),
    ("app: tokens (jwt, cryptography, msal)", ("/jwt/", "/cryptography/", "/msal/")),
    ("app: pydantic", ("/pydantic/", "/pydantic_core/")),
    ("app: Azure SDK (tables, queues)", ("/azure/", "/aiohttp/")),
    ("app code (shared/, function_app.py)", ("/shared/", "function_app.py")),
    (
        "event loop (asyncio's loop, tasks and reads)",
        tuple(
            f"/{name}.py"
            for name in ("asyncio/base_events", "asyncio/events", "asyncio/tasks", "selectors")
        ),
    ),
)
_OTHER = "other"
_STDLIB = sysconfig.get_paths()["stdlib"]
_DEV_HOST_BUCKETS = 2  # the first two: what Azure's Functions host replaces


def _own_bucket(filename: str) -> str | None:
    for name, needles in _BUCKETS:
        if any(needle in filename for needle in needles):
            return name
    if filename == "~" or filename.startswith(("<", _STDLIB)):
        return None  # built-in or standard library: its caller's
    return _OTHER


def split_profile(path: Path) -> tuple[float, dict[str, float], list[tuple[str, float]]]:
    """Total profiled CPU seconds, those seconds by bucket, and the ten costliest functions."""
    raw: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    shares: dict[Any, dict[str, float]] = {}
    resolving: set[Any] = set()  # callers already on the way up: recursion, not a new owner

    def resolve(func: Any) -> dict[str, float]:
        if func in shares:
            return shares[func]
        own = _own_bucket(func[0])
        if own is not None:
            return shares.setdefault(func, {own: 1.0})
        callers = {
            caller: timing[2]
            for caller, timing in (raw[func][4] if func in raw else {}).items()
            if caller not in resolving and caller != func
        }
        total = sum(callers.values())
        if callers and not total:
            callers, total = dict.fromkeys(callers, 1.0), float(len(callers))
        resolving.add(func)
        result: dict[str, float] = defaultdict(float)
        for caller, weight in callers.items():
            for name, share in resolve(caller).items():
                result[name] += share * weight / total
        resolving.discard(func)
        if not result:
            return {_OTHER: 1.0}  # no caller left (the profile's roots): not memoised
        shares[func] = dict(result)
        return shares[func]

    buckets: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        if func[0] == "~" and "poll' of 'select." in func[2]:
            continue  # the event loop waiting for I/O: idle, not work
        for name, share in resolve(func).items():
            buckets[name] += tottime * share

    def owner(func: Any) -> str:
        shares = resolve(func)
        return max(shares, key=lambda name: shares[name])

    top = sorted(
        (
            (f"{Path(f[0]).name}:{f[1]}({f[2]}) [{owner(f)}]", v[2])
            for f, v in raw.items()
            if not (f[0] == "~" and "poll' of 'select." in f[2])
        ),
        key=lambda item: -item[1],
    )[:10]
    return sum(buckets.values()), dict(buckets), top


# --- the driver -------------------------------------------------------------------------
def closure_size(names: list[str]) -> float:
    """MB on disk of these distributions and everything they require (in this venv)."""
    seen: set[str] = set()
    todo = [n.lower() for n in names]
    total = 0
    while todo:
        name = re.split(r"[ ;<>=!~\[]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                todo.append(requirement)
    return total / 1e6


def app_requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("==")[0] for line in lines if line and not line.startswith(("#", "-"))]


def sizes() -> dict[str, Any]:
    msgraph, o365, bare = (
        closure_size(["msgraph-sdk"]),
        closure_size(["O365"]),
        closure_size(["httpx"]),
    )
    return {
        "sizes": {
            "floor": bare,
            "app": bare,
            "msgraph-sdk": msgraph,
            "msgraph-sdk-batch": msgraph,
            "python-o365": o365,
            "python-o365-nodelay": o365,
        },
        "deployed": closure_size(app_requirements()),
        "versions": {n: metadata.version(n) for n in ("msgraph-sdk", "msgraph-core", "O365")},
    }


def start_profilable_app(settings: dict[str, str], work: Path, port: int, profile: Path) -> Any:
    """The app under the dev host, as tests/support/app.start_app starts it, but through
    benchmarks/profiled_devhost.py (which profiles only when signalled)."""
    import httpx

    from tests.support.app import FUNCTION_KEY, MASTER_KEY, AppServer
    from tests.support.processes import Process, python, wait_until

    process = Process(
        "devhost",
        [python(), str(ROOT / "benchmarks" / "profiled_devhost.py"), "--port", str(port)],
        {
            **settings,
            "DEVHOST_FUNCTION_KEY": FUNCTION_KEY,
            "DEVHOST_MASTER_KEY": MASTER_KEY,
            "BENCH_HOST_PROFILE": str(profile),
        },
        work / f"devhost-{port}.log",
    )
    server = AppServer(process, port, settings)

    def ready() -> bool:
        process.ensure_running()
        try:
            with server.client() as client:
                return client.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 60, "the app (dev host)")
    except Exception:
        process.stop()
        raise
    return server


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor else "—"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    parser.add_argument(
        "--profile-rounds",
        type=int,
        default=int(os.environ.get("BENCH_PROFILE_ROUNDS", "3")),
        help="app sequences run afterwards with the dev host's event loop profiled (0: none)",
    )
    parser.add_argument("--contestant", choices=list(CONTESTANTS))
    parser.add_argument("--env")
    parser.add_argument("--sizes", action="store_true")
    args = parser.parse_args()
    if args.contestant:
        child(args.contestant, Path(args.env))
        return
    if args.sizes:
        print(json.dumps(sizes()))
        return
    if not BENCH_PYTHON.exists():
        raise SystemExit("run `make bench-peers` (it installs the peers into .venv/bench)")

    import psutil

    from tests.sandbox.graph.support import user_token
    from tests.support.app import app_settings
    from tests.support.azurite import start_azurite
    from tests.support.browser import connect
    from tests.support.processes import free_port
    from tests.support.sandbox import start_sandbox

    print(f"machine: {machine()}; {load()} at the start", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    app_port = free_port()
    profile_path = work / "devhost.prof"
    sandbox = start_sandbox(
        work, {"SANDBOX_REDIRECT_URIS": f"http://127.0.0.1:{app_port}/api/auth/callback"}
    )
    azurite = start_azurite(work)
    app = None
    profile: tuple[float, dict[str, float], list[tuple[str, float]]] | None = None
    profiled_thread_s = 0.0
    try:
        settings = app_settings(sandbox, azurite, work, app_port)
        app = start_profilable_app(settings, work, app_port, profile_path)
        with sandbox.client() as control:
            control.post(f"/_sandbox/users/{ALICE}/messages", json={"count": 60}).raise_for_status()
        env = {
            "app_url": app.url,
            "connection_id": connect(app, sandbox, ALICE),
            "caller_token": sandbox.user_token(ALICE),
            "graph_token": user_token(sandbox, ALICE),
            "graph_url": sandbox.graph_url,
            "authority": sandbox.authority,
            "tenant_id": sandbox.tenant_id,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "ca_bundle": str(sandbox.ca_bundle_path),
        }
        env_path = work / "env.json"
        env_path.write_text(json.dumps(env))
        child_env = {
            **os.environ,
            "REQUESTS_CA_BUNDLE": env["ca_bundle"],
            "SSL_CERT_FILE": env["ca_bundle"],
        }
        host_pid = app.process.popen.pid
        host = psutil.Process(host_pid)

        def host_cpu() -> tuple[float, float]:
            """(all of the dev host's CPU seconds, its event-loop thread's)."""
            total = sum(
                p.cpu_times().user + p.cpu_times().system
                for p in [host, *host.children(recursive=True)]
            )
            loop = next(
                (t.user_time + t.system_time for t in host.threads() if t.id == host_pid), 0.0
            )
            return total, loop

        def run_one(name: str) -> dict[str, float]:
            with sandbox.client() as control:
                control.delete("/_sandbox/requests").raise_for_status()
            before = host_cpu()
            out = subprocess.run(
                [str(BENCH_PYTHON), __file__, "--contestant", name, "--env", str(env_path)],
                env=child_env,
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            if out.returncode != 0:
                raise SystemExit(f"{name} failed:\n{out.stdout}\n{out.stderr}")
            after = host_cpu()
            figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
            served = name == "app"
            figures["host_cpu_s"] = after[0] - before[0] if served else 0.0
            figures["host_loop_cpu_s"] = after[1] - before[1] if served else 0.0
            figures["total_cpu_s"] = figures["cpu_s"] + figures["host_cpu_s"]
            with sandbox.client() as control:
                log = control.get("/_sandbox/requests").json()
            figures["graph_requests"] = sum(r["path"].startswith("/v1.0/") for r in log)
            return figures

        results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTESTANTS}
        began = time.monotonic()
        for run in range(args.runs + 1):  # the first round warms caches and is dropped
            for name in CONTESTANTS:
                figures = run_one(name)
                if run:
                    results[name].append(figures)
            print(f"round {run}/{args.runs} done at {time.monotonic() - began:.0f} s", flush=True)
        print(f"{load()} at the end of the measured rounds", flush=True)
        host_rss_mb = peak_rss_kb(host_pid) / 1024

        if args.profile_rounds:
            for _ in range(args.profile_rounds):
                os.kill(host_pid, signal.SIGUSR1)
                figures = run_one("app")
                os.kill(host_pid, signal.SIGUSR2)
                profiled_thread_s += figures["host_loop_cpu_s"]
            for _ in range(100):  # the last SIGUSR2 writes the profile
                time.sleep(0.1)
                if profile_path.exists() and time.time() - profile_path.stat().st_mtime > 0.3:
                    break
            profile = split_profile(profile_path)
        measured = subprocess.run(
            [str(BENCH_PYTHON), __file__, "--sizes"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        installed = json.loads(measured.stdout)
    finally:
        if app is not None:
            app.stop()
        azurite.stop()
        sandbox.stop()

    report(args, results, installed, host_rss_mb, profile, profiled_thread_s)


def report(
    args: argparse.Namespace,
    results: dict[str, list[dict[str, float]]],
    installed: dict[str, Any],
    host_rss_mb: float,
    profile: tuple[float, dict[str, float], list[tuple[str, float]]] | None,
    profiled_thread_s: float,
) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    versions = installed["versions"]
    print(
        f"\n{args.runs} rounds (after 1 warm-up), medians — {machine()}; "
        f"msgraph-sdk {versions['msgraph-sdk']} (msgraph-core {versions['msgraph-core']}), "
        f"O365 {versions['O365']}"
    )
    print(
        "| client | wall (setup + sequence) | CPU total (client + dev host) | "
        "Graph requests | peak RSS (VmHWM, client) | import | install size |"
    )
    print("|---|---|---|---|---|---|---|")
    floor = {key: med("floor", key) for key in ("wall_s", "total_cpu_s", "graph_requests")}
    floor["peak_rss_mb"] = med("floor", "peak_rss_mb")
    for name, label in CONTESTANTS.items():
        wall, cpu = med(name, "wall_s"), med(name, "total_cpu_s")
        requests, rss = med(name, "graph_requests"), med(name, "peak_rss_mb")
        cpu_text = f"{cpu * 1000:.0f} ms ({ratio(cpu, floor['total_cpu_s'])})"
        rss_text = f"{rss:.0f} MB ({ratio(rss, floor['peak_rss_mb'])})"
        size = f"{installed['sizes'][name]:.1f} MB"
        if name == "app":
            cpu_text += (
                f": {med(name, 'cpu_s') * 1000:.0f} client + {med(name, 'host_cpu_s') * 1000:.0f}"
                f" dev host (of which {med(name, 'host_loop_cpu_s') * 1000:.0f} its event-loop"
                " thread)"
            )
            rss_text += f"; dev host {host_rss_mb:.0f} MB"
            size += f" (httpx; the deployed app {installed['deployed']:.0f} MB)"
        print(
            f"| {label} | {wall * 1000:.0f} ms ({ratio(wall, floor['wall_s'])}) | {cpu_text} | "
            f"{requests:.0f} ({ratio(requests, floor['graph_requests'])}) | {rss_text} | "
            f"{med(name, 'import_s') * 1000:.0f} ms | {size} |"
        )

    print("\nWall time step by step (medians):")
    for name in ("floor", "app"):
        steps = ", ".join(
            f"{step} {med(name, f'{step}_s') * 1000:.0f} ms"
            for step in (f"list {LIST}", f"get {GET}", f"send {SEND}", f"mark {MARK}")
            for step in [step.split()[0]]
        )
        setup = med(name, "client_cpu_s") * 1000
        print(f"- {CONTESTANTS[name]}: {steps}; CPU of creating its httpx.Client: {setup:.0f} ms")

    ours = med("app", "total_cpu_s")
    print("\nTargets (issue #22, point 3), our CPU = this app's client + dev host:")
    for name, goal in (
        ("python-o365-nodelay", 0.5),
        ("python-o365", 0.5),
        ("msgraph-sdk", 0.1),
        ("msgraph-sdk-batch", 0.1),
    ):
        value = ours / med(name, "total_cpu_s")
        verdict = "met" if value <= goal else "NOT met"
        print(
            f"- our CPU ÷ {CONTESTANTS[name]}: {ours * 1000:.0f} / "
            f"{med(name, 'total_cpu_s') * 1000:.0f} ms = {value:.2f} (goal ≤ {goal}: {verdict})"
        )

    peer = med("python-o365-nodelay", "total_cpu_s")
    client, served = med("app", "cpu_s"), med("app", "host_cpu_s")
    print(
        f"- of which this app's caller (an httpx client, {med('app', 'client_cpu_s') * 1000:.0f}"
        f" ms of it creating the client) ÷ python-o365 delay 0: {client / peer:.2f}; the dev "
        f"host alone: {served / peer:.2f}; the floor's whole client: "
        f"{med('floor', 'total_cpu_s') / peer:.2f}"
    )

    if profile is None:
        return
    total, buckets, top = profile
    print(
        f"\nDev host event-loop thread, profiled over {args.profile_rounds} app sequences "
        f"(cProfile, wall clock less epoll waits; {total * 1000 / args.profile_rounds:.0f} ms "
        f"per sequence profiled, {profiled_thread_s * 1000 / args.profile_rounds:.0f} ms thread "
        "CPU by the kernel, both with the profiler's own overhead):"
    )
    print("| part | share | ms per sequence (profiled) |")
    print("|---|---|---|")
    for name, seconds in sorted(buckets.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds / total:.0%} | {seconds * 1000 / args.profile_rounds:.1f} |")
    host_share = sum(buckets.get(name, 0.0) for name, _ in _BUCKETS[:_DEV_HOST_BUCKETS]) / total
    loop, whole = med("app", "host_loop_cpu_s"), med("app", "host_cpu_s")
    dev_host_ms = loop * host_share * 1000
    print(
        f"\nDev host's own part (HTTP server + devhost/): {host_share:.0%} of the event-loop "
        f"thread ≈ {dev_host_ms:.0f} ms of the median {whole * 1000:.0f} ms dev host CPU; "
        f"other threads (queue pollers, executors): {(whole - loop) * 1000:.0f} ms."
    )
    print("Costliest functions (own time, profiled):")
    for where, seconds in top:
        print(f"  {seconds * 1000 / args.profile_rounds:7.1f} ms  {where}")


if __name__ == "__main__":
    main()
