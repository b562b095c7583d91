"""The "webhook" sender: POST every notice as JSON to each URL of ``NOTICE_WEBHOOK_URLS``.

Each URL is its own delivery (its own retries). The request carries::

    Content-Type: application/json
    X-Notice-Id: <notice id>               (the same on retries: deduplicate on it)
    X-Notice-Timestamp: <unix seconds>
    X-Notice-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

keyed with ``NOTICE_WEBHOOK_SECRET``. Receivers recompute the signature over the raw
body, compare in constant time and refuse old timestamps (replays).

Outcomes: 2xx sent; 410 Gone final; 408, 429 (honouring ``Retry-After``), 5xx,
timeouts and connection errors retried; redirects and every other 4xx final.
``NOTICE_WEBHOOK_TIMEOUT`` bounds the whole request (connect, send, status and
headers); at most 4 KB of an answer's body is read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask

from ..errors import ConfigurationError, SkipDelivery
from .base import Sender
from .http import deadline_session, post_as, raise_for_answer

SIGNATURE_HEADER = "X-Notice-Signature"
TIMESTAMP_HEADER = "X-Notice-Timestamp"
ID_HEADER = "X-Notice-Id"
#: delivery targets are stored in a 255-character column
MAX_URL = 255


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Notice-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


#: delivery bookkeeping that changes between retries; not part of the payload
_INTERNAL = ("send_status", "update_at")


def payload(notice: Any) -> bytes:
    """The JSON body posted for ``notice``: its ``to_dict()`` without the delivery
    bookkeeping, so a retry posts the same notice the same way."""
    fields = {k: v for k, v in notice.to_dict().items() if k not in _INTERNAL}
    data = {"event": "notice", "notice": fields}
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


class WebhookSender(Sender):
    """Signed JSON POSTs to the configured URLs."""

    name = "webhook"

    def __init__(self) -> None:
        self.urls: tuple[str, ...] = ()
        self._secret = ""
        self.timeout = 5.0
        # requests.Session is not documented thread-safe; the thread dispatcher runs
        # batches in parallel, so each thread keeps its own pooled session
        self._local = threading.local()

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        urls = tuple(cfg["NOTICE_WEBHOOK_URLS"])
        if not urls:
            raise ConfigurationError("the webhook sender needs NOTICE_WEBHOOK_URLS")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(f"NOTICE_WEBHOOK_URLS: {url!r} is not an http(s) URL")
            if len(url) > MAX_URL:
                raise ConfigurationError(f"NOTICE_WEBHOOK_URLS: {url!r} is over {MAX_URL} chars")
        secret = cfg["NOTICE_WEBHOOK_SECRET"]
        if not isinstance(secret, str) or len(secret) < 16:
            raise ConfigurationError(
                "the webhook sender needs NOTICE_WEBHOOK_SECRET, a string of at least 16 "
                "characters (e.g. secrets.token_hex(32))"
            )
        self.urls, self._secret = urls, secret
        self.timeout = float(cfg["NOTICE_WEBHOOK_TIMEOUT"])

    def targets(self, user_ids: Sequence[Any]) -> Mapping[Any, Sequence[str]]:
        return {u: self.urls for u in user_ids}

    def send(self, notice: Any) -> None:
        for url in self.urls:
            self.send_to(notice, url)

    def preview(self, notice: Any, target: str) -> Any:
        """The JSON body :meth:`send_to` would post to ``target``, decoded."""
        return json.loads(self._body(notice, target))

    def _body(self, notice: Any, target: str) -> bytes:
        if target not in self.urls:
            # checked at send time: the URL was removed from the config after this
            # delivery was written, and whoever runs it may no longer expect (or own)
            # it. The URL stays out of the reason: webhook URLs often carry a secret.
            raise SkipDelivery("webhook URL is no longer in NOTICE_WEBHOOK_URLS")
        return payload(notice)

    def send_to(self, notice: Any, target: str) -> None:
        body = self._body(notice, target)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "notice-webhook",
            ID_HEADER: str(notice.id),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        # NOTICE_WEBHOOK_TIMEOUT is the whole request's budget: a receiver dripping its
        # answer a byte at a time held a send for 40 s on a 5 s per-read timeout
        answer = post_as(
            "webhook", self._session(), target, data=body, headers=headers, timeout=self.timeout
        )
        raise_for_answer(answer, "webhook")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = deadline_session()
        return session
