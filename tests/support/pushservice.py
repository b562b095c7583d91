"""A real, loopback-only Web Push service for end-to-end tests.

It behaves like the push services run by browser vendors (FCM, Mozilla
autopush) as far as an application server can tell:

* every POST to a subscription endpoint must carry a valid VAPID
  ``Authorization`` header (RFC 8292): an ES256 JWT whose signature is checked
  against the public key ``k`` and whose ``aud``/``exp``/``sub`` claims are
  validated;
* the body must be an RFC 8291 ``aes128gcm`` message (single record, sender
  key as keyid) and is decrypted with the simulated browser's keys, so tests
  can assert on the plaintext the browser would have received;
* ``TTL`` is mandatory, bodies over 4096 bytes get 413, unknown endpoints 404
  and expired ones 410.

Failures can be scripted per subscription (429 with Retry-After, 500, 410, a
hung connection, ...) to exercise retry and cleanup logic.

The server only ever binds to 127.0.0.1.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "BrowserKeys",
    "MAX_PAYLOAD_BYTES",
    "PushRejected",
    "PushService",
    "ReceivedPush",
    "b64url_decode",
    "b64url_encode",
    "verify_vapid",
    "wait_for",
]

MAX_PAYLOAD_BYTES = 4096
MAX_EXP_AHEAD_SECONDS = 24 * 60 * 60
# Anything larger than this is not even read: the connection is closed after a 413.
_MAX_READ_BYTES = 1 << 20
_B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_PUSH_PATH_RE = re.compile(r"^/push/([A-Za-z0-9_-]+)$")


# --------------------------------------------------------------------------- helpers


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (the encoding used throughout Web Push)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Strict base64url decoding of unpadded input; raises ValueError otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("not base64url") from exc
    if not _B64URL_RE.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` if it is still falsy after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


# --------------------------------------------------------------------------- browser side


class BrowserKeys:
    """The keys a browser creates for one push subscription (RFC 8291 §2)."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)

    @property
    def public_key_bytes(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def p256dh(self) -> str:
        return b64url_encode(self.public_key_bytes)

    @property
    def auth(self) -> str:
        return b64url_encode(self.auth_secret)

    def subscription_keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": self.auth}

    def decrypt(self, body: bytes) -> bytes:
        """Decrypt an RFC 8291 ``aes128gcm`` push message body.

        Like a browser, this insists on the Web Push profile of RFC 8188: the
        keyid is the application server's 65-byte uncompressed P-256 key and
        the message is a single record. Raises ``ValueError`` on any problem.
        """
        if len(body) < 21:
            raise ValueError("body too short for an aes128gcm header")
        rs = struct.unpack("!L", body[16:20])[0]
        idlen = body[20]
        if idlen != 65 or len(body) < 21 + idlen or body[21] != 0x04:
            raise ValueError("aes128gcm keyid is not an uncompressed P-256 public key")
        ciphertext = body[21 + idlen :]
        if len(ciphertext) < 17:
            raise ValueError("aes128gcm body has no record")
        if rs < 18 or len(ciphertext) > rs:
            raise ValueError("push message must be exactly one aes128gcm record")
        try:
            return http_ece.decrypt(
                body,
                private_key=self.private_key,
                auth_secret=self.auth_secret,
                version="aes128gcm",
            )
        except Exception as exc:  # http_ece raises ECEException, cryptography others
            raise ValueError(f"decryption failed: {exc}") from exc


# --------------------------------------------------------------------------- VAPID


class PushRejected(Exception):
    """A request the push service refuses: carries the HTTP status and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _auth_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        value = value.strip()
        if not sep or not name or name in params:
            raise PushRejected(401, "malformed vapid authorization parameters")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[name] = value
    return params


def _crypto_key_p256ecdsa(header: str | None) -> str | None:
    if not header:
        return None
    found = None
    for item in re.split(r"[;,]", header):
        name, sep, value = item.strip().partition("=")
        if sep and name.strip().lower() == "p256ecdsa":
            if found is not None:
                raise PushRejected(401, "several p256ecdsa keys in Crypto-Key")
            found = value.strip().strip('"')
    return found


def _parse_authorization(authorization: str | None, crypto_key: str | None) -> tuple[str, str]:
    """Return (jwt, k) from the request headers."""
    if not authorization:
        raise PushRejected(401, "missing Authorization header")
    scheme, _, rest = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "vapid":
        params = _auth_params(rest)
        if "t" not in params or "k" not in params:
            raise PushRejected(401, "vapid authorization needs t= and k=")
        return params["t"], params["k"]
    if scheme == "webpush":  # draft-ietf-webpush-vapid-01 style
        token = rest.strip()
        key = _crypto_key_p256ecdsa(crypto_key)
        if not token or not key:
            raise PushRejected(401, "WebPush authorization needs Crypto-Key: p256ecdsa=")
        return token, key
    raise PushRejected(401, "unsupported authorization scheme")


def _load_public_key(k: str) -> ec.EllipticCurvePublicKey:
    try:
        raw = b64url_decode(k)
        if len(raw) != 65 or raw[0] != 0x04:
            raise ValueError("not an uncompressed point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError as exc:
        raise PushRejected(401, "k is not a base64url uncompressed P-256 public key") from exc


def _verify_jwt(token: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise PushRejected(401, "JWT must have three parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        signature = b64url_decode(parts[2])
    except ValueError as exc:
        raise PushRejected(401, "JWT is not valid base64url/JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "ES256":
        raise PushRejected(401, "JWT alg must be ES256")
    if header.get("typ", "JWT").upper() != "JWT":
        raise PushRejected(401, "JWT typ must be JWT")
    if len(signature) != 64:
        raise PushRejected(401, "ES256 signature must be 64 bytes (r||s)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    signed = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise PushRejected(401, "JWT signature does not verify with k") from exc
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise PushRejected(401, "JWT claims are not valid JSON") from exc
    if not isinstance(claims, dict):
        raise PushRejected(401, "JWT claims must be an object")
    return claims


def _check_claims(claims: Mapping[str, Any], audience: str, now: float, leeway: float) -> None:
    if claims.get("aud") != audience:
        raise PushRejected(401, f"JWT aud must be {audience!r}")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise PushRejected(401, "JWT exp must be a NumericDate")
    if exp <= now:
        raise PushRejected(401, "JWT has expired")
    if exp > now + MAX_EXP_AHEAD_SECONDS + leeway:
        raise PushRejected(401, "JWT exp is more than 24 hours ahead")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
        raise PushRejected(401, "JWT sub must be a mailto: or https: URI")


def verify_vapid(
    authorization: str | None,
    audience: str,
    *,
    crypto_key: str | None = None,
    expected_key: str | None = None,
    now: float | None = None,
    leeway: float = 5.0,
) -> tuple[dict[str, Any], str]:
    """Check a VAPID authorization the way a push service does.

    Returns ``(claims, k)``; raises ``PushRejected`` (401, or 403 when ``k`` is
    not ``expected_key``) otherwise. ``leeway`` only relaxes the 24 h upper
    bound on ``exp`` (for clock granularity); an expired token is always refused.
    """
    token, k = _parse_authorization(authorization, crypto_key)
    key = _load_public_key(k)
    claims = _verify_jwt(token, key)
    if expected_key is not None and k != expected_key:
        raise PushRejected(403, "VAPID key does not match the subscription's key")
    _check_claims(claims, audience, time.time() if now is None else now, leeway)
    return claims, k


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ReceivedPush:
    """A push message accepted (201) by the service, as the browser sees it."""

    token: str
    headers: dict[str, str]
    payload: bytes
    claims: dict[str, Any]
    time: float
    body: bytes = b""  # the encrypted body as sent on the wire
    message_id: str = ""

    @property
    def ttl(self) -> int:
        return int(self.headers["TTL"])

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class _Scripted:
    status: int | str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _normalise_script_entry(entry: Any) -> _Scripted:
    if entry == "timeout":
        return _Scripted("timeout")
    if isinstance(entry, int) and not isinstance(entry, bool):
        return _Scripted(entry)
    if isinstance(entry, tuple) and entry and isinstance(entry[0], int):
        status, rest = entry[0], entry[1:]
        headers: list[tuple[str, str]] = []
        body = b""
        if rest:
            spec = rest[0]
            if isinstance(spec, Mapping):
                headers = [(str(k), str(v)) for k, v in spec.items()]
            elif (
                isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, str) for x in spec)
            ):
                headers = [(spec[0], spec[1])]
            else:
                headers = [(str(k), str(v)) for k, v in spec]
        if len(rest) > 1:
            body = rest[1].encode() if isinstance(rest[1], str) else bytes(rest[1])
        return _Scripted(status, headers, body)
    raise ValueError(f"cannot script response {entry!r}")


# --------------------------------------------------------------------------- server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for hung (scripted timeout) handlers
    allow_reuse_address = False

    def __init__(self, service: PushService) -> None:
        self.service = service
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackPush/1.0"
    timeout = 15  # idle keep-alive connections do not live forever
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.service._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.service._track(self.connection, False)

    def do_POST(self) -> None:  # noqa: N802
        self.server.service._handle_post(self)

    def _not_allowed(self) -> None:
        self.server.service._respond(self, 405, "method not allowed", close=True)

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed


class PushService:
    """A loopback Web Push service. Use as a context manager.

    ``vapid_public_key_b64url``: when given, the application server's VAPID
    key (``k``) must be exactly this key, otherwise 403.
    """

    def __init__(self, vapid_public_key_b64url: str | None = None) -> None:
        self.vapid_public_key = vapid_public_key_b64url
        self.timeout_sleep = 3.0
        self.exp_leeway = 5.0
        self.received: list[ReceivedPush] = []
        self.attempts: list[tuple[str, int | str]] = []
        self._lock = threading.Lock()
        self._keys: dict[str, BrowserKeys] = {}
        self._gone: set[str] = set()
        self._scripts: dict[str, deque[_Scripted]] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.origin = ""
        #: the VAPID ``aud`` required, when not :attr:`origin` (e.g. the service reached
        #: as ``localhost``)
        self.audience: str | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> PushService:
        if self._server is not None:
            raise RuntimeError("push service already started")
        self._stopping.clear()
        self._server = _Server(self)
        host, port = self._server.server_address[:2]
        self.origin = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"pushservice-{port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping on a scripted "timeout"
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- test API

    def new_subscription(self, path_suffix: str | None = None) -> dict[str, Any]:
        """Create a browser subscription; returns its ``subscription_info``.

        ``path_suffix`` (letters, digits, ``-``, ``_``) is appended to the random
        token, to make endpoints recognisable in test output.
        """
        if not self.origin:
            raise RuntimeError("start the push service first")
        token = secrets.token_urlsafe(16)
        if path_suffix:
            if not _TOKEN_RE.match(path_suffix):
                raise ValueError("path_suffix may only contain [A-Za-z0-9_-]")
            token = f"{token}-{path_suffix}"
        keys = BrowserKeys()
        with self._lock:
            self._keys[token] = keys
        return {"endpoint": f"{self.origin}/push/{token}", "keys": keys.subscription_keys()}

    @staticmethod
    def token_of(subscription_or_endpoint: Mapping[str, Any] | str) -> str:
        endpoint = (
            subscription_or_endpoint
            if isinstance(subscription_or_endpoint, str)
            else subscription_or_endpoint["endpoint"]
        )
        match = _PUSH_PATH_RE.match(urlsplit(endpoint).path)
        if not match:
            raise ValueError(f"not a push endpoint: {endpoint!r}")
        return match.group(1)

    def keys_for(self, token: str) -> BrowserKeys:
        with self._lock:
            return self._keys[token]

    def mark_gone(self, token: str) -> None:
        """The browser unsubscribed: further pushes get 410 Gone."""
        with self._lock:
            self._gone.add(token)

    def script(self, token: str, responses: Iterable[Any]) -> None:
        """Queue responses for the next requests to ``token``.

        Entries: a status (``500``), ``(status, headers)`` where headers is a dict,
        a list of pairs or one ``(name, value)`` pair, ``(status, headers, body)``,
        or ``"timeout"`` (hold the request ``timeout_sleep`` seconds, then close
        the connection without answering).
        """
        entries = [_normalise_script_entry(e) for e in responses]
        with self._lock:
            self._scripts.setdefault(token, deque()).extend(entries)

    def received_for(self, token: str) -> list[ReceivedPush]:
        with self._lock:
            return [r for r in self.received if r.token == token]

    def attempts_for(self, token: str) -> list[int | str]:
        with self._lock:
            return [status for t, status in self.attempts if t == token]

    # ----------------------------------------------------------------- internals

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record_attempt(self, token: str, status: int | str) -> None:
        with self._lock:
            self.attempts.append((token, status))

    def _respond(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        text: str | bytes,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
    ) -> None:
        body = text.encode("utf-8") if isinstance(text, str) else text
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler) -> tuple[bytes | None, int | None]:
        """Return (body, declared_length); body is None when it was not read."""
        if handler.headers.get("Transfer-Encoding"):
            return None, None
        raw = handler.headers.get("Content-Length")
        if raw is None:
            return b"", 0
        try:
            length = int(raw)
        except ValueError:
            return None, None
        if length < 0 or length > _MAX_READ_BYTES:
            return None, length if length >= 0 else None
        return handler.rfile.read(length), length

    def _handle_post(self, handler: BaseHTTPRequestHandler) -> None:
        body, length = self._read_body(handler)
        must_close = body is None
        match = _PUSH_PATH_RE.match(urlsplit(handler.path).path)
        if not match:
            self._respond(handler, 404, "no such endpoint", close=True)
            return
        token = match.group(1)

        with self._lock:
            queue = self._scripts.get(token)
            scripted = queue.popleft() if queue else None

        if scripted is not None:
            self._record_attempt(token, scripted.status)
            if scripted.status == "timeout":
                self._stopping.wait(self.timeout_sleep)
                handler.close_connection = True
                return
            assert isinstance(scripted.status, int)
            self._respond(handler, scripted.status, scripted.body, scripted.headers, must_close)
            return

        try:
            message = self._accept(handler, token, body, length)
        except PushRejected as rej:
            self._record_attempt(token, rej.status)
            extra = [("WWW-Authenticate", "vapid")] if rej.status == 401 else []
            self._respond(handler, rej.status, rej.reason, extra, close=must_close)
            return
        self._record_attempt(token, 201)
        with self._lock:
            self.received.append(message)
        self._respond(
            handler,
            201,
            b"",
            [("Location", f"{self.origin}/message/{message.message_id}")],
            close=must_close,
        )

    def _accept(
        self,
        handler: BaseHTTPRequestHandler,
        token: str,
        body: bytes | None,
        length: int | None,
    ) -> ReceivedPush:
        with self._lock:
            keys = self._keys.get(token)
            gone = token in self._gone
        if keys is None:
            raise PushRejected(404, "no such subscription")
        if gone:
            raise PushRejected(410, "subscription expired or unsubscribed")

        headers = handler.headers
        claims, _k = verify_vapid(
            headers.get("Authorization"),
            self.audience or self.origin,
            crypto_key=headers.get("Crypto-Key"),
            expected_key=self.vapid_public_key,
            leeway=self.exp_leeway,
        )

        if length is not None and length > MAX_PAYLOAD_BYTES:
            raise PushRejected(413, f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
        if body is None:
            raise PushRejected(411, "a valid Content-Length is required")

        ttl = headers.get("TTL")
        if ttl is None or not ttl.strip().isdigit():
            raise PushRejected(400, "TTL header (non-negative integer) is required")

        if body:
            encoding = (headers.get("Content-Encoding") or "").strip().lower()
            if encoding != "aes128gcm":
                raise PushRejected(400, "Content-Encoding: aes128gcm is required")
            try:
                payload = keys.decrypt(body)
            except ValueError as exc:
                raise PushRejected(400, f"cannot decrypt payload: {exc}") from exc
        else:
            payload = b""  # a push without payload is legal (RFC 8030 §5)

        header_dict: dict[str, str] = {}
        for name, value in headers.items():
            header_dict[_canonical_header(name)] = value
        return ReceivedPush(
            token=token,
            headers=header_dict,
            payload=payload,
            claims=claims,
            time=time.time(),
            body=body,
            message_id=secrets.token_urlsafe(12),
        )


def _canonical_header(name: str) -> str:
    lowered = name.lower()
    if lowered == "ttl":
        return "TTL"
    return "-".join(part.capitalize() for part in lowered.split("-"))
