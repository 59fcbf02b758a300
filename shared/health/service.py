"""Readiness: every dependency probed concurrently, each within a deadline."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.errors import DependencyUnavailable

logger = logging.getLogger(__name__)

_DOWN = "down"


class Probe(Protocol):
    name: str

    async def check(self) -> None:
        """Return when reachable; raise (any exception) when not."""


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]  # probe name → "ok"


class HealthService:
    def __init__(self, probes: Sequence[Probe], timeout_seconds: float) -> None:
        self._probes = list(probes)
        self._timeout = timeout_seconds

    async def readiness(self) -> Readiness:
        results = await asyncio.gather(
            *(self._run(probe) for probe in self._probes), return_exceptions=False
        )
        down = [probe.name for probe, ok in zip(self._probes, results, strict=True) if ok]
        if down:
            reasons = {
                probe.name: reason
                for probe, reason in zip(self._probes, results, strict=True)
                if reason and reason != _DOWN
            }
            raise DependencyUnavailable(down, reasons)
        return Readiness(checks={probe.name: "ok" for probe in self._probes})

    async def _run(self, probe: Probe) -> str | None:
        """None when the probe passed; else its reason code, or _DOWN when it gave none."""
        try:
            await asyncio.wait_for(probe.check(), self._timeout)
        except Exception as exc:  # a probe failing in any way means "not ready"
            # A probe may say why with a `reason` code (e.g. AADSTS700213); that is all of
            # its failure that is reported: exception texts may quote what they should not.
            reason = getattr(exc, "reason", None)
            reason = reason if isinstance(reason, str) and len(reason) <= 64 else None
            logger.warning(
                "readiness: %s is down (%s%s)",
                probe.name,
                type(exc).__name__,
                f": {reason}" if reason else "",
            )
            return reason or _DOWN
        return None
