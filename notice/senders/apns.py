"""Apple Push Notification service: one delivery per registered iOS device.

Each send is one HTTP/2 POST (``httpx`` with ``h2``) to ``{NOTICE_APNS_URL}/3/device/
<token>``, authorised by an ES256 provider token (PyJWT) that every send and thread of
the process shares for :data:`TOKEN_LIFETIME` (Apple refuses tokens older than an hour,
and refreshing more often than every 20 minutes). Headers: ``apns-topic`` (the device's
``app_id``, one of ``NOTICE_APNS_TOPICS``, else ``NOTICE_APNS_TOPIC``),
``apns-push-type: alert``, ``apns-priority`` (``NOTICE_APNS_PRIORITY``) and
``apns-expiration`` (the notice's ``expires_at``; left out for a notice that never
expires: APNs then keeps it as it sees fit).

========================================  ============================================
200                                       sent; the device's ``last_used_at`` is set
410 (``Unregistered``, ``ExpiredToken``)  the app is gone: device deleted, final
400 ``BadDeviceToken``,                   not a token of this app or environment:
``DeviceTokenNotForTopic``                device deleted, final
403 ``ExpiredProviderToken``,             a new provider token is signed, retried
``InvalidProviderToken``
429, 5xx, timeout, connection error       ``TransientError`` (honours ``Retry-After``)
other 4xx                                 ``PermanentError``
========================================  ============================================

Only allow-listed hosts are reached and redirects are not followed. Connecting and each
read are bounded by ``NOTICE_APNS_TIMEOUT``, and the answer's body (at most 4 KB is
read) by the same deadline counted from the start of the send. httpx has no total
deadline: a server sending other HTTP/2 frames (PINGs) restarts the read timeout, so
the send as a whole is bounded by the engine's ``NOTICE_SEND_TIMEOUT`` watchdog
(:mod:`notice.sending`), which ends the delivery retried. Neither the device
token, the provider token nor the key is put in logs or errors.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import ConfigurationError, PermanentError, TransientError
from .http import MAX_BODY, retry_after
from .mobile import MobileSender, encode
from .urls import check_url

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("notice")

#: a provider token is signed anew after this long (Apple: between 20 and 60 minutes)
TOKEN_LIFETIME = timedelta(minutes=50)
#: the largest notification payload APNs accepts, in bytes
MAX_PAYLOAD = 4096
#: APNs reasons saying the device token is dead for this app
DEAD_TOKEN = frozenset({"Unregistered", "ExpiredToken", "BadDeviceToken", "DeviceTokenNotForTopic"})
#: APNs reasons saying our provider token was refused
BAD_PROVIDER_TOKEN = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


def load_signing_key(value: object, *, key: str = "NOTICE_APNS_KEY") -> ec.EllipticCurvePrivateKey:
    """The APNs auth key (a ``.p8`` file path or its PEM text), a P-256 EC key.

    :raise ConfigurationError: naming ``key``; the value itself is never included.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(
            f"{key} is not set: give the .p8 auth key from Apple's developer account (a file "
            "path or its PEM text)"
        )
    text = value.strip()
    try:
        if "-----BEGIN" not in text and len(text) < 4096 and os.path.isfile(text):
            with open(text, encoding="utf-8") as fh:
                text = fh.read().strip()
        private = serialization.load_pem_private_key(
            text.replace("\\n", "\n").encode("ascii"), password=None
        )
    except OSError as exc:
        raise ConfigurationError(f"{key}: cannot read the key file ({exc.strerror})") from None
    except (ValueError, TypeError, UnicodeError):
        raise ConfigurationError(f"{key} is not a PEM private key (.p8)") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(
        private.curve, ec.SECP256R1
    ):
        raise ConfigurationError(f"{key} must be a P-256 EC key (Apple's .p8 auth key)")
    return private


