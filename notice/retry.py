"""The retry policy: when a failed delivery is tried again, and when it gives up.

The delay before attempt ``n + 1`` (``n`` attempts made so far) is::

    delay = min(cap, base * 2 ** (n - 1)) * (1 + jitter * u),   u uniform in [-1, 1]

so with the defaults 30 s, 60 s, 120 s ... capped at 1 h, each ±10 %. A sender's
``retry_after`` hint (HTTP 429 ``Retry-After``) replaces the computed delay, capped the
same way. After ``max_attempts`` attempts the delivery is final. Pure: ``now`` and the
random source are passed in, so tests need no clock mocking.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter and a cap.

    :param base: seconds before the second attempt.
    :param cap: the longest delay, in seconds.
    :param jitter: relative spread, 0.1 means ±10 %.
    :param max_attempts: attempts in all, the first included.
    """

    base: float = 30.0
    cap: float = 3600.0
    jitter: float = 0.1
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("retry policy needs 0 < base <= cap")
        if not 0 <= self.jitter < 1:
            raise ValueError("retry jitter must be in [0, 1)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def delay(
        self,
        attempts: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float:
        """Seconds to wait after ``attempts`` failed attempts."""
        if retry_after is not None and retry_after >= 0:
            return float(min(self.cap, retry_after))
        # the exponent is bounded so a huge attempt count cannot overflow the float
        raw = min(self.cap, self.base * 2 ** min(max(0, attempts - 1), 64))
        return float(raw * (1 + self.jitter * (2 * rand() - 1)))

    def next_attempt(
        self,
        attempts: int,
        now: datetime,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When to try again after ``attempts`` attempts, or None when out of attempts."""
        if attempts >= self.max_attempts:
            return None
        return now + timedelta(seconds=self.delay(attempts, retry_after=retry_after, rand=rand))
