"""What the kernel says a process used (Linux /proc): peak resident size and CPU seconds,
plus the machine line and load average every recorded figure carries.

Shared by the benchmarks that run their contestants or workers as child processes. Peak RSS
is `VmHWM`, never `ru_maxrss`: for a child started with fork + exec, Linux folds the forked
copy of the parent's address space into `ru_maxrss`, so it cannot read below the parent's
size at the fork (the refresh benchmark once reported 217 MB for a child that never went
past 132 MB).
"""

from __future__ import annotations

import os
import platform
import resource
from pathlib import Path


def peak_rss_kb(pid: int | str = "self") -> int:
    """A process's peak resident size since it started, in KiB (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    if pid == "self":  # not Linux: the closest the platform offers
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    raise OSError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """CPU model, core count and Python version, as benchmarks/README.md records them."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load() -> str:
    """The 1/5/15-minute load averages: the machine is shared, so every figure says how much."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"