class ProviderTokens:
    """The ES256 provider token, shared by every send and thread; signed anew after
    :data:`TOKEN_LIFETIME` or when APNs refused it."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str) -> None:
        self._key, self.key_id, self.team_id = key, key_id, team_id
        self._lock = threading.Lock()
        self._token: str | None = None
        self._issued = datetime.min.replace(tzinfo=timezone.utc)

    def get(self, now: datetime | None = None) -> str:
        with self._lock:
            now = now or datetime.now(timezone.utc)
            if self._token is None or now - self._issued >= TOKEN_LIFETIME:
                self._token = jwt.encode(
                    {"iss": self.team_id, "iat": int(now.timestamp())},
                    self._key,
                    algorithm="ES256",
                    headers={"kid": self.key_id},
                )
                self._issued = now
            return self._token

    def forget(self, token: str) -> None:
        """Drop ``token`` (APNs refused it); one signed meanwhile is kept."""
        with self._lock:
            if self._token == token:
                self._token = None


def fit(message: dict[str, Any], limit: int = MAX_PAYLOAD) -> bytes:
    """``message`` encoded in at most ``limit`` bytes, its alert body trimmed (ending in
    "…") when needed.

    :raise PermanentError: it does not fit even with an empty body.
    """
    raw = encode(message)
    if len(raw) <= limit:
        return raw
    alert = message["aps"]["alert"]
    body: str = alert["body"]
    lo, hi, best = 0, len(body), None
    while lo <= hi:  # the longest prefix that fits, by bisection
        mid = (lo + hi) // 2
        trimmed = {
            **message,
            "aps": {**message["aps"], "alert": {**alert, "body": body[:mid] + "…" if mid else ""}},
        }
        candidate = encode(trimmed)
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise PermanentError(f"APNs payload is over {limit} bytes even with an empty body")
    return best


class APNsSender(MobileSender):
    """Sends notices to every APNs device of their user."""

    name = "apns"
    platform = "apns"

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        cfg = app.config
        key = load_signing_key(cfg["NOTICE_APNS_KEY"])
        key_id, team_id = cfg["NOTICE_APNS_KEY_ID"], cfg["NOTICE_APNS_TEAM_ID"]
        if not key_id or not team_id:
            raise ConfigurationError(
                "the apns sender needs NOTICE_APNS_KEY_ID (the key's id) and "
                "NOTICE_APNS_TEAM_ID (your Apple developer team id)"
            )
        self.tokens = ProviderTokens(key, key_id, team_id)
        self.base = check_url(
            cfg["NOTICE_APNS_URL"], cfg["NOTICE_APNS_HOSTS"], "NOTICE_APNS_URL", "NOTICE_APNS_HOSTS"
        )
        self.base = self.base.rstrip("/")
        self.topic: str | None = cfg["NOTICE_APNS_TOPIC"]
        if not self.apps:
            raise ConfigurationError(
                "the apns sender needs NOTICE_APNS_TOPIC (your app's bundle id) or "
                "NOTICE_APNS_TOPICS (the bundle ids devices may register with)"
            )
        self.priority = str(cfg["NOTICE_APNS_PRIORITY"])
        self.timeout = float(cfg["NOTICE_APNS_TIMEOUT"])

    def client(self) -> httpx.Client:
        """This thread's HTTP/2 client (one connection to APNs, kept open as Apple asks)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            # http1=False: HTTP/2 only, and over http:// (a loopback fake) with prior
            # knowledge; no proxy variables or .netrc from the environment
            client = self._local.client = httpx.Client(
                http1=False,
                http2=True,
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
            )
        return client

    def message(self, notice: Any, device: Mapping[str, Any]) -> dict[str, Any]:
        """``{"aps": {"alert": {"title", "body"}, "sound": "default"}, "notice": {...}}``
        (``notice``: :meth:`~notice.senders.mobile.MobileSender.fields`)."""
        return {
            "aps": {
                "alert": {"title": notice.subject, "body": notice.content or ""},
                "sound": "default",
            },
            "notice": self.fields(notice),
        }

    def headers(self, notice: Any, device: Mapping[str, Any]) -> dict[str, str]:
        topic = device.get("app_id") or self.topic
        if not topic:
            raise PermanentError(
                f"device {device['id']} has no app_id and NOTICE_APNS_TOPIC is not set"
            )
        headers = {
            "apns-topic": topic,
            "apns-push-type": "alert",
            "apns-priority": self.priority,
            "content-type": "application/json",
        }
        expires = getattr(notice, "expires_at", None)
        if expires is not None:
            headers["apns-expiration"] = str(max(1, int(expires.timestamp())))
        return headers

    def push(self, notice: Any, device: Mapping[str, Any], message: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.timeout
        body = fit(message)
        headers = self.headers(notice, device)
        token = self.tokens.get()
        headers["authorization"] = f"bearer {token}"
        url = f"{self.base}/3/device/{quote(device['token'], safe='')}"
        try:
            with self.client().stream("POST", url, content=body, headers=headers) as resp:
                status, answer = resp.status_code, _read_prefix(resp, deadline)
                retry = resp.headers.get("retry-after")
        except httpx.TimeoutException as exc:
            raise TransientError(f"APNs timed out after {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            # the exception's text names the URL, and so the device token: keep its type
            raise TransientError(f"cannot reach APNs: {type(exc).__name__}") from None
        if status == 200:
            return
        reason = _reason(answer)
        detail = f"APNs answered {status} {reason}".rstrip()
        if reason in DEAD_TOKEN or status == 410:
            raise self.drop(device, detail)
        if reason in BAD_PROVIDER_TOKEN:
            self.tokens.forget(token)
            raise TransientError(detail)
        if status == 429 or status >= 500:
            raise TransientError(detail, retry_after=retry_after(retry))
        if status == 403:
            logger.warning("APNs refused our provider token or key (%s)", reason or status)
        raise PermanentError(detail)


def _read_prefix(resp: httpx.Response, deadline: float) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        for chunk in resp.iter_raw():
            parts.append(chunk)
            size += len(chunk)
            if size >= MAX_BODY or time.monotonic() >= deadline:
                break
    except httpx.HTTPError:
        pass  # the status already says what happened
    return b"".join(parts)[:MAX_BODY]


def _reason(body: bytes) -> str:
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError):
        return ""
    return reason if isinstance(reason, str) and reason.isalnum() else ""
