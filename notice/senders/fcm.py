"""Firebase Cloud Messaging (HTTP v1): one delivery per registered Android/iOS device.

Authorisation is an OAuth2 access token of a service account (``google-auth`` signs the
RS256 JWT-bearer grant). One token serves every send of the process, across threads,
until :data:`REFRESH_MARGIN` before it expires. Each send is one POST to
``{NOTICE_FCM_URL}projects/{project}/messages:send`` under the total deadline
``NOTICE_FCM_TIMEOUT``, to allow-listed hosts only, without following redirects.

==========================================  ============================================
200                                         sent; the device's ``last_used_at`` is set
``UNREGISTERED`` (404)                      the app was uninstalled: device deleted, final
``INVALID_ARGUMENT`` on ``message.token``   not a token FCM knows: device deleted, final
401                                         our access token was refused: fetched anew,
                                            retried
429 / ``QUOTA_EXCEEDED``, 5xx, timeout      ``TransientError`` (honours ``Retry-After``)
other 4xx, 3xx                              ``PermanentError``
==========================================  ============================================

Neither the device token, the access token nor the key is put in logs or errors.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.oauth2 import service_account

from ..errors import ConfigurationError, PermanentError, TransientError
from .http import Answer, TimedOut, Unreachable, deadline_session, post_with_deadline, retry_after
from .mobile import MobileSender, encode
from .urls import check_url

if TYPE_CHECKING:
    from flask import Flask

logger = logging.getLogger("notice")

#: the OAuth2 scope of FCM's send API
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
#: an access token is fetched anew this long before it expires (Google's last an hour)
REFRESH_MARGIN = dt.timedelta(minutes=5)
#: FCM's error codes saying the token is dead
DEAD_TOKEN = frozenset({"UNREGISTERED"})
#: largest token endpoint answer read (an access token is ~1-2 KB)
MAX_TOKEN_ANSWER = 64 * 1024


def load_service_account(value: object, *, key: str = "NOTICE_FCM_CREDENTIALS") -> dict[str, Any]:
    """A service account's JSON key from a dict, JSON text or a file path.

    :raise ConfigurationError: naming ``key``; the value itself is never included.
    """
    if isinstance(value, Mapping):
        info = dict(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if not text.startswith("{") and os.path.isfile(text):
                with open(text, encoding="utf-8") as fh:
                    text = fh.read()
            info = json.loads(text)
        except OSError as exc:
            raise ConfigurationError(f"{key}: cannot read the key file ({exc.strerror})") from None
        except ValueError:
            raise ConfigurationError(f"{key} is not a service account JSON key") from None
    else:
        raise ConfigurationError(
            f"{key} is not set: give the service account's JSON key (a file path, its "
            "text or a dict) from the Firebase console"
        )
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigurationError(f"{key} is not a service account JSON key")
    for field in ("client_email", "private_key", "token_uri"):
        if not isinstance(info.get(field), str) or not info[field]:
            raise ConfigurationError(f"{key} has no {field!r}")
    return info


class _Response(transport.Response):
    """google-auth's view of an :class:`~notice.senders.http.Answer`."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    @property
    def status(self) -> int:
        return self._answer.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._answer.headers

    @property
    def data(self) -> bytes:
        return self._answer.body


class _DeadlineRequest(transport.Request):
    """google-auth's HTTP hook doing each token request with :func:`post_with_deadline`
    under one deadline for the whole fetch: google-auth retries a failed grant, and
    each try would otherwise get the full timeout again."""

    def __init__(self, session: requests.Session, deadline: float) -> None:
        self.session, self.deadline = session, deadline

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> transport.Response:
        remaining = self.deadline - time.monotonic()
        if method != "POST" or remaining <= 0:
            raise google_exceptions.TransportError("the token request's deadline passed")  # type: ignore[no-untyped-call]
        try:
            answer = post_with_deadline(
                self.session,
                url,
                data=body if isinstance(body, bytes) else str(body or "").encode(),
                headers=dict(headers or {}),
                timeout=remaining,
                max_body=MAX_TOKEN_ANSWER,
            )
        except TransientError as exc:
            raise google_exceptions.TransportError(str(exc)) from exc  # type: ignore[no-untyped-call]
        return _Response(answer)


