"""An in-memory outbox, for tests (like Flask-Mail's outbox)."""

from __future__ import annotations

import threading
from typing import Any

from .base import Sender


class MemorySender(Sender):
    """Keeps every notice it is given in :attr:`outbox`; thread-safe."""

    name = "memory"
    # a list append under a lock that only other sends take
    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outbox: list[Any] = []
        self._targets: list[tuple[int, str]] = []

    @property
    def outbox(self) -> list[Any]:
        """A copy of the notices sent so far, oldest first."""
        with self._lock:
            return list(self._outbox)

    def send_to(self, notice: Any, target: str) -> None:
        with self._lock:
            self._outbox.append(notice)
            self._targets.append((notice.id, target))

    def send(self, notice: Any) -> None:
        self.send_to(notice, "")

    def reset(self) -> None:
        """Empty the outbox."""
        with self._lock:
            self._outbox.clear()
            self._targets.clear()
