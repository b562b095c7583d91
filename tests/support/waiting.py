"""Polling helper for tests that wait on background servers."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` every 10 ms until it is truthy or ``timeout`` seconds pass.

    Returns True as soon as the predicate holds, False on timeout (the predicate
    gets one last check at the deadline).
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