class AccessTokens:
    """The service account's OAuth2 access token, shared by every send and thread.

    :meth:`get` returns the cached token until :data:`REFRESH_MARGIN` before it
    expires; then one caller fetches it while the others wait for that fetch (a lock),
    so a burst of sends costs one token request, not one each.
    """

    def __init__(self, credentials: Any, session: requests.Session, timeout: float) -> None:
        self.credentials = credentials
        self.session = session
        self.timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expiry = dt.datetime.min.replace(tzinfo=dt.timezone.utc)

    def get(self, now: dt.datetime | None = None) -> str:
        """A valid access token; :class:`TransientError` when none can be had."""
        with self._lock:
            now = now or dt.datetime.now(dt.timezone.utc)
            if self._token is None or now >= self._expiry - REFRESH_MARGIN:
                self._fetch()
            assert self._token is not None
            return self._token

    def forget(self, token: str) -> None:
        """Drop ``token`` (FCM refused it) so the next :meth:`get` fetches another; a
        token fetched meanwhile by another thread is kept."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> None:
        request = _DeadlineRequest(self.session, time.monotonic() + self.timeout)
        try:
            self.credentials.refresh(request)
        except google_exceptions.RefreshError as exc:
            # the grant's error code only: the answer and the assertion stay out of logs
            code = exc.args[0].split(":", 1)[0] if exc.args and isinstance(exc.args[0], str) else ""
            logger.warning("FCM: the token endpoint refused the service account (%s)", code)
            raise TransientError("FCM: no access token (the token endpoint refused)") from None
        except google_exceptions.TransportError as exc:
            raise TransientError(f"FCM: no access token ({exc})") from None
        token, expiry = self.credentials.token, self.credentials.expiry
        if not isinstance(token, str) or not token:
            raise TransientError("FCM: the token endpoint gave no access token")
        self._token = token
        # google-auth gives naive UTC
        self._expiry = (
            expiry.replace(tzinfo=dt.timezone.utc)
            if isinstance(expiry, dt.datetime)
            else dt.datetime.now(dt.timezone.utc) + REFRESH_MARGIN
        )


class FCMSender(MobileSender):
    """Sends notices to every FCM device of their user."""

    name = "fcm"
    platform = "fcm"

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        cfg = app.config
        info = load_service_account(cfg["NOTICE_FCM_CREDENTIALS"])
        project = cfg["NOTICE_FCM_PROJECT_ID"] or info.get("project_id")
        if not isinstance(project, str) or not project:
            raise ConfigurationError(
                "NOTICE_FCM_PROJECT_ID is not set and the service account names no project_id"
            )
        hosts = cfg["NOTICE_FCM_HOSTS"]
        token_uri = cfg["NOTICE_FCM_TOKEN_URI"] or info["token_uri"]
        check_url(token_uri, hosts, "NOTICE_FCM_TOKEN_URI", "NOTICE_FCM_HOSTS")
        base = check_url(cfg["NOTICE_FCM_URL"], hosts, "NOTICE_FCM_URL", "NOTICE_FCM_HOSTS")
        self.url = f"{base.rstrip('/')}/projects/{quote(project, safe='')}/messages:send"
        self.timeout = float(cfg["NOTICE_FCM_TIMEOUT"])
        try:
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                {**info, "token_uri": token_uri}, scopes=[SCOPE]
            )
        except ValueError:
            raise ConfigurationError(
                "NOTICE_FCM_CREDENTIALS: the service account's private_key is not a valid RSA key"
            ) from None
        self.tokens = AccessTokens(credentials, deadline_session(), self.timeout)

    def message(self, notice: Any, device: Mapping[str, Any]) -> dict[str, Any]:
        """``{"message": {"token", "notification": {"title", "body"}, "data"}}``."""
        notification = {"title": notice.subject, "body": notice.content or ""}
        return {
            "message": {
                "token": device["token"],
                "notification": notification,
                "data": self.fields(notice),
            }
        }

    def session(self) -> requests.Session:
        # requests.Session is not documented thread-safe: one per dispatcher thread
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = deadline_session()
        return session

    def push(self, notice: Any, device: Mapping[str, Any], message: dict[str, Any]) -> None:
        token = self.tokens.get()
        try:
            answer = post_with_deadline(
                self.session(),
                self.url,
                data=encode(message),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json; charset=UTF-8",
                },
                timeout=self.timeout,
            )
        except TimedOut as exc:
            raise TransientError(f"FCM {exc}") from exc
        except Unreachable as exc:
            raise TransientError(f"cannot reach FCM: {exc}") from exc
        self._answer(device, answer, token)

    def _answer(self, device: Mapping[str, Any], answer: Answer, token: str) -> None:
        status = answer.status
        if status == 200:
            return
        code, fields = fcm_error(answer.body)
        detail = f"FCM answered {status} {code}".rstrip()
        if code in DEAD_TOKEN or (code == "INVALID_ARGUMENT" and "message.token" in fields):
            raise self.drop(device, detail)
        if status == 401:
            # expired or revoked early: the next try fetches a new one
            self.tokens.forget(token)
            raise TransientError(detail)
        if status == 429 or status >= 500 or code in ("QUOTA_EXCEEDED", "UNAVAILABLE"):
            raise TransientError(detail, retry_after=retry_after(answer.headers.get("Retry-After")))
        if status == 403:
            logger.warning("FCM refused to send for this service account (%s)", code or status)
        raise PermanentError(detail)


def fcm_error(body: bytes) -> tuple[str, set[str]]:
    """The FCM error code of an error answer (``details[].errorCode``, else
    ``error.status``) and the fields its ``BadRequest`` detail names."""
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return "", set()
    if not isinstance(error, dict):
        return "", set()
    code = str(error.get("status") or "")
    fields: set[str] = set()
    for detail in error.get("details") or ():
        if not isinstance(detail, dict):
            continue
        if isinstance(detail.get("errorCode"), str):
            code = detail["errorCode"]
        for violation in detail.get("fieldViolations") or ():
            if isinstance(violation, dict) and isinstance(violation.get("field"), str):
                fields.add(violation["field"])
    return code, fields
