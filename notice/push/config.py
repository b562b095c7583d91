"""Checking the Web Push and service API config, and the push endpoint allow-list.

Push endpoints come from browsers, so they are user input: without the allow-list
a user could make the server POST to any address, internal ones included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from flask import Flask

from ..errors import ConfigurationError, EndpointRefused
from ..links import origin_of, safe_link

URGENCIES = ("very-low", "low", "normal", "high")
#: the longest TTL a notice may ask for: 28 days, what the big push services keep at most
MAX_TTL = 28 * 24 * 3600
#: RFC 8030 Topic: at most 32 characters of the URL-safe base64 alphabet
TOPIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_ICON = 2048
_HOST_RE = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


#: backslashes, whitespace and control characters: never in a push service URL
_UNSAFE = re.compile(r"[\\\s\x00-\x1f\x7f]")
#: the authority of an allowed endpoint: host name or IPv4 (or a bracketed IPv6
#: literal, for loopback origins in tests) and an optional port; no userinfo, no escapes
_NETLOC_RE = re.compile(r"^([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?$")


@dataclass(frozen=True)
class AllowList:
    """Which push endpoints the server may POST to.

    Entries: ``"fcm.googleapis.com"`` (exactly that host), ``"*.notify.windows.com"``
    (any subdomain), both over ``https`` on port 443 only; or an exact origin such as
    ``"http://127.0.0.1:8765"`` (scheme, host and port must all match).
    """

    hosts: frozenset[str]
    suffixes: tuple[str, ...]
    origins: frozenset[tuple[str, str, int]]

    @classmethod
    def parse(cls, entries: Iterable[str], *, key: str = "NOTICE_PUSH_ALLOWED_HOSTS") -> AllowList:
        hosts: set[str] = set()
        suffixes: list[str] = []
        origins: set[tuple[str, str, int]] = set()
        for entry in entries:
            if not isinstance(entry, str) or not entry.strip():
                raise ConfigurationError(f"{key} entries must be non-empty strings, got {entry!r}")
            text = entry.strip().lower()
            if "://" in text:
                parts = urlsplit(text)
                if (
                    parts.scheme not in ("http", "https")
                    or not parts.hostname
                    or parts.path not in ("", "/")
                    or parts.username
                    or parts.query
                ):
                    raise ConfigurationError(
                        f"{key}: {entry!r} must be an origin like 'https://host:port'"
                    )
                origins.add((parts.scheme, parts.hostname, _port(parts)))
            elif _HOST_RE.match(text):
                if text.startswith("*."):
                    suffixes.append(text[1:])
                else:
                    hosts.add(text)
            else:
                raise ConfigurationError(
                    f"{key}: {entry!r} is neither a host name, '*.suffix' nor an origin"
                )
        return cls(frozenset(hosts), tuple(suffixes), frozenset(origins))

    def check(self, endpoint: object) -> str:
        """Return ``endpoint`` if the server may POST to it; raise EndpointRefused."""
        if not isinstance(endpoint, str) or not endpoint or len(endpoint) > 1024:
            raise EndpointRefused("endpoint must be a URL of at most 1024 characters")
        if _UNSAFE.search(endpoint):
            # urlsplit and the HTTP client disagree on where such a host ends
            # ("https://10.0.0.1\\.push.example" connects to 10.0.0.1): refuse outright
            raise EndpointRefused("endpoint contains characters a push URL never has")
        try:
            parts = urlsplit(endpoint)
            port = _port(parts)
        except ValueError:
            raise EndpointRefused("endpoint is not a valid URL") from None
        host = (parts.hostname or "").lower()
        if not host or parts.username is not None or parts.password is not None:
            raise EndpointRefused("endpoint must be a plain URL with a host")
        if not _NETLOC_RE.match(parts.netloc):
            raise EndpointRefused("endpoint host must be a plain host name or address")
        if (parts.scheme, host, port) in self.origins:
            return endpoint
        if parts.scheme != "https" or port != 443:
            raise EndpointRefused("endpoint must be an https:// URL of a push service")
        if host in self.hosts or any(host.endswith(s) for s in self.suffixes):
            return endpoint
        raise EndpointRefused(f"{host} is not an allowed push service (NOTICE_PUSH_ALLOWED_HOSTS)")


def _port(parts: SplitResult) -> int:
    port = parts.port  # raises ValueError when out of range
    if port is not None:
        return port
    return 443 if parts.scheme == "https" else 80


def origin(endpoint: str) -> str:
    """The VAPID ``aud`` claim of an endpoint: its normalised origin, lower-case scheme
    and host without the default port, since push services compare it with their own
    origin exactly (``https://Push.Example.com:443/x`` -> ``https://push.example.com``)."""
    found = origin_of(endpoint)
    if found is None:
        raise EndpointRefused("endpoint has no http(s) origin")
    return found


def _is_url(value: str) -> bool:
    """A path on this site or an absolute http(s) URL (by the link rule's syntax)."""
    own = origin_of(value)
    return safe_link(value, {own} if own else ()) is not None


def push_options(data: object) -> dict[str, Any]:
    """The per-notice push options in ``data["webpush"]``, checked: ``ttl`` whole
    seconds in 0..:data:`MAX_TTL`, ``urgency`` one of :data:`URGENCIES`, ``topic`` an
    RFC 8030 topic, ``icon`` a path or http(s) URL. Options set to None are left out.

    :raise ValueError: naming the first wrong field.
    """
    raw = data.get("webpush") if isinstance(data, Mapping) else None
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError('data["webpush"] must be an object of ttl, urgency, topic and icon')
    options = {k: v for k, v in raw.items() if v is not None}
    ttl = options.get("ttl")
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL
    ):
        raise ValueError(
            f'data["webpush"]["ttl"] must be whole seconds from 0 to {MAX_TTL} (28 days)'
        )
    urgency = options.get("urgency")
    if urgency is not None and urgency not in URGENCIES:
        raise ValueError(f'data["webpush"]["urgency"] must be one of {", ".join(URGENCIES)}')
    topic = options.get("topic")
    if topic is not None and (not isinstance(topic, str) or not TOPIC_RE.match(topic)):
        raise ValueError('data["webpush"]["topic"] must be 1-32 characters of [A-Za-z0-9_-]')
    icon = options.get("icon")
    if icon is not None and (
        not isinstance(icon, str) or len(icon) > MAX_ICON or not _is_url(icon)
    ):
        raise ValueError(
            f'data["webpush"]["icon"] must be a path (/...) or an http(s) URL of at most '
            f"{MAX_ICON} characters"
        )
    return options


