"""Loopback fakes of Firebase Cloud Messaging (HTTP v1 and Google's OAuth2 token
endpoint) and of Apple's APNs (HTTP/2), checking the protocols as the real services do.

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

:class:`APNsFake` (HTTP/2 over cleartext, prior knowledge; the ``h2`` library):

* ``POST /3/device/<token>``: ``authorization: bearer <jwt>``, an ES256 provider token
  signed by the test key with the expected ``kid`` and ``iss`` (team id) and an ``iat``
  of the last hour (else ``403 InvalidProviderToken`` / ``ExpiredProviderToken``);
  ``apns-topic`` one of ``topics``, ``apns-push-type`` ``alert``, ``apns-priority`` 5
  or 10, ``apns-expiration`` (when sent) a whole number; a JSON body of at most 4096
  bytes with ``aps.alert.title``/``body`` (else the status and reason APNs gives).
  Tokens in ``unregistered`` get ``410 Unregistered``, tokens that are not 64+ hex
  digits ``400 BadDeviceToken``.

Both: ``script(*answers)`` queues ``(status, headers, body)`` answers for the next
sends; ``received`` lists the accepted messages (with their headers); ``rejected``
what was refused and why.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

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
        #: seconds each send waits before answering (a slow FCM)
        self.delay = 0.0
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
                # header names are case-insensitive: google-auth sends "authorization"
                sent = {k.lower(): v for k, v in self.headers.items()}
                if self.path == "/token":
                    status, headers, body = fake._grant(sent, raw)
                else:
                    status, headers, body = fake._send(self.path, sent, raw)
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

        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
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
        if self.delay:
            time.sleep(self.delay)
        found = _FCM_SEND.match(path)
        if found is None or found.group(1) != self.project:
            return self._reject(f"path {path}", _fcm_error(404, "NOT_FOUND", "no such project"))
        auth = headers.get("authorization", "")
        bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        with self._lock:
            expires = self.tokens.get(bearer)
        if expires is None or expires < time.time():
            return self._reject(
                "bearer", _fcm_error(401, "UNAUTHENTICATED", "invalid authentication credentials")
            )
        if not headers.get("content-type", "").startswith("application/json"):
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


class APNsFake:
    """APNs' provider API over HTTP/2 cleartext (prior knowledge) on loopback."""

    def __init__(self, *, team_id: str = "TEAM123456", key_id: str = "KEY1234567") -> None:
        self.team_id, self.key_id = team_id, key_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.topics = {"org.example.app"}
        #: seconds each request waits before its answer (a slow APNs)
        self.delay = 0.0
        #: never answer, but keep the connection busy with a PING frame every 0.1 s (a
        #: stalled APNs that resets every per-read timeout); set back to False, the
        #: connection is closed
        self.stall = False
        #: requests left unanswered so
        self.stalled = 0
        self.unregistered: set[str] = set()
        self.received: list[tuple[str, dict[str, str], Any]] = []
        self.rejected: list[str] = []
        #: every distinct provider token seen
        self.provider_tokens: set[str] = set()
        #: HTTP/2 connections accepted
        self.connections = 0
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> APNsFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(5)

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        import h2.config
        import h2.connection
        import h2.events

        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        sock.sendall(h2conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        with sock:
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {_text(k): _text(v) for k, v in event.headers}
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        h2conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        if self.stall:
                            self._drip(sock, h2conn)
                            return
                        if self.delay:
                            time.sleep(self.delay)
                        status, extra, answer = self._answer(headers, bytes(body))
                        response = [(":status", str(status)), *extra.items()]
                        response.append(("apns-id", str(uuid.uuid4()).upper()))
                        h2conn.send_headers(event.stream_id, response, end_stream=not answer)
                        if answer:
                            h2conn.send_data(event.stream_id, answer, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                sock.sendall(h2conn.data_to_send())

    def _drip(self, sock: socket.socket, h2conn: Any) -> None:
        with self._lock:
            self.stalled += 1
        while self.stall and not self._stop.wait(0.1):
            h2conn.ping(secrets.token_bytes(8))
            try:
                sock.sendall(h2conn.data_to_send())
            except OSError:
                return

    def _reject(self, status: int, reason: str) -> Answer:
        with self._lock:
            self.rejected.append(reason)
        return status, {"content-type": "application/json"}, json.dumps({"reason": reason}).encode()

    def _answer(self, headers: dict[str, str], body: bytes) -> Answer:
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            return self._reject(405, "MethodNotAllowed")
        token = path[len("/3/device/") :]
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return self._reject(403, "MissingProviderToken")
        provider = auth[len("bearer ") :]
        try:
            header = jwt.get_unverified_header(provider)
            claims = jwt.decode(
                provider,
                self.key.public_key(),
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_aud": False},
            )
        except jwt.PyJWTError:
            return self._reject(403, "InvalidProviderToken")
        if header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return self._reject(403, "InvalidProviderToken")
        if not time.time() - 3600 <= claims["iat"] <= time.time() + 60:
            return self._reject(403, "ExpiredProviderToken")
        with self._lock:
            self.provider_tokens.add(provider)
        if headers.get("apns-topic") not in self.topics:
            return self._reject(400, "TopicDisallowed")
        if headers.get("apns-push-type") != "alert":
            return self._reject(400, "InvalidPushType")
        if headers.get("apns-priority") not in ("5", "10"):
            return self._reject(400, "BadPriority")
        expiration = headers.get("apns-expiration")
        if expiration is not None and not expiration.isdigit():
            return self._reject(400, "BadExpirationDate")
        if len(body) > 4096:
            return self._reject(413, "PayloadTooLarge")
        try:
            payload = json.loads(body)
            alert = payload["aps"]["alert"]
            assert isinstance(alert["title"], str) and isinstance(alert["body"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            return self._reject(400, "PayloadEmpty")
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted
        if not _HEX_TOKEN.match(token):
            return self._reject(400, "BadDeviceToken")
        if token in self.unregistered:
            body = json.dumps({"reason": "Unregistered", "timestamp": int(time.time() * 1000)})
            return 410, {"content-type": "application/json"}, body.encode()
        with self._lock:
            self.received.append((token, headers, payload))
        return 200, {}, b""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
