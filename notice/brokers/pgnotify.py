"""PostgreSQL LISTEN/NOTIFY broker (``NOTICE_BROKER_URL = "postgresql://..."``).

Every message goes through one ``NOTIFY`` channel (``NOTICE_BROKER_CHANNEL``) with
the user id in its JSON payload; each process holds one listening connection and fans
messages out to its streams. A ``NOTIFY`` payload is limited to 8000 bytes: a larger
notice is sent as a reference (``{"event": "notice", "id": ..., "ref": true}``) and
the stream loads it from the database.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from ..store import notify as notify_store
from .base import BrokerError, encode
from .listening import ListeningBroker

#: bytes of payload we send inline; PostgreSQL refuses more than 8000
MAX_PAYLOAD = 7900


def conninfo(url: str) -> str:
    """libpq accepts ``postgresql://``; drop a SQLAlchemy driver suffix (``+psycopg``)."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0] + sep + rest


def _payload(user_id: Any, message: dict[str, Any]) -> str:
    payload = encode(user_id, message)
    if len(payload.encode()) > MAX_PAYLOAD:
        payload = encode(user_id, {"event": message["event"], "id": message["id"], "ref": True})
    return payload


class PostgresBroker(ListeningBroker):
    """LISTEN/NOTIFY: nothing to run besides the database you already have."""

    name = "postgresql"

    def __init__(self, url: str | None = None, **options: Any) -> None:
        super().__init__(url, **options)
        if not url:
            raise BrokerError("PostgresBroker needs a postgresql:// URL")
        self._conninfo = conninfo(url)
        self._publisher: psycopg.Connection[Any] | None = None
        self._publish_lock = threading.Lock()

    def publish(self, user_id: Any, message: dict[str, Any]) -> None:
        self.publish_many([(user_id, message)])

    def publish_many(self, items: Sequence[tuple[Any, dict[str, Any]]]) -> None:
        payloads = [_payload(user_id, message) for user_id, message in items]
        if not payloads:
            return
        with self._publish_lock:
            try:
                if self._publisher is None or self._publisher.closed:
                    self._publisher = psycopg.connect(
                        self._conninfo, autocommit=True, connect_timeout=5
                    )
                notify_store.notify_many(self._publisher, self.channel, payloads)
            except psycopg.Error as exc:
                if self._publisher is not None:
                    self._publisher.close()
                self._publisher = None
                raise BrokerError(f"PostgreSQL NOTIFY failed: {exc}") from exc

    def connect_listener(self) -> Any:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            raise BrokerError(f"PostgreSQL LISTEN failed: {exc}") from exc
        notify_store.listen(conn, self.channel)
        return conn

    def listen(self, conn: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            for notify in conn.notifies(timeout=1.0):
                self.deliver(notify.payload, notify.channel)
                if stop.is_set():
                    break

    def close(self) -> None:
        super().close()
        with self._publish_lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None
