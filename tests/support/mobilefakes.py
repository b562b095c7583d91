"""Loopback fakes of Firebase Cloud Messaging (HTTP v1 and Google's OAuth2 token
endpoint), checking the protocol as the real services do.

:class:`FCMFake` (HTTP/1.1):

* ``POST /token``: the OAuth2 JWT-bearer grant (RFC 7523) of a service account. The
  form's ``grant_type`` must be ``urn:ietf:params:oauth:grant-type:jwt-bearer`` and its
  ``assertion`` an RS256 JWT signed by the test service account's key (``kid`` its key
  id) with ``iss`` its email, ``aud`` Google's token endpoint, the FCM ``scope`` and a
  valid ``iat``/``exp``; answers an access token, else ``400 invalid_grant``.
* ``POST /v1/projects/<project>/messages:send``: ``Authorization: Bearer`` one of those
  tokens, unexpired (else ``401 UNAUTHENTICATED``), and a message with ``token``,
  ``notification.title``/``body`` and ``data`` of strings only (else ``400
  INVALID_ARGUMENT`` naming the field). Tokens in ``unregistered`` get ``404
  UNREGISTERED``; tokens in ``invalid`` ``400 INVALID_ARGUMENT`` on ``message.token``.

``script(*answers)`` queues ``(status, headers, body)`` answers for the next
sends; ``received`` lists the accepted messages (with their headers); ``rejected``
what was refused and why.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_FCM_SEND = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_HEX_TOKEN = re.compile(r"^(?:[0-9a-f]{2}){32,}$")

Answer = tuple[int, dict[str, str], bytes]


def _fcm_error(status: int, code: str, message: str, field: str | None = None) -> Answer:
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
    ]
    if field:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    status_name = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 401: "UNAUTHENTICATED"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": status_name.get(status, code),
            "details": details,
        }
    }
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class FCMFake:
    """Google's token endpoint and FCM's send API on one loopback HTTP server."""

    def __init__(self, project: str = "notice-test") -> None:
        self.project = project
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = key.public_key()
        self.key_id = secrets.token_hex(20)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.client_email = f"notice@{project}.iam.gserviceaccount.com"
        self.expires_in = 3600
        #: access token -> when it expires (time.time())
        self.tokens: dict[str, float] = {}
        self.grants = 0
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.received: list[tuple[Any, dict[str, str]]] = []
        self.rejected: list[str] = []
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/token":
                    status, headers, body = fake._grant(dict(self.headers), raw)
                else:
                    status, headers, body = fake._send(self.path, dict(self.headers), raw)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.service_account: dict[str, str] = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1234567890",
            "token_uri": f"{self.url}/token",
        }
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FCMFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def _reject(self, why: str, answer: Answer) -> Answer:
        with self._lock:
            self.rejected.append(why)
        return answer

    def _grant(self, headers: dict[str, str], raw: bytes) -> Answer:
        def refuse(why: str) -> Answer:
            body = json.dumps({"error": "invalid_grant", "error_description": why}).encode()
            return self._reject(why, (400, {"Content-Type": "application/json"}, body))

        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return refuse("grant is not form-encoded")
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != JWT_BEARER:
            return refuse("grant_type is not jwt-bearer")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=self.client_email,
                options={"require": ["iat", "exp", "iss", "aud", "scope"]},
            )
        except jwt.PyJWTError as exc:
            return refuse(f"assertion: {type(exc).__name__}")
        if header.get("kid") != self.key_id:
            return refuse("assertion kid is not the service account's key id")
        if claims["scope"].split() != [FCM_SCOPE]:
            return refuse(f"scope {claims['scope']!r}")
        if claims["exp"] - claims["iat"] > 3600:
            return refuse("assertion lives longer than an hour")
        token = f"ya29.{secrets.token_urlsafe(48)}"
        with self._lock:
            self.grants += 1
            self.tokens[token] = time.time() + self.expires_in
        body = {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def _send(self, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        found = _FCM_SEND.match(path)
        if found is None or found.group(1) != self.project:
            return self._reject(f"path {path}", _fcm_error(404, "NOT_FOUND", "no such project"))
        auth = headers.get("Authorization", "")
        bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self._lock:
            expires = self.tokens.get(bearer)
        if expires is None or expires < time.time():
            return self._reject(
                "bearer", _fcm_error(401, "UNAUTHENTICATED", "invalid authentication credentials")
            )
        if not headers.get("Content-Type", "").startswith("application/json"):
            return self._reject("content type", _fcm_error(400, "INVALID_ARGUMENT", "not JSON"))
        try:
            body = json.loads(raw)
            message = body["message"]
            assert set(body) == {"message"}
            token = message["token"]
            note = message["notification"]
            assert isinstance(token, str) and token
            assert isinstance(note["title"], str) and isinstance(note["body"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._reject(
                "message shape", _fcm_error(400, "INVALID_ARGUMENT", "bad message", "message")
            )
        data = message.get("data", {})
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            return self._reject(
                "data values",
                _fcm_error(400, "INVALID_ARGUMENT", "data values must be strings", "message.data"),
            )
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        if token in self.unregistered:
            return _fcm_error(404, "UNREGISTERED", "Requested entity was not found.")
        if token in self.invalid:
            return _fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "message.token",
            )
        with self._lock:
            self.received.append((message, headers))
        name = f"projects/{self.project}/messages/{uuid.uuid4().hex}"
        return 200, {"Content-Type": "application/json"}, json.dumps({"name": name}).encode()
