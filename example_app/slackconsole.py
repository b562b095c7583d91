"""A console "Slack" for the demo: a loopback incoming webhook that prints every
message it gets. Turned on with ``EXAMPLE_SLACK=1 python -m example_app``: every event
then posts ONE message to the shared channel "team" (a shared-channel route), however
many users it notifies."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        print(f"[slack #team] {body.get('text', '')!r}", flush=True)  # noqa: T201
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def start() -> dict[str, Any]:
    """Start the console webhook; return the config that routes to it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/console"
    return {
        "NOTICE_SLACK_HOSTS": ["127.0.0.1"],
        "NOTICE_SLACK_SHARED": {"team": url},
        "NOTICE_SHARED_ROUTES": {"*": {"slack": ["team"]}},
    }
