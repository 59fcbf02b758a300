"""The retry rule for Graph calls: which answers are worth another attempt, and when.

Pure decisions (no I/O): `GraphClient` asks `RetryPolicy.delay_after_*` after each failed
attempt and sleeps for the answer, or stops when it is None. Clock, sleep and randomness are
injected so tests never wait.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Statuses a repeated *idempotent* request may cure (azure-core's list): timeouts, throttling,
# and transient server faults.
RETRYABLE_IDEMPOTENT = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, `Retry-After` honoured, all within a deadline.

    deadline_seconds: attempts and waits of one call end within it (then the last error).
    max_retry_after_seconds: a longer `Retry-After` is not waited for; the caller is told.
    """

    deadline_seconds: float = 60.0
    max_retry_after_seconds: float = 30.0
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 8.0
    max_attempts: int = 10

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2^(n-1))]."""
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    def delay_after_status(
        self,
        *,
        status: int,
        retry_after: float | None,
        idempotent: bool,
        attempt: int,
        elapsed: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up now."""
        if idempotent:
            retryable = status in RETRYABLE_IDEMPOTENT
        else:
            # Why: a POST sendMail/reply/forward that Graph may have carried out must never be
            # repeated (the recipient would get two mails). Only 429, and 503 with Retry-After,
            # are Graph's word that the request was not processed.
            retryable = status == 429 or (status == 503 and retry_after is not None)
        if not retryable:
            return None
        if retry_after is not None and status in (429, 503, 504):
            if retry_after > self.max_retry_after_seconds:
                return None  # longer than we are willing to hold a caller: say so instead
            delay = retry_after
        else:
            delay = self.backoff(attempt, rng)
        return self._within_budget(delay, attempt, elapsed)

    def delay_after_transport_error(
        self,
        *,
        idempotent: bool,
        attempt: int,
        elapsed: float,
        rng: random.Random | None = None,
    ) -> float | None:
        """Network errors (connect/read timeouts, resets): only idempotent requests retry,
        since a reset after the request was sent leaves unknown whether Graph acted on it."""
        if not idempotent:
            return None
        return self._within_budget(self.backoff(attempt, rng), attempt, elapsed)

    def _within_budget(self, delay: float, attempt: int, elapsed: float) -> float | None:
        if attempt >= self.max_attempts or elapsed + delay >= self.deadline_seconds:
            return None
        return delay
