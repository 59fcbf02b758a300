"""Peak memory while sending one 35 MB attachment through `POST messages/send`.

In-process: the function's handler is called with a real `func.HttpRequest` whose body is
the JSON a caller sends (base64 `contentBytes`), as the Functions host hands it over. Peak
RSS is read from /proc (VmHWM, reset through /proc/self/clear_refs just before the call),
so only this request's growth is measured. Reported twice: from the moment the body is in
memory (what the handler adds), and from before it arrived (the body included).

Run with `make bench-write` (or `python benchmarks/send_memory.py`). Target
(docs/testing-and-performance.md): growth ≤ 3x the attachment size.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import azure.functions as func

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bulk import connect  # noqa: E402

from benchmarks.servers import local_servers  # noqa: E402
from tests.support.sandbox import SandboxServer  # noqa: E402

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
SIZE = int(os.environ.get("BENCH_ATTACHMENT_BYTES", str(35 * 1024 * 1024)))
MB = 1024 * 1024


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def main() -> None:
    with local_servers("bench-send-") as servers:
        os.environ.update(servers.settings)
        body_file = servers.work / "body.json"
        digest = write_body(body_file)
        await run(servers.sandbox, body_file, digest)


def write_body(path: Path) -> str:
    """The request body, built before measuring (the caller's memory, not ours)."""
    data = os.urandom(SIZE)
    body = {
        "subject": "35 MB",
        "toRecipients": [{"emailAddress": {"address": BOB}}],
        "attachments": [{"name": "big.bin", "contentBytes": base64.b64encode(data).decode()}],
    }
    path.write_text(json.dumps(body))
    return hashlib.sha256(data).hexdigest()


async def run(sandbox: SandboxServer, body_file: Path, digest: str) -> None:
    import function_app

    container, connection_id, _ = await connect(sandbox)
    handler = next(
        f.get_user_function()
        for f in function_app.app.get_functions()
        if f.get_function_name() == "messages_send"
    )
    token = sandbox.user_token(ALICE)

    def request(body: bytes) -> func.HttpRequest:
        return func.HttpRequest(
            "POST",
            f"http://127.0.0.1/api/connections/{connection_id}/messages/send",
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            route_params={"connectionId": connection_id},
            body=body,
        )

    small = json.dumps({"subject": "warm-up", "toRecipients": [{"emailAddress": {"address": BOB}}]})
    warm = await handler(request(small.encode()))  # token caches, JWKS, connections
    assert warm.status_code == 202, warm.get_body()[:300]

    gc.collect()
    before_body = status_kb("VmRSS")
    raw = body_file.read_bytes()  # noqa: ASYNC240 - the measured request's body, read once
    with_body = status_kb("VmRSS")
    reset_peak()
    response = await handler(request(raw))
    peak = status_kb("VmHWM")
    assert response.status_code == 202, response.get_body()[:300]
    message_id = json.loads(response.get_body())["id"]
    await container.aclose()
    verify(sandbox, message_id, digest)

    size_mb = SIZE / MB
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"send one {size_mb:.0f} MiB attachment ({len(raw) / MB:.1f} MiB JSON body):")
    handler_growth = (peak - with_body) / 1024
    total_growth = (peak - before_body) / 1024
    print(f"  RSS before the body {before_body / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB")
    print(f"  growth in the handler: {handler_growth:.0f} MiB ({handler_growth / size_mb:.2f}x)")
    print(f"  growth with the body:  {total_growth:.0f} MiB ({total_growth / size_mb:.2f}x)")


def verify(sandbox: SandboxServer, message_id: str, digest: str) -> None:
    """The attachment arrived intact in Sent Items (size from the mailbox view)."""
    with sandbox.client() as control:
        view = control.get(f"/_sandbox/users/{ALICE}/mailbox").json()
    sent = next(m for m in view["messages"] if m["id"] == message_id)
    assert [a["size"] for a in sent["attachments"]] == [SIZE], sent["attachments"]
    del digest  # the e2e test checks the bytes; here the size is enough


if __name__ == "__main__":
    asyncio.run(main())
