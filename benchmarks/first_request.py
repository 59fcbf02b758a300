"""The first request after a cold start: what a new worker pays after `import function_app`
on the first call that needs the object graph (the container is built then: MSAL, httpx,
the Azure SDK and cryptography are imported, clients created, key material loaded).

Against Azurite and the sandbox, each sample in a fresh interpreter: `import function_app`,
then `GET /api/health/ready` through its function handler (container build + both probes:
Table Storage and the key provider), then the same call again (warm). Medians.

Run with `make bench` (or `python benchmarks/first_request.py`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cold_start import cpu_model  # noqa: E402
from benchmarks.servers import local_servers  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))

_CHILD = """
import asyncio, json, time
import azure.functions as func
started = time.perf_counter()
import function_app
imported = time.perf_counter()
handler = next(
    f.get_user_function() for f in function_app.app.get_functions()
    if f.get_function_name() == "health_ready"
)
request = func.HttpRequest("GET", "http://127.0.0.1/api/health/ready", body=b"")

async def calls():
    first_started = time.perf_counter()
    first = await handler(request)
    first_done = time.perf_counter()
    second = await handler(request)
    second_done = time.perf_counter()
    assert first.status_code == second.status_code == 200, first.get_body()
    return first_done - first_started, second_done - first_done

first, warm = asyncio.run(calls())
print(json.dumps({"import": imported - started, "first": first, "warm": warm}))
"""


def one_run(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.splitlines()[-1]))


def main() -> None:
    with local_servers("bench-first-request-") as servers:
        env = {**os.environ, **servers.settings}
        one_run(env)  # warm the file-system cache, create the tables and local keys
        samples = [one_run(env) for _ in range(RUNS)]
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores (nproc), "
        f"Python {platform.python_version()}"
    )
    print(f"first request after a cold start, {RUNS} fresh interpreters, medians:")
    for key, label in (
        ("import", "import function_app"),
        ("first", "first GET /api/health/ready (container build + probes)"),
        ("warm", "second GET /api/health/ready"),
    ):
        values = [s[key] * 1000 for s in samples]
        print(f"  {label:<56} {statistics.median(values):8.1f} ms (max {max(values):.1f})")


if __name__ == "__main__":
    main()
