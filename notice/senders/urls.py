"""Which URLs a sender may reach: the one check every sender that sends credentials,
tokens or webhook secrets over HTTP makes (chat, SMS, FCM, APNs), at startup on its
configured URLs and at send time on URLs a target loader gave.

Kept apart from :mod:`notice.senders.http` because that module needs ``requests`` (an
extra), while :mod:`notice.mobile.config` checks these URLs for every app at startup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from ..errors import ConfigurationError


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """``host`` is one of ``allowed`` or, for an entry ``".example.com"``, under it."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.lower()
        if (entry.startswith(".") and host.endswith(entry)) or host == entry:
            return True
    return False


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: object, hosts: Sequence[str], hosts_key: str) -> str | None:
    """Why a sender may not send to ``url``, or None when it may: https (plain http
    only to a loopback host, for a test's fake) on a host of ``hosts`` (the setting
    ``hosts_key``), with no user or password in it.

    What goes to the URL is a secret (a token, Basic auth, a webhook path): over plain
    http anyone on the way reads it, and without the allow-list a config typo or a
    stored URL sends it anywhere. The reason never repeats the URL (its path may be
    the secret).
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    host = (parts.hostname or "") if parts else ""
    if parts is None or not host or parts.scheme not in ("http", "https"):
        return "is not an http(s) URL with a host"
    if parts.username or parts.password:
        return "must not carry a user or password"
    if parts.scheme == "http" and not is_loopback(host):
        return "must be https (http only to a loopback host)"
    if not host_allowed(host, hosts):
        return f"has host {host!r}, which is not in {hosts_key}"
    return None


def check_url(url: object, hosts: Sequence[str], key: str, hosts_key: str) -> str:
    """``url`` when :func:`url_problem` finds nothing wrong; else ConfigurationError
    naming the setting ``key``."""
    problem = url_problem(url, hosts, hosts_key)
    if problem is not None:
        raise ConfigurationError(f"{key} {problem}")
    assert isinstance(url, str)
    return url