@dataclass(frozen=True)
class PushSettings:
    """The push keys the web layer needs, read once by ``init_app`` (the webpush sender
    reads its own in its ``init_app``)."""

    #: where subscriptions may point (NOTICE_PUSH_ALLOWED_HOSTS)
    allow: AllowList
    #: devices kept per user (NOTICE_PUSH_MAX_SUBSCRIPTIONS)
    max_subscriptions: int
    #: the VAPID public key browsers subscribe with; None: push is not set up
    public_key: str | None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PushSettings:
        public_key = cfg["NOTICE_VAPID_PUBLIC_KEY"] or None
        if cfg["NOTICE_VAPID_PRIVATE_KEY"]:
            # imported here: cryptography comes with the webpush extra, not the core
            from .vapid import load_private_key

            public_key = load_private_key(cfg["NOTICE_VAPID_PRIVATE_KEY"]).public_key
        return cls(
            allow=AllowList.parse(cfg["NOTICE_PUSH_ALLOWED_HOSTS"]),
            max_subscriptions=int(cfg["NOTICE_PUSH_MAX_SUBSCRIPTIONS"]),
            public_key=str(public_key) if public_key else None,
        )


def validate_push(app: Flask) -> None:
    """Fail fast on wrong push and service API config (called by ``init_app``)."""
    cfg = app.config
    allowed = cfg["NOTICE_PUSH_ALLOWED_HOSTS"]
    if isinstance(allowed, str):
        raise ConfigurationError("NOTICE_PUSH_ALLOWED_HOSTS must be a list of hosts, not a string")
    AllowList.parse(allowed)
    timeout = cfg["NOTICE_PUSH_TIMEOUT"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError(f"NOTICE_PUSH_TIMEOUT must be a positive number, got {timeout!r}")
    ttl = cfg["NOTICE_PUSH_TTL"]
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        raise ConfigurationError(f"NOTICE_PUSH_TTL must be a whole number >= 0, got {ttl!r}")
    if cfg["NOTICE_PUSH_URGENCY"] not in URGENCIES:
        raise ConfigurationError(f"NOTICE_PUSH_URGENCY must be one of {', '.join(URGENCIES)}")
    limit = cfg["NOTICE_PUSH_MAX_SUBSCRIPTIONS"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError("NOTICE_PUSH_MAX_SUBSCRIPTIONS must be a whole number >= 1")
    subject = cfg["NOTICE_VAPID_SUBJECT"]
    if subject is not None and (
        not isinstance(subject, str) or not subject.startswith(("mailto:", "https:"))
    ):
        raise ConfigurationError(
            "NOTICE_VAPID_SUBJECT must be a 'mailto:' or 'https:' URI push services can "
            "contact you at"
        )
    if cfg["NOTICE_VAPID_PRIVATE_KEY"] not in (None, ""):
        # imported here: cryptography comes with the webpush extra, not the core
        from .vapid import check_public_key, load_private_key

        keys = load_private_key(cfg["NOTICE_VAPID_PRIVATE_KEY"])
        check_public_key(cfg["NOTICE_VAPID_PUBLIC_KEY"], keys)
    tokens = cfg["NOTICE_API_TOKENS"]
    if isinstance(tokens, str) or not all(isinstance(t, str) and len(t) >= 16 for t in tokens):
        raise ConfigurationError(
            "NOTICE_API_TOKENS must be a list of secret strings of at least 16 characters"
        )
    hook = cfg["NOTICE_API_AUTH"]
    if hook is not None and not callable(hook):
        raise ConfigurationError("NOTICE_API_AUTH must be a callable f(token) -> bool, or None")
