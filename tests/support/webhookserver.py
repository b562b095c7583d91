"""A real HTTP server on the loopback interface for webhook end-to-end tests.

Every request (any method, any path) is recorded. Responses can be scripted::

    with WebhookServer() as hook:
        hook.script([500, (429, {"Retry-After": "1"}), 410, "timeout"])
        requests.post(hook.url, json={...}, timeout=2)

When the script is empty the server answers ``200`` with body ``ok``.

Misbehaving receivers, each bounded so a client that does not give up still ends::

    hook.script(["drip"])              # status line and headers, one byte per drip_interval
    hook.script([("drip-body", 503)])  # headers at once, then the body a byte at a time
    hook.script([("endless", 503)])    # headers at once, then body bytes as fast as it can

A drip stops after ``drip_limit`` seconds and closes the connection; an endless body
stops after ``endless_limit`` bytes or when the client hangs up. ``streamed`` lists the
body bytes each endless answer got out before that.
"""

from __future__ import annotations

import http
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReceivedRequest", "ScriptItem", "WebhookServer"]

# 503 | (429, {"Retry-After": "1"}) | (500, {}, b"body") | "timeout" | "drip"
# | ("drip-body", 503) | ("endless", 503)
ScriptItem = int | tuple | str

#: answers that misbehave on purpose (see the module doc)
_MODES = ("drip", "drip-body", "endless")


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]  # as sent (original casing); see header() for lookups
    body: bytes
    method: str = "POST"
    #: the client's (host, port): one port for two requests means a reused connection
    peer: tuple[str, int] = ("", 0)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes | None = None
    delay: bool = False
    mode: str | None = None  # one of _MODES


def _parse_item(item: ScriptItem) -> _Response:
    if item == "timeout":
        return _Response(200, {}, b"ok", delay=True)
    if item == "drip":
        return _Response(200, {}, b"ok", mode="drip")
    if isinstance(item, tuple) and len(item) == 2 and item[0] in _MODES:
        return _Response(int(item[1]), {}, None, mode=item[0])
    if isinstance(item, bool):
        raise ValueError(f"bad script item: {item!r}")
    if isinstance(item, int):
        status, headers, body = item, {}, None
    elif isinstance(item, tuple) and len(item) in (2, 3) and isinstance(item[0], int):
        status, headers = item[0], dict(item[1])
        body = item[2] if len(item) == 3 else None
        if isinstance(body, str):
            body = body.encode()
    else:
        raise ValueError(f"bad script item: {item!r}")
    if not 100 <= status <= 599:
        raise ValueError(f"bad status in script: {status!r}")
    return _Response(status, {str(k): str(v) for k, v in headers.items()}, body)


def _default_body(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"scripted"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # never let a stuck client block stop()
    owner: WebhookServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that gave up (e.g. on "timeout") cause broken pipes; not interesting.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real webhook receivers
    timeout = 10  # bound idle keep-alive connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        owner = self.server.owner
        body = self._read_body()
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        peer = (str(self.client_address[0]), int(self.client_address[1]))
        owner._record(ReceivedRequest(self.path, headers, body, self.command, peer))
        response = owner._next_response()
        if response.mode is not None:
            self.close_connection = True
            try:
                self._misbehave(response)
            except OSError:
                pass  # the client hung up: what these answers wait for
            return
        if response.delay and owner._stopping.wait(owner.timeout_sleep):
            self.close_connection = True
            return  # server is shutting down: just drop the connection
        status = response.status
        if status < 200 or status in (204, 304):
            payload = b""
        else:
            payload = response.body if response.body is not None else _default_body(status)
        self.send_response(status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if not any(k.lower() == "content-type" for k in response.headers):
            self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)

    def _misbehave(self, response: _Response) -> None:
        owner = self.server.owner
        head = f"HTTP/1.1 {response.status} Scripted\r\nContent-Type: text/plain\r\n"
        if response.mode == "drip":
            # headers and a body fit for the status, but a byte every drip_interval
            payload = (head + "Content-Length: 2\r\n\r\nok").encode()
            self._drip(payload)
        elif response.mode == "drip-body":
            self.wfile.write((head + "Content-Length: 1000\r\n\r\n").encode())
            self._drip(b"x" * 1000)
        else:  # endless: no length, the body ends when the connection does
            self.wfile.write((head + "Connection: close\r\n\r\n").encode())
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < owner.endless_limit and not owner._stopping.is_set():
                    self.wfile.write(chunk)
                    sent += len(chunk)
            finally:
                with owner._lock:
                    owner.streamed.append(sent)

    def _drip(self, payload: bytes) -> None:
        owner = self.server.owner
        ends = time.monotonic() + owner.drip_limit
        for i in range(len(payload)):
            if time.monotonic() >= ends:
                return
            self.wfile.write(payload[i : i + 1])
            if owner._stopping.wait(owner.drip_interval):
                return

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class WebhookServer:
    """Threaded loopback HTTP server recording requests; ``url`` valid after start()."""

    def __init__(self, host: str = "127.0.0.1", path: str = "/hook") -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("WebhookServer only listens on loopback addresses")
        self.host = "127.0.0.1"
        self.port = 0
        self.path = path if path.startswith("/") else "/" + path
        self.timeout_sleep = 3.0
        self.drip_interval = 0.5
        self.drip_limit = 6.0
        self.endless_limit = 256 * 1024 * 1024
        #: body bytes each endless answer wrote before the client hung up (or the limit)
        self.streamed: list[int] = []
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._script: deque[_Response] = deque()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.origin + self.path

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> WebhookServer:
        if self._httpd is not None:
            raise RuntimeError("WebhookServer already started")
        self._stopping.clear()
        httpd = _Server((self.host, 0), _RequestHandler)
        httpd.owner = self
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"WebhookServer:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wake handlers sleeping on "timeout"
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observations / scripting -------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Snapshot (a copy) of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def script(self, items: list[ScriptItem]) -> None:
        """Queue responses, one per request: ``503``, ``(429, {"Retry-After": "1"})``,
        ``(500, {}, b"body")``, ``"timeout"`` (sleep ``timeout_sleep`` s, then 200),
        ``"drip"``, ``("drip-body", status)`` or ``("endless", status)`` (module doc)."""
        parsed = [_parse_item(item) for item in items]
        with self._lock:
            self._script.extend(parsed)

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._script.clear()
            self.streamed.clear()

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_response(self) -> _Response:
        with self._lock:
            if self._script:
                return self._script.popleft()
        return _Response(200, {}, b"ok")
