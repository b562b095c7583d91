"""A broker with one background listener per process (Redis, PostgreSQL).

The listener is started lazily by the first :meth:`~ListeningBroker.subscribe` in a
process, so a pre-forking server starts one in each worker and none in the master.
When its connection drops it reconnects with backoff and then tells every stream to
resync from the database, since messages sent meanwhile are gone.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from .base import BadMessage, Broker, decode

logger = logging.getLogger("notice")


class ListeningBroker(Broker):
    """Subclasses implement :meth:`connect_listener` and :meth:`listen`."""

    #: seconds a listener waits between reconnection attempts, doubling up to the cap
    backoff = (0.2, 5.0)

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pid = 0

    def connect_listener(self) -> Any:
        """Open a connection subscribed to this broker's channels; return it once the
        server has confirmed the subscription."""
        raise NotImplementedError

    def listen(self, conn: Any, stop: threading.Event) -> None:
        """Feed messages from ``conn`` into :attr:`hub` until ``stop`` is set; raise
        when the connection fails."""
        raise NotImplementedError

    def deliver(self, raw: str | bytes, channel: str) -> None:
        """Decode one received message and hand it to this process's streams. A
        malformed one (anyone who can publish on the channel can send it) is logged and
        skipped: it says nothing about the connection, and treating it as a lost one
        would make every stream reload from the database."""
        try:
            key, message = decode(raw)
        except BadMessage:
            # its length and channel only: the content may be someone's private notice
            logger.warning(
                "%s broker: skipped a malformed message of %d bytes on %s",
                self.name,
                len(raw),
                channel,
            )
            return
        self.hub.dispatch(key, message)

    def close_listener(self, conn: Any) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            pass

    def start(self) -> None:
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            self._stop = threading.Event()
            conn = self.connect_listener()
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, args=(conn, self._stop), name=f"notice-{self.name}", daemon=True
            )
            self._thread.start()

    def _running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def _run(self, conn: Any, stop: threading.Event) -> None:
        delay = self.backoff[0]
        while not stop.is_set():
            try:
                self.listen(conn, stop)
            except Exception as exc:  # noqa: BLE001 - reconnect below; streams resync
                logger.warning("%s broker listener lost its connection: %s", self.name, exc)
                self.close_listener(conn)
                conn = None
                while conn is None and not stop.wait(delay):
                    try:
                        conn = self.connect_listener()
                    except Exception as again:  # noqa: BLE001
                        logger.warning("%s broker: reconnect failed: %s", self.name, again)
                        delay = min(delay * 2, self.backoff[1])
                if conn is None:
                    return
                delay = self.backoff[0]
                self.hub.lost_all()
        if conn is not None:
            self.close_listener(conn)

    def close(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=3)
        self._thread = None
