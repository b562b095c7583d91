"""A small Server-Sent Events client for tests, and a threaded loopback server.

``SSEClient(port, path, headers=...)`` opens the stream with http.client (every read
has a timeout); :meth:`SSEClient.next` returns the next event (comments included, as
``Event(event="comment")``) or raises ``TimeoutError``.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import make_server


@dataclass
class Event:
    event: str
    data: Any = None
    id: str | None = None


class SSEClient:
    def __init__(
        self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5.0
    ) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        # the response takes over the socket (Connection: close); keep it for timeouts
        self._sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.last_id: str | None = None
        self.retry: int | None = None

    def next(self, timeout: float = 5.0) -> Event:
        """The next event or comment; TimeoutError if none within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event in time")
            assert self._sock is not None
            self._sock.settimeout(left)
            try:
                raw = self.response.readline()
            except TimeoutError:
                raise TimeoutError("no event in time") from None
            if not raw:
                raise ConnectionError("stream closed by the server")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                return Event("comment", line[1:].strip())
            if line:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value
                continue
            if not data:
                fields.clear()
                continue
            if "id" in fields:
                self.last_id = fields["id"]
            return Event(
                fields.get("event", "message"), json.loads("\n".join(data)), fields.get("id")
            )

    def next_of(self, kind: str, timeout: float = 5.0) -> Event:
        """The next event named ``kind``, skipping others (heartbeats, counts...)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event.event == kind:
                return event

    def until(self, predicate: Any, timeout: float = 5.0) -> Event:
        """The first event for which ``predicate(event)`` holds, skipping others: events
        of a notice committed just before the stream opened may still be on their way
        (they are published after commit, off the writer's thread)."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if predicate(event):
                return event

    def close(self) -> None:
        self.response.close()
        self.conn.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def serving(app: Any) -> Iterator[int]:
    """Serve ``app`` with werkzeug's threaded server on a free loopback port."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
