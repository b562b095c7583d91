"""Which URLs of notices become links, absolute links for emails, and the signed
one-click unsubscribe tokens in them.

:func:`safe_link` is the one rule for a notice's ``url`` wherever it could be followed
(inbox page, the JSON ``link`` field notice.js uses, emails, Web Push payloads): a
path on this site (``/x``) or an absolute http(s) URL whose origin is in
``NOTICE_LINK_ORIGINS`` (plus the ``NOTICE_BASE_URL`` origin); anything else is shown
as text.

A token names a user, a notice type and a channel (or the digest), signed with the
app's ``SECRET_KEY`` (itsdangerous, salted so no other signed value of the app is
accepted) and valid for ``NOTICE_UNSUBSCRIBE_MAX_AGE`` seconds. It is the only
credential the unsubscribe endpoint needs, so the link works without logging in.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from flask import Flask
from itsdangerous import BadData, URLSafeTimedSerializer

from .errors import BadToken, ConfigurationError

SALT = "notice.unsubscribe"
#: backslashes, whitespace and control characters: browsers read "/\\host" as
#: "//host" and drop tabs and newlines inside URLs, so a URL holding any is no link
_UNSAFE = re.compile(r"[\\\s\x00-\x1f\x7f]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
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
    """``url`` as an email link: :func:`safe_link` with the app's origins, a path made
    absolute against the base; None when it is no link."""
    link = safe_link(url, link_origins(app.config))
    if link is None or not link.startswith("/"):
        return link
    return urljoin(base_url(app) + "/", link)


# --- the link rule ----------------------------------------------------------------------


def origin_of(url: str) -> str | None:
    """The normalised origin of an absolute http(s) URL: lower-case scheme and host,
    no userinfo, no default port (``https://Push.Example.com:443/x`` ->
    ``https://push.example.com``); None when ``url`` has none."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when not a number or out of range
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def safe_link(url: object, allowed_origins: Collection[str] = ()) -> str | None:
    """``url`` if it may be rendered as a link, else None.

    A link is a path on this site (``/x``; not ``//x``, which browsers resolve to
    another host) or an absolute http(s) URL without userinfo whose
    :func:`origin_of` is in ``allowed_origins`` (normalised origins, see
    :func:`parse_origins`). ``javascript:``, ``data:``, relative paths and other
    sites are text only.
    """
    if not isinstance(url, str):
        return None
    url = url.strip()
    if not url or _UNSAFE.search(url):
        return None
    if url.startswith("/"):
        return None if url.startswith("//") else url
    if not allowed_origins:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None:
        return None  # "https://allowed.example@evil.example" reads like the wrong host
    return url if origin_of(url) in allowed_origins else None


def parse_origins(entries: object, key: str = "NOTICE_LINK_ORIGINS") -> frozenset[str]:
    """Normalised origins from a list of ``"https://host[:port]"`` entries; raise
    ConfigurationError naming ``key`` on anything else."""
    if isinstance(entries, str) or not isinstance(entries, Iterable):
        raise ConfigurationError(f"{key} must be a list of origins like 'https://example.com'")
    origins: set[str] = set()
    for entry in entries:
        found = origin_of(entry) if isinstance(entry, str) and not _UNSAFE.search(entry) else None
        parts = urlsplit(entry) if found else None
        if (
            parts is None
            or found is None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ConfigurationError(
                f"{key}: {entry!r} must be an origin like 'https://example.com[:port]'"
            )
        origins.add(found)
    return frozenset(origins)


def link_origins(cfg: Mapping[str, Any]) -> frozenset[str]:
    """The origins absolute links may point at: ``NOTICE_LINK_ORIGINS`` and the
    origin of ``NOTICE_BASE_URL`` when set."""
    origins = parse_origins(cfg.get("NOTICE_LINK_ORIGINS", ()))
    base = cfg.get("NOTICE_BASE_URL")
    own = origin_of(base) if isinstance(base, str) else None
    return origins | {own} if own else origins


def with_link(notice: Mapping[str, Any], allowed_origins: Collection[str]) -> dict[str, Any]:
    """A notice's JSON dict plus ``link``: its :func:`safe_link` (None: no link). The
    browser follows ``link`` only; ``url`` stays as stored.

    Its ``actions`` keep only those whose url is a safe link now: publishing refused
    the others, but ``NOTICE_LINK_ORIGINS`` may have lost an origin since."""
    shown = {**notice, "link": safe_link(notice.get("url"), allowed_origins)}
    if notice.get("actions"):
        shown["actions"] = [
            a for a in notice["actions"] if safe_link(a.get("url"), allowed_origins) is not None
        ]
    return shown
