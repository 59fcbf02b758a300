"""Cold start: what `import function_app` costs a new worker, against the floor it cannot go
below (`import azure.functions, pydantic`, the two libraries the app is declared with).

Run with `make bench`. Each sample is a new interpreter; the two imports alternate, one of
each per round, so that both see the same machine load, and medians are compared. The
import is timed inside the child (interpreter start-up is the same for both and left out);
wall time and peak RSS of the whole `import function_app` process are reported too.
Targets: ratio ≤ 1.25x; ≤ 0.8 s and ≤ 120 MB on the CI machine
(docs/testing-and-performance.md).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
APP = "import function_app"
FLOOR = "import azure.functions, pydantic"
# For reading the ratio: pydantic imports its model machinery (schema generation, validators,
# annotated_types) lazily, on the first model class; any pydantic app pays it.
ONE_MODEL = "import azure.functions, pydantic; exec('class M(pydantic.BaseModel):\\n x: int')"
# The child prints how long the import itself took (seconds) and its peak RSS (KiB).
_CHILD = (
    "import time, resource; t = time.perf_counter(); {statement}; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def settings_env() -> dict[str, str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    values["CA_BUNDLE"] = ""  # the sandbox's bundle exists only while it runs
    return {**os.environ, **{k: str(v) for k, v in values.items()}}


def one_run(statement: str, env: dict[str, str]) -> tuple[float, float, float]:
    """(import seconds, process wall seconds, peak RSS in MB) of one fresh interpreter."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(statement=statement)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    seconds, rss_kb = done.stdout.split()
    return float(seconds), wall, int(rss_kb) / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    env = settings_env()
    for statement in (FLOOR, ONE_MODEL, APP):  # warm the file-system cache and .pyc files
        one_run(statement, env)
    floor: list[float] = []
    one_model: list[float] = []
    app: list[tuple[float, float, float]] = []
    for _ in range(RUNS):
        floor.append(one_run(FLOOR, env)[0])
        one_model.append(one_run(ONE_MODEL, env)[0])
        app.append(one_run(APP, env))
    app_import = statistics.median(t for t, _, _ in app)
    floor_import = statistics.median(floor)
    model_import = statistics.median(one_model)
    ratio = app_import / floor_import
    walls = [w for _, w, _ in app]
    rss = [r for _, _, r in app]
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores (nproc), "
        f"Python {platform.python_version()}"
    )
    print(f"{RUNS} rounds, each one fresh interpreter per import, alternating:")
    print(f"  {FLOOR:<34} median {floor_import * 1000:7.1f} ms")
    print(f"  {'the same + one pydantic model':<34} median {model_import * 1000:7.1f} ms")
    print(f"  {APP:<34} median {app_import * 1000:7.1f} ms")
    print(f"  ratio                              {ratio:.2f}x  (goal ≤ 1.25x)")
    print(f"  ratio to the one-model floor       {app_import / model_import:.2f}x")
    print(
        f"  whole process: wall median {statistics.median(walls):.3f} s, max {max(walls):.3f} s"
        f" (≤ 0.8 s); peak RSS median {statistics.median(rss):.1f} MB, max {max(rss):.1f} MB"
        " (≤ 120 MB)"
    )
    ok = ratio <= 1.25 and max(walls) <= 0.8 and max(rss) <= 120
    print("  within target" if ok else "  OVER TARGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
