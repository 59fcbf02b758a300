"""Work each timer run does besides keeping grants alive, one named step at a time.

Each step reports its own figure in the run's summary (`lifecycle.run` counts): a purge
says how many rows it removed, the subscription renewal how many it renewed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class MaintenanceStep:
    # The summary count this step fills, e.g. "flows_purged".
    figure: str
    # Called with the run's start time; returns the figure.
    run: Callable[[datetime], Awaitable[int]]
