"""A demo sender that fails each notice's first attempt, to show retries and the
operations page without a real provider:
``NOTICE_SENDERS='["log", "example_app.senders:FlakySender"]' python -m example_app``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from notice import Sender, TransientError

logger = logging.getLogger("example_app")


class FlakySender(Sender):
    """Fails the first time it sees a notice (like a provider timing out), then
    succeeds. Remembers what it has seen in memory, per process."""

    name = "flaky"

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self.sent: list[int] = []

    def send(self, notice: Any) -> None:
        with self._lock:
            first = notice.id not in self._seen
            self._seen.add(notice.id)
        if first:
            raise TransientError("demo provider timed out (first attempt always fails)")
        self.sent.append(notice.id)
        logger.info("flaky sender delivered notice %s on a retry", notice.id)
