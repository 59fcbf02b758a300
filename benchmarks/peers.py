"""Peer comparison: the same sequence — list 50 messages, get 10, send 5, mark 20 read — done
through this app (over HTTP, dev host), with msgraph-sdk-python and with python-o365, all
against one sandbox in one run; medians of repeated runs.

Each contestant runs in a fresh child process (so peak RSS and CPU are its own): wall time and
CPU time of client setup + the sequence, import time, peak RSS of the process; the Graph
requests it caused are counted from the sandbox's request log (for this app they are made by
the dev host, whose CPU time for the sequence is reported beside). Install size is the size on
disk of the package and its dependency closure in the bench venv.

Run: `make bench-peers` (installs requirements-bench.txt into .venv/bench first), or
`.venv/bench/bin/python benchmarks/peers.py [--runs 5]`. Figures: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
CONTESTANTS = ("app", "msgraph-sdk", "python-o365")
# The servers run from the project's venv; the contestants from the bench venv, which has the
# peers beside the app's own pins (requirements-bench.txt).
BENCH_PYTHON = ROOT / ".venv" / "bench" / "bin" / "python"
LIST, GET, SEND, MARK = 50, 10, 5, 20


# --- the contestants (each in its own child process) --------------------------------------
def run_app(env: dict[str, Any]) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {env['caller_token']}"}
    base = f"{env['app_url']}/api/connections/{env['connection_id']}"
    with httpx.Client(base_url=base, headers=headers, timeout=60) as api:
        listed = api.get("/messages", params={"top": LIST})
        listed.raise_for_status()
        ids = [m["id"] for m in listed.json()["value"]]
        for message_id in ids[:GET]:
            api.get(f"/messages/{message_id}").raise_for_status()
        for n in range(SEND):
            api.post("/messages/send", json=outgoing_json(n)).raise_for_status()
        marked = api.post("/messages/bulk", json={"action": "markRead", "ids": ids[:MARK]})
        marked.raise_for_status()
        assert marked.json()["failed"] == 0


def outgoing_json(n: int) -> dict[str, Any]:
    return {
        "subject": f"Peer benchmark {n}",
        "body": {"contentType": "text", "content": "Sent by benchmarks/peers.py."},
        "toRecipients": [{"emailAddress": {"address": BOB}}],
    }


def run_msgraph(env: dict[str, Any]) -> None:
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
        # `client.me` relies on a URL-replace middleware that this factory does not add;
        # /users/{upn} is the same mailbox for the signed-in user.
        me = GraphServiceClient(request_adapter=adapter).users.by_user_id(ALICE)
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
        for message_id in ids[:MARK]:
            await me.messages.by_message_id(message_id).patch(Message(is_read=True))

    asyncio.run(sequence())


def run_o365(env: dict[str, Any]) -> None:
    from msal import ConfidentialClientApplication
    from O365 import Account
    from O365.connection import MSGraphProtocol
    from O365.utils.token import MemoryTokenBackend

    protocol = MSGraphProtocol()
    protocol.service_url = env["graph_url"].rstrip("/") + "/"
    account = Account(
        (env["client_id"], env["client_secret"]),
        auth_flow_type="credentials",
        tenant_id=env["tenant_id"],
        protocol=protocol,
        token_backend=MemoryTokenBackend(),  # the default writes o365_token.txt to the cwd
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


RUNNERS = {"app": run_app, "msgraph-sdk": run_msgraph, "python-o365": run_o365}
IMPORTS = {
    "app": "import httpx",
    "msgraph-sdk": "import msgraph, msgraph.generated.users.item.messages.messages_request_builder",
    "python-o365": "import O365",
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
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    parser.add_argument("--contestant", choices=CONTESTANTS)
    parser.add_argument("--env")
    parser.add_argument("--sizes", action="store_true")
    args = parser.parse_args()
    if args.contestant:
        child(args.contestant, Path(args.env))
        return
    if args.sizes:
        sizes = {
            "app": closure_size(["httpx"]),
            "msgraph-sdk": closure_size(["msgraph-sdk"]),
            "python-o365": closure_size(["O365"]),
            "deployed": closure_size(app_requirements()),
        }
        print(json.dumps(sizes))
        return
    if not BENCH_PYTHON.exists():
        raise SystemExit("run `make bench-peers` (it installs the peers into .venv/bench)")

    import psutil

    from tests.sandbox.graph.support import user_token
    from tests.support.app import app_settings, start_app
    from tests.support.azurite import start_azurite
    from tests.support.browser import connect
    from tests.support.processes import free_port
    from tests.support.sandbox import start_sandbox

    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    app_port = free_port()
    sandbox = start_sandbox(
        work, {"SANDBOX_REDIRECT_URIS": f"http://127.0.0.1:{app_port}/api/auth/callback"}
    )
    azurite = start_azurite(work)
    app = None
    try:
        app = start_app(app_settings(sandbox, azurite, work, app_port), work, app_port)
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
        host = psutil.Process(app.process.popen.pid)

        def host_cpu() -> float:
            procs = [host, *host.children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

        results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTESTANTS}
        for run in range(args.runs + 1):  # the first round warms caches and is dropped
            for name in CONTESTANTS:
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
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                figures["server_cpu_s"] = host_cpu() - before if name == "app" else 0.0
                with sandbox.client() as control:
                    log = control.get("/_sandbox/requests").json()
                figures["graph_requests"] = sum(r["path"].startswith("/v1.0/") for r in log)
                if run:
                    results[name].append(figures)
        measured = subprocess.run(
            [str(BENCH_PYTHON), __file__, "--sizes"],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        sizes = json.loads(measured.stdout)
        deployed = sizes["deployed"]
    finally:
        if app is not None:
            app.stop()
        azurite.stop()
        sandbox.stop()

    print(
        f"\n{args.runs} runs (after 1 warm-up), medians — {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        "| client | wall (setup + sequence) | CPU (client) | CPU (dev host) | import | "
        "Graph requests | peak RSS (client) | install size |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in CONTESTANTS:
        rows = results[name]

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        size = f"{sizes[name]:.1f} MB"
        if name == "app":
            size += f" (httpx closure; the deployed app: {deployed:.0f} MB)"
        server = f"{med('server_cpu_s') * 1000:.0f} ms" if name == "app" else "—"
        print(
            f"| {name} | {med('wall_s') * 1000:.0f} ms | {med('cpu_s') * 1000:.0f} ms | {server} | "
            f"{med('import_s') * 1000:.0f} ms | {med('graph_requests'):.0f} | "
            f"{med('peak_rss_mb'):.0f} MB | {size} |"
        )


if __name__ == "__main__":
    main()
