"""The dev host with an on-demand profile of its event-loop thread, for benchmarks/peers.py.

`python benchmarks/profiled_devhost.py [devhost arguments]` runs `python -m devhost` unchanged
until it receives SIGUSR1, then profiles the main thread (uvicorn, the dev host's routing and
every coroutine handler of the app run there) until SIGUSR2, when the profile is written to
`$BENCH_HOST_PROFILE`. The timer is cProfile's default (wall clock): a thread-CPU clock is a
system call per event here and made the profiled thread six times slower, distorting the
shares. Time spent waiting in `epoll` is idle and is left out when the profile is read.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_profiler = cProfile.Profile()


def _start(_signal: int, _frame: FrameType | None) -> None:
    _profiler.enable()


def _stop(_signal: int, _frame: FrameType | None) -> None:
    _profiler.disable()
    _profiler.dump_stats(os.environ["BENCH_HOST_PROFILE"])


if __name__ == "__main__":
    from devhost.__main__ import main

    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    sys.exit(main(sys.argv[1:]))
