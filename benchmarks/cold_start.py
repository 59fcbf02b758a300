"""Cold start: wall time and peak RSS of `import function_app` in a fresh interpreter.

Run with `make bench`. Each sample is a new process (what a Functions worker pays when it
starts), measured with /usr/bin/time -v when present, else with resource.getrusage.
Targets (docs/testing-and-performance.md): ≤ 0.8 s and ≤ 120 MB on the CI machine.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "7"))


def settings_env() -> dict[str, str]:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    values["CA_BUNDLE"] = ""  # the sandbox's bundle exists only while it runs
    return {**os.environ, **{k: str(v) for k, v in values.items()}}


def one_run(env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `import function_app`."""
    code = "import function_app"
    time_bin = shutil.which("time", path="/usr/bin")
    if time_bin:
        start = time.perf_counter()
        done = subprocess.run(
            [time_bin, "-v", sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - start
        rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])  # type: ignore[index]
        return elapsed, rss_kb / 1024
    import resource

    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    elapsed = time.perf_counter() - start
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    env = settings_env()
    one_run(env)  # warm the file-system cache and .pyc files, as a deployed worker has them
    samples = [one_run(env) for _ in range(RUNS)]
    times = [t for t, _ in samples]
    rss = [r for _, r in samples]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"import function_app, {RUNS} fresh processes:")
    med_t, max_t = statistics.median(times), max(times)
    med_r, max_r = statistics.median(rss), max(rss)
    print(f"  wall time  median {med_t:.3f} s   max {max_t:.3f} s   (target ≤ 0.8 s)")
    print(f"  peak RSS   median {med_r:.1f} MB  max {max_r:.1f} MB  (target ≤ 120 MB)")
    ok = max_t <= 0.8 and max_r <= 120
    print("  within target" if ok else "  OVER TARGET")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
