"""Traffic for the fault drills (tests/reliability): a bounded stream of API calls that records
every answer, and latency percentiles. Loopback only; every loop ends by a deadline."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True)
class Answer:
    at: float  # seconds since the traffic started
    path: str
    status: int  # 0: no HTTP answer (transport error)
    code: str | None  # problem+json `code`
    media_type: str
    seconds: float


@dataclass
class Traffic:
    """Calls `paths` in turn on a background thread until stopped; `answers` in order."""

    client: httpx.Client
    paths: list[str]
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0

    def __enter__(self) -> Traffic:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(120)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set() and self.elapsed() < 300:
            path = self.paths[turn % len(self.paths)]
            turn += 1
            self.answers.append(call(self.client, path, self._started))
            time.sleep(0.05)


def call(client: httpx.Client, path: str, started: float) -> Answer:
    begun = time.monotonic()
    try:
        response = client.get(path)
    except httpx.TransportError:
        return Answer(begun - started, path, 0, None, "", time.monotonic() - begun)
    return answer_of(response, path, begun - started, time.monotonic() - begun)


def answer_of(response: httpx.Response, path: str, at: float, seconds: float) -> Answer:
    media_type = response.headers.get("content-type", "").split(";")[0]
    code = None
    if media_type == "application/problem+json":
        code = response.json().get("code")
    return Answer(at, path, response.status_code, code, media_type, seconds)


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@dataclass(frozen=True)
class LoadResult:
    statuses: dict[int, int]
    latencies: list[float]
    seconds: float

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def describe(self) -> str:
        ms = {p: self.percentile(p) * 1000 for p in (50, 90, 99)}
        rate = len(self.latencies) / self.seconds
        return (
            f"{len(self.latencies)} requests in {self.seconds:.1f} s ({rate:.0f}/s), statuses "
            f"{dict(sorted(self.statuses.items()))}, latency p50 {ms[50]:.0f} ms, "
            f"p90 {ms[90]:.0f} ms, p99 {ms[99]:.0f} ms, max {max(self.latencies) * 1000:.0f} ms, "
            f"mean {statistics.fmean(self.latencies) * 1000:.0f} ms"
        )


async def load(
    base_url: str,
    requests: list[tuple[str, dict[str, str]]],
    *,
    concurrency: int,
    connections: int,
    seconds: float,
) -> LoadResult:
    """`concurrency` callers sharing `connections` keep-alive connections, each calling the
    (path, headers) pairs in turn until `seconds` have passed."""
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    started = time.monotonic()
    deadline = started + seconds
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:

        async def caller(offset: int) -> None:
            turn = offset
            while time.monotonic() < deadline:
                path, headers = requests[turn % len(requests)]
                turn += 1
                begun = time.monotonic()
                try:
                    response = await client.get(path, headers=headers)
                    status = response.status_code
                except httpx.TransportError:
                    status = 0
                latencies.append(time.monotonic() - begun)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return LoadResult(statuses, latencies, time.monotonic() - started)
