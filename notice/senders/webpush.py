"""Web Push (RFC 8030/8291/8292): one delivery per browser subscription.

Each send encrypts the payload for the browser (aes128gcm, via ``pywebpush``), signs a
VAPID JWT with a *fresh* claims dict (``aud`` is the endpoint's normalised origin, ``exp`` a few
minutes ahead) and POSTs it through one reused ``requests.Session`` with an explicit
timeout and without following redirects. Push service answers map onto the delivery
errors:

==========================  ==================================================
201 / 200 / 202             sent; the subscription's ``last_success_at`` is set
404 / 410                   the browser unsubscribed: subscription deleted, final
429                         ``TransientError(retry_after=Retry-After)``
5xx, timeout, connection    ``TransientError`` (retried with backoff)
other 4xx, 3xx              ``PermanentError``
==========================  ==================================================

Before encrypting, the target is checked: a subscription that is gone, or that belongs
to another user than the notice's now, ends the delivery ``Skipped`` (reason in
``last_error``) and nothing is posted. A batch's subscriptions are loaded in one query
when the batch starts (:meth:`WebPushSender.prepare`), with its notices.

Payload limit: push services accept 4096 encrypted bytes, 3993 bytes of JSON. A
payload over that has its ``body`` trimmed (ending in "…"); if it still does not fit
with an empty body the send fails with ``PermanentError`` before any request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from py_vapid import Vapid02
from pywebpush import WebPusher, WebPushException

from ..columns import utcnow
from ..errors import (
    ConfigurationError,
    EndpointRefused,
    PermanentError,
    SkipDelivery,
    TransientError,
)
from ..i18n import recipient_language
from ..links import link_origins, safe_link
from ..push.config import AllowList, origin, push_options
from ..push.vapid import VapidKeys, check_public_key, load_private_key
from ..state import state_of
from ..store import push as push_store
from ..types import user_key
from .base import Sender
from .http import Answer, DeadlineAdapter, TimedOut, Unreachable, post_with_deadline, retry_after

if TYPE_CHECKING:
    from flask import Flask

    from ..push.models import PushModels

logger = logging.getLogger("notice")

#: encrypted bodies over this are refused by push services (413)
MAX_ENCRYPTED = 4096
#: aes128gcm overhead of one record: 86-byte header, 1 padding delimiter, 16-byte tag
MAX_PAYLOAD = MAX_ENCRYPTED - 86 - 1 - 16
#: lifetime of each VAPID JWT; push services refuse more than 24 h
VAPID_EXP_SECONDS = 10 * 60


class WebPushSender(Sender):
    """Sends notices to every push subscription of their user."""

    name = "webpush"

    def __init__(self) -> None:
        self.keys: VapidKeys | None = None
        self._vapid: Vapid02 | None = None
        self._local = threading.local()
        #: the one HTTP session for every push (pooled keep-alive connections)
        self.session = requests.Session()
        # no proxy variables or .netrc from the environment: pushes go straight to the
        # allow-listed services (reading them also costs ~0.5 ms per request); set
        # ``session.proxies`` to push through a proxy
        self.session.trust_env = False
        adapter = DeadlineAdapter(pool_connections=16, pool_maxsize=32)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    # --- setup ------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        self.keys = load_private_key(cfg["NOTICE_VAPID_PRIVATE_KEY"])
        check_public_key(cfg["NOTICE_VAPID_PUBLIC_KEY"], self.keys)
        self._vapid = Vapid02(self.keys.private_key)
        subject = cfg["NOTICE_VAPID_SUBJECT"]
        if not subject:
            raise ConfigurationError(
                "NOTICE_VAPID_SUBJECT is required by the webpush sender: a 'mailto:' or "
                "'https:' URI push services can contact you at"
            )
        self.subject: str = subject
        self.allow = AllowList.parse(cfg["NOTICE_PUSH_ALLOWED_HOSTS"])
        self.timeout = float(cfg["NOTICE_PUSH_TIMEOUT"])
        self.ttl = int(cfg["NOTICE_PUSH_TTL"])
        self.urgency: str = cfg["NOTICE_PUSH_URGENCY"]
        self.icon: str | None = cfg["NOTICE_PUSH_ICON"]
        self.link_origins = link_origins(cfg)
        self._db = app.extensions["sqlalchemy"]

    def _models(self) -> PushModels:
        return state_of().push_models

    def validate_data(self, data: object) -> None:
        """Check ``data["webpush"]`` (see :func:`notice.push.config.push_options`)."""
        push_options(data)

    # --- routing ----------------------------------------------------------------------

    def targets(self, user_ids: Sequence[Any]) -> Mapping[Any, Sequence[str]]:
        """Each user's subscription ids (one delivery per device). Runs in the publishing
        transaction."""
        table = self._models().PushSubscription.__table__
        return push_store.device_ids(self._db.session, table, user_ids)

    # --- batches: subscription bookkeeping is written once per batch ------------------

    def open(self) -> None:
        self._local.ok = set()
        self._local.failed = []
        self._local.subs = {}

    def prepare(self, items: Sequence[tuple[Any, str]]) -> None:
        """Load every subscription the batch pushes to in one query: one query per send
        was a third of a push's time on PostgreSQL (bench/push.py). Each send still
        checks its row's owner (:meth:`_load`); rows are as fresh as the batch's
        notices, which are loaded at its start too."""
        ids = [int(target) for _, target in items if target.isdigit()]
        if ids:
            table = self._models().PushSubscription.__table__
            found = push_store.load_many_for_send(self._db.engine, table, ids)
            # None: gone, known without asking again at send time
            self._local.subs = {sub_id: found.get(sub_id) for sub_id in ids}

    def close(self) -> None:
        ok: set[int] = getattr(self._local, "ok", set())
        failed: list[int] = getattr(self._local, "failed", [])
        self._local.ok, self._local.failed, self._local.subs = None, None, None
        self._record(ok, failed)

    def _record(self, ok: set[int], failed: list[int]) -> None:
        if not ok and not failed:
            return
        table = self._models().PushSubscription.__table__
        push_store.record_pushes(self._db.engine, table, ok, failed, now=utcnow())

    def _note(self, sub_id: int, success: bool) -> None:
        ok = getattr(self._local, "ok", None)
        if ok is None:  # called outside open()/close(): record right away
            self._record({sub_id} if success else set(), [] if success else [sub_id])
        elif success:
            ok.add(sub_id)
        else:
            self._local.failed.append(sub_id)

    # --- sending ----------------------------------------------------------------------

    def send(self, notice: Any) -> None:
        raise PermanentError("webpush deliveries need a target (a push subscription id)")

    def send_to(self, notice: Any, target: str) -> None:
        sub, options, body = self._prepare(notice, target)
        headers = self.headers(options)
        self.post(sub, body, headers, ttl=options.get("ttl", self.ttl))

    def preview(self, notice: Any, target: str) -> Any:
        """The JSON the service worker would receive from :meth:`send_to`, decoded
        (the subscription is checked, nothing is encrypted or posted)."""
        return json.loads(self._prepare(notice, target)[2])

    def _prepare(self, notice: Any, target: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """The checked subscription, the notice's push options and the payload."""
        sub = self._load(notice, target)
        try:
            self.allow.check(sub["endpoint"])
        except EndpointRefused as exc:
            raise PermanentError(f"refused to push: {exc}") from None
        try:
            options = push_options(notice.data)
        except ValueError as exc:
            # written before publish checked the options: retrying cannot fix it
            raise PermanentError(str(exc)) from None
        return sub, options, self.payload(notice, icon=options.get("icon") or self.icon)

    def payload(self, notice: Any, *, icon: str | None = None) -> bytes:
        """The JSON the service worker receives; body trimmed to fit (see module doc).
        ``url`` is the notice's link (:func:`notice.links.safe_link`), None when its
        url may not be one: the service worker opens it on a click. With Flask-Babel,
        ``lang`` is the user's locale (``@notices.locale_loader``), the Notification's
        language.

        ``actions`` are the notice's GET actions as notification buttons (``title``,
        ``url``); the service worker opens the clicked one's url. A POST action is left
        out: a click can only open a page, and a POST needs the app's own form and
        CSRF token (the inbox shows it)."""
        message: dict[str, Any] = {
            "title": notice.subject,
            "body": notice.content or "",
            "url": safe_link(notice.url, self.link_origins),
            "icon": icon,
            "id": notice.id,
            "type": str(notice.notice_type),
        }
        buttons = [
            {"title": a["label"], "url": url}
            for a in notice.actions or ()
            if a.get("method") == "GET" and (url := safe_link(a.get("url"), self.link_origins))
        ]
        if buttons:
            message["actions"] = buttons
        lang = recipient_language(state_of().locale_loader, notice.user_id)
        if lang is not None:  # without Flask-Babel the payload stays as it was
            message["lang"] = lang
        return fit_payload(message)

    def headers(self, options: Mapping[str, Any]) -> dict[str, str]:
        """The Urgency and Topic headers of checked :func:`push_options`."""
        headers = {"Urgency": str(options.get("urgency", self.urgency))}
        topic = options.get("topic")
        if topic is not None:
            headers["Topic"] = str(topic)
        return headers

    def post(
        self, sub: Mapping[str, Any], body: bytes, headers: dict[str, str], *, ttl: int
    ) -> None:
        """Encrypt ``body`` for ``sub``, sign, POST and map the answer (see module doc)."""
        assert self._vapid is not None, "WebPushSender.init_app was not called"
        endpoint = sub["endpoint"]
        info = {"endpoint": endpoint, "keys": {"p256dh": sub["p256dh"], "auth": sub["auth"]}}
        try:
            encrypted = WebPusher(info).encode(body, "aes128gcm")["body"]
        except (WebPushException, ValueError) as exc:
            raise PermanentError(f"cannot encrypt for this subscription: {exc}") from exc
        # pywebpush and py_vapid write into the claims they get: a fresh dict each time
        claims = {
            "sub": self.subject,
            "aud": origin(endpoint),
            "exp": int(time.time()) + VAPID_EXP_SECONDS,
        }
        request_headers = {
            **headers,
            **self._vapid.sign(claims),
            "TTL": str(max(0, ttl)),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
        }
        try:
            # NOTICE_PUSH_TIMEOUT is the whole request's budget and at most 4 KB of the
            # answer is read: per-read timeouts let a drip-fed answer hold a send for
            # minutes, and an endless body was read whole. Redirects are not followed:
            # one could lead past the allow-list.
            answer = post_with_deadline(
                self.session,
                endpoint,
                data=encrypted,
                headers=request_headers,
                timeout=self.timeout,
            )
        except TimedOut as exc:
            self._note(sub["id"], False)
            raise TransientError(f"push service {exc}") from exc
        except Unreachable as exc:
            self._note(sub["id"], False)
            raise TransientError(f"cannot reach the push service: {exc}") from exc
        self._answer(sub, answer)

    def _answer(self, sub: Mapping[str, Any], resp: Answer) -> None:
        status = resp.status
        if status in (200, 201, 202):
            self._note(sub["id"], True)
            return
        detail = f"push service answered {status}: {resp.text[:200]}".rstrip(": ")
        if status in (404, 410):
            self._delete(sub["id"])
            raise PermanentError(f"{detail}; subscription removed")
        self._note(sub["id"], False)
        if status == 429 or status >= 500:
            raise TransientError(detail, retry_after=retry_after(resp.headers.get("Retry-After")))
        if status in (401, 403):
            logger.warning("push service refused our VAPID authorization (%s)", status)
        raise PermanentError(detail)

    def _load(self, notice: Any, target: str) -> dict[str, Any]:
        """The subscription ``target`` names, checked at send time: it must still exist
        and still belong to the notice's user. The delivery was written earlier (a
        retry, hours earlier); since then the device may have been removed or moved to
        another user (a login on the same browser), and pushing then would put a
        private notice on someone else's screen."""
        table = self._models().PushSubscription.__table__
        try:
            sub_id = int(target)
        except ValueError:
            raise PermanentError(f"webpush target {target!r} is not a subscription id") from None
        prepared: dict[int, dict[str, Any]] | None = getattr(self._local, "subs", None)
        if prepared is not None and sub_id in prepared:
            sub: dict[str, Any] | None = prepared[sub_id]
        else:
            sub = push_store.load_for_send(self._db.engine, table, sub_id)
        if sub is None:
            raise SkipDelivery(f"push subscription {sub_id} is gone")
        if user_key(sub["user_id"]) != user_key(notice.user_id):
            raise SkipDelivery(f"push subscription {sub_id} belongs to another user now")
        return sub

    def _delete(self, sub_id: int) -> None:
        prepared: dict[int, Any] | None = getattr(self._local, "subs", None)
        if prepared is not None:
            # a later send of this batch to the same browser finds it gone
            prepared[sub_id] = None
        table = self._models().PushSubscription.__table__
        push_store.delete_device(self._db.engine, table, sub_id)


def fit_payload(message: dict[str, Any], limit: int = MAX_PAYLOAD) -> bytes:
    """Encode ``message`` as compact JSON of at most ``limit`` bytes, trimming ``body``.

    :raise PermanentError: it does not fit even with an empty body.
    """

    def encode(msg: dict[str, Any]) -> bytes:
        return json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    raw = encode(message)
    if len(raw) <= limit:
        return raw
    body: str = message.get("body") or ""
    lo, hi = 0, len(body)  # the longest prefix that fits, by bisection
    best: bytes | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = encode({**message, "body": body[:mid] + "…" if mid else ""})
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is None:
        raise PermanentError(
            f"push payload is {len(raw)} bytes and still over the {limit}-byte limit with "
            "an empty body; shorten the title, url or icon"
        )
    return best
