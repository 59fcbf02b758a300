"""What tests script into the sandbox from outside: its clock, scripted faults, added latency,
and the log of requests it received (the control API's state, cleared by a reset).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# The request log keeps the most recent entries only: a long benchmark must not grow memory.
REQUEST_LOG_SIZE = 10_000
# Bodies above this size are not parsed for the log (upload chunks are up to 4 MB each).
MAX_LOGGED_BODY_BYTES = 1024 * 1024
# Headers whose values are credentials: the log shows that they were sent, never what.
REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-identity-header"}
)
REDACTED = "<redacted>"


@dataclass
class Fault:
    """A scripted answer for matching requests, instead of the real one."""

    id: str
    path_regex: re.Pattern[str]
    status: int
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    times: int | None = None  # answers left; None = until the faults are cleared
    fraction: float = 1.0
    latency_ms: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path_regex.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "pathRegex": self.path_regex.pattern,
            "status": self.status,
            "headers": self.headers,
            "body": self.body,
            "times": self.times,
            "fraction": self.fraction,
            "latencyMs": self.latency_ms,
        }


@dataclass
class Latency:
    identity_ms: int = 0
    graph_ms: int = 0


class Controls:
    """Clock offset, faults, latency and the request log, shared by middleware and routes."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.clock_offset = timedelta()
        self.faults: list[Fault] = []
        self.latency = Latency()
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def reset(self) -> None:
        self.clock_offset = timedelta()
        self.faults.clear()
        self.latency = Latency()
        self.requests.clear()

    # The clock: every expiry in the sandbox (codes, tokens, subscriptions) reads this, so a
    # test can jump ahead ten minutes instead of sleeping.
    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def timestamp(self) -> int:
        return int(self.now().timestamp())

    def set_clock_offset(self, seconds: float) -> None:
        self.clock_offset = timedelta(seconds=seconds)

    # Faults.
    def add_fault(
        self,
        *,
        path_regex: str,
        status: int,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        times: int | None = None,
        fraction: float = 1.0,
        latency_ms: int = 0,
    ) -> Fault:
        fault = Fault(
            id=f"fault-{next(self._ids)}",
            path_regex=re.compile(path_regex),
            status=status,
            method=method.upper() if method else None,
            headers=dict(headers or {}),
            body=body,
            times=times,
            fraction=fraction,
            latency_ms=latency_ms,
        )
        self.faults.append(fault)
        return fault

    def remove_fault(self, fault_id: str) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The first fault that applies to this request, its `times` counted down.

        A fault whose `fraction` dice roll says no lets the request through (and is not
        counted), so that `times` counts the faults actually answered.
        """
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            if fault.fraction < 1.0 and random.random() >= fault.fraction:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    # The request log.
    def record_request(
        self, method: str, path: str, query: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        """Append a log entry now (so the log keeps arrival order); the body is filled in
        by `finish_request_body` once the request body has been read.
        """
        shown: dict[str, str] = {}
        for raw_name, raw_value in headers:
            name = raw_name.decode("latin-1").lower()
            value = REDACTED if name in REDACTED_HEADERS else raw_value.decode("latin-1")
            shown[name] = f"{shown[name]}, {value}" if name in shown else value
        entry: dict[str, Any] = {
            "time": self.now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "method": method,
            "path": path,
            "query": query,
            "headers": shown,
            "body": None,
        }
        self.requests.append(entry)
        return entry


def parse_logged_body(entry: dict[str, Any], body: bytes | None) -> None:
    """Store the request's JSON body in its log entry; anything else (forms, MIME, binary
    upload chunks, bodies over the size cap) is logged as null.

    Forms are deliberately not parsed: token requests carry secrets, codes and refresh
    tokens in their form bodies.
    """
    if not body:
        return
    content_type = entry["headers"].get("content-type", "").lower()
    if "json" not in content_type:
        return
    try:
        entry["body"] = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        entry["body"] = None
