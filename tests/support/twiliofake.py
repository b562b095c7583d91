"""A loopback fake of Twilio's Messages API that checks the protocol.

``POST /2010-04-01/Accounts/<sid>/Messages.json`` as Twilio serves it:

* HTTP Basic auth must be ``<sid>:<token>`` of the fake's account, and the path's
  account must be that sid (else ``401``, code 20003);
* the body must be ``application/x-www-form-urlencoded`` with ``To``, one of ``From`` or
  ``MessagingServiceSid`` and a ``Body`` of 1 to 1600 characters (else ``400`` with
  Twilio's codes 21604, 21603, 21602 or 21617);
* ``To`` must be E.164 and not in ``invalid`` (else ``400``, code 21211);
* accepted: ``201`` with Twilio's message JSON (``sid`` ``SM...``, ``status``
  ``queued``, or ``accepted`` through a messaging service), recorded in ``messages``.

``script((status, headers, json_body), ...)`` queues answers given before any check
(a 429 with ``Retry-After``, a 500, a 201 with ``status: failed``); a ``None`` body
becomes Twilio's error JSON for the status, ``bytes`` are sent as they are.
``requests`` counts every POST, ``rejected`` lists ``(code, why)`` of refused ones.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

PATH = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Messages\.json")
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
Answer = tuple[int, dict[str, str], "dict[str, Any] | bytes | None"]

ERRORS = {
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "An internal server error has occurred"),
    503: (20503, "Service is unavailable"),
}


def error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class TwilioFake:
    def __init__(
        self,
        sid: str = "AC" + "0" * 32,
        token: str = "fake-auth-token",
        invalid: tuple[str, ...] = (),
    ) -> None:
        self.sid, self.token = sid, token
        self.invalid = set(invalid)
        self.messages: list[dict[str, str]] = []
        self.rejected: list[tuple[int, str]] = []
        self.requests = 0
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in one go (no delayed ACK)

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, body = fake._answer(self.path, dict(self.headers), raw)
                self._reply(status, headers, body)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(405, {}, error(405, 20004, "Method not allowed"))

            def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TwilioFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def _answer(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | bytes]:
        with self._lock:
            self.requests += 1
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            status, extra, body = scripted
            if body is None:
                code, message = ERRORS.get(status, (20500, "error"))
                body = error(status, code, message)
            return status, extra, body
        match = PATH.fullmatch(path)
        if match is None:
            return self._refuse(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.sid}:{self.token}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}" or match[1] != self.sid:
            return self._refuse(401, 20003, "Authenticate")
        if headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return self._refuse(400, 20001, "body must be form-encoded")
        try:
            fields = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, 20001, "unreadable form body")
        if any(len(v) != 1 for v in fields.values()):
            return self._refuse(400, 20001, "a field is repeated")
        form = {k: v[0] for k, v in fields.items()}
        to, body = form.get("To", ""), form.get("Body", "")
        if not to:
            return self._refuse(400, 21604, "A 'To' phone number is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._refuse(400, 21603, "A 'From' phone number is required.")
        if not body:
            return self._refuse(400, 21602, "Message body is required.")
        if len(body) > 1600:
            return self._refuse(400, 21617, "The concatenated message body exceeds the 1600 "
                                "character limit.")
        if not E164.fullmatch(to) or to in self.invalid:
            # Twilio echoes the number; the sender must not copy this message anywhere
            return self._refuse(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        with self._lock:
            self.messages.append(form)
            sid = f"SM{len(self.messages):032x}"
        via_service = "MessagingServiceSid" in form
        return 201, {}, {
            "sid": sid,
            "account_sid": self.sid,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "accepted" if via_service else "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "price": None,
            "uri": f"/2010-04-01/Accounts/{self.sid}/Messages/{sid}.json",
        }

    def _refuse(
        self, status: int, code: int, message: str
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.rejected.append((code, message))
        return status, {}, error(status, code, message)
