"""Outlook's per-app, per-mailbox throttling: concurrent requests, requests per window and
upload bytes per window (documented defaults 4, 10,000 per 10 min, 150 MB per 5 min; the
sandbox reads them from its settings so tests can scale them down).

Windows are fixed (they start with the first request after the previous one ended) and read
the sandbox clock, so a test can shift the clock instead of sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sandbox.graph.errors import GraphError

if TYPE_CHECKING:
    from sandbox.settings import SandboxSettings

ThrottleKey = tuple[str, str]  # (app id, mailbox UPN)


@dataclass
class _Window:
    start: float
    used: int


def throttled(limit: str, retry_after: int) -> GraphError:
    return GraphError(
        429,
        "ApplicationThrottled",
        f"Application is over its {limit} limit.",
        {"Retry-After": str(max(1, retry_after))},
    )


class MailboxLimiter:
    def __init__(self, settings: SandboxSettings, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.in_flight: dict[ThrottleKey, int] = {}
        self._requests: dict[ThrottleKey, _Window] = {}
        self._uploads: dict[ThrottleKey, _Window] = {}
        self.clock = clock

    def _window(
        self, windows: dict[ThrottleKey, _Window], key: ThrottleKey, length: int
    ) -> _Window:
        now = self.clock().timestamp()
        window = windows.get(key)
        if window is None or now - window.start >= length:
            window = _Window(start=now, used=0)
            windows[key] = window
        return window

    def _retry_after(self, window: _Window, length: int) -> int:
        return math.ceil(window.start + length - self.clock().timestamp())

    def enter(self, key: ThrottleKey) -> None:
        """Admit one request (or raise 429); the caller must `leave` once it is answered."""
        settings = self.settings
        if self.in_flight.get(key, 0) >= settings.throttle_concurrency:
            raise throttled("MailboxConcurrency", 1)
        length = settings.throttle_window_seconds
        window = self._window(self._requests, key, length)
        if window.used >= settings.throttle_requests_per_window:
            raise throttled("RequestsPerWindow", self._retry_after(window, length))
        window.used += 1
        self.in_flight[key] = self.in_flight.get(key, 0) + 1

    def leave(self, key: ThrottleKey) -> None:
        left = self.in_flight.get(key, 0) - 1
        if left > 0:
            self.in_flight[key] = left
        else:
            self.in_flight.pop(key, None)

    def charge_upload(self, key: ThrottleKey, size: int) -> None:
        """Count `size` uploaded bytes, or raise 429 when they would exceed the window."""
        length = self.settings.throttle_upload_window_seconds
        window = self._window(self._uploads, key, length)
        if window.used + size > self.settings.throttle_upload_bytes_per_window:
            raise throttled("UploadBytes", self._retry_after(window, length))
        window.used += size
