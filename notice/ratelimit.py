"""A small in-process rate limit: at most ``limit`` events per ``window`` seconds per key.

It counts in this process only (each worker of a multi-process server keeps its own
counts), which is enough to slow a flood from one address down; put a shared limit in
front of the app (the proxy, Redis) when that matters.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable

#: keys kept before idle ones are dropped, so a scan of many addresses stays bounded
MAX_KEYS = 10_000


class RateLimiter:
    """Sliding-window counter per key (a client address)."""

    def __init__(
        self,
        limit: int,
        *,
        window: float = 60.0,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: Hashable) -> int:
        """Count one event for ``key``; 0 when it is allowed, else the whole seconds to
        wait before the next one would be (for ``Retry-After``). A refused event is not
        counted, so waiting that long is enough."""
        now = self._clock()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._forget_idle(now)
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            return 0

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]
        for k in idle:
            del self._hits[k]
        if len(self._hits) >= self.max_keys:  # all busy: start over rather than grow
            self._hits.clear()
