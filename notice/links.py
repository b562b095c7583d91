"""Absolute links for emails, and the signed one-click unsubscribe tokens in them.

A token names a user, a notice type and a channel (or the digest), signed with the
app's ``SECRET_KEY`` (itsdangerous, salted so no other signed value of the app is
accepted) and valid for ``NOTICE_UNSUBSCRIBE_MAX_AGE`` seconds. It is the only
credential the unsubscribe endpoint needs, so the link works without logging in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from flask import Flask
from itsdangerous import BadData, URLSafeTimedSerializer

from .errors import BadToken, ConfigurationError

SALT = "notice.unsubscribe"
#: the pseudo channel of digest emails: unsubscribing turns the digest off
DIGEST = "digest"


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token asks for."""

    user_id: Any
    #: the notice type, or None for the digest
    notice_type: str | None
    channel: str


def _serializer(app: Flask) -> URLSafeTimedSerializer:
    secret = app.config.get("SECRET_KEY")
    if not secret:
        raise ConfigurationError("signed unsubscribe links need the app's SECRET_KEY")
    return URLSafeTimedSerializer(secret, salt=SALT)


def make_token(app: Flask, user_id: Any, notice_type: str | None, channel: str) -> str:
    """Sign an unsubscribe request for ``user_id``."""
    uid = user_id if isinstance(user_id, (int, str)) else str(user_id)
    return _serializer(app).dumps({"u": uid, "t": notice_type, "c": channel})


def read_token(app: Flask, token: str) -> Unsubscribe:
    """Check and decode a token; raise :class:`BadToken` if it is not genuine or expired."""
    try:
        data = _serializer(app).loads(token, max_age=app.config["NOTICE_UNSUBSCRIBE_MAX_AGE"])
    except BadData as exc:
        raise BadToken(str(exc)) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("u"), (int, str))
        or not isinstance(data.get("c"), str)
        or not isinstance(data.get("t"), (str, type(None)))
    ):
        raise BadToken("malformed unsubscribe token")
    return Unsubscribe(user_id=data["u"], notice_type=data["t"], channel=data["c"])


def base_url(app: Flask) -> str:
    """The absolute root of the app: ``NOTICE_BASE_URL``, else built from
    ``SERVER_NAME``; raise ConfigurationError when neither is set."""
    base = app.config.get("NOTICE_BASE_URL")
    if base:
        return str(base).rstrip("/")
    server = app.config.get("SERVER_NAME")
    if server:
        scheme = app.config.get("PREFERRED_URL_SCHEME") or "http"
        root = (app.config.get("APPLICATION_ROOT") or "/").rstrip("/")
        return f"{scheme}://{server}{root}"
    raise ConfigurationError(
        "links in emails must be absolute: set NOTICE_BASE_URL (e.g. 'https://example.com') "
        "or SERVER_NAME"
    )


def check_base_url(app: Flask) -> None:
    """Fail fast on a missing or non-http(s) base URL."""
    parts = urlsplit(base_url(app))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"NOTICE_BASE_URL must be an absolute http(s) URL, got {base_url(app)!r}"
        )


def inbox_url(app: Flask, path: str) -> str:
    """Absolute URL of ``path`` under ``NOTICE_URL_PREFIX``."""
    return f"{base_url(app)}{app.config['NOTICE_URL_PREFIX'].rstrip('/')}{path}"


def unsubscribe_url(app: Flask, user_id: Any, notice_type: str | None, channel: str) -> str:
    """The one-click unsubscribe link for a user, type and channel."""
    return inbox_url(app, "/unsubscribe/" + make_token(app, user_id, notice_type, channel))


def absolute_link(app: Flask, url: str | None) -> str | None:
    """``url`` made absolute against the base; None unless it is http(s) (so a
    ``javascript:`` URL in a notice never becomes a link in an email)."""
    if not url:
        return None
    full = urljoin(base_url(app) + "/", url)
    parts = urlsplit(full)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return full
