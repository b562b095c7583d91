"""Checking the mobile push config, and where the FCM and APNs senders may connect.

The senders read their own required keys (credentials, key ids) in ``init_app``;
:func:`validate_mobile` checks the shape of every key at startup, for every app.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: object, hosts: Sequence[str], key: str) -> str:
    """``url`` if it is https (plain http only to a loopback address, for fakes) on a
    host of ``hosts``; ConfigurationError naming ``key`` otherwise. The credentials and
    tokens go to this URL: without the allow-list a config typo could send them
    anywhere."""
    parts = urlsplit(url) if isinstance(url, str) else None
    host = (parts.hostname or "") if parts else ""
    if parts is None or not host or parts.username or parts.password:
        raise ConfigurationError(f"{key} must be an http(s) URL with a host")
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(host)):
        raise ConfigurationError(f"{key} must be an https URL (http only to a loopback address)")
    hosts_key = key.rsplit("_", 1)[0] + "_HOSTS"
    if not host_allowed(host, hosts):
        raise ConfigurationError(f"{key}: host {host!r} is not in {hosts_key}")
    assert isinstance(url, str)
    return url


def _hosts(cfg: Mapping[str, Any], key: str) -> list[str]:
    hosts = cfg[key]
    if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
        raise ConfigurationError(f"{key} must be a list of host names, got {hosts!r}")
    return list(hosts)


def _seconds(cfg: Mapping[str, Any], key: str) -> None:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(f"{key} must be a positive number of seconds, got {value!r}")


@dataclass(frozen=True)
class MobileSettings:
    """The mobile keys the web layer needs, read once by ``init_app`` (the fcm and apns
    senders read their own in their ``init_app``)."""

    #: devices kept per user (NOTICE_MOBILE_MAX_DEVICES)
    max_devices: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MobileSettings:
        return cls(max_devices=int(cfg["NOTICE_MOBILE_MAX_DEVICES"]))


def validate_mobile(cfg: Mapping[str, Any]) -> None:
    """Fail fast on wrong mobile push config (called by ``init_app``)."""
    limit = cfg["NOTICE_MOBILE_MAX_DEVICES"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError("NOTICE_MOBILE_MAX_DEVICES must be a whole number >= 1")
    fcm_hosts = _hosts(cfg, "NOTICE_FCM_HOSTS")
    check_url(cfg["NOTICE_FCM_URL"], fcm_hosts, "NOTICE_FCM_URL")
    if cfg["NOTICE_FCM_TOKEN_URI"] is not None:
        check_url(cfg["NOTICE_FCM_TOKEN_URI"], fcm_hosts, "NOTICE_FCM_TOKEN_URI")
    _seconds(cfg, "NOTICE_FCM_TIMEOUT")
    apns_hosts = _hosts(cfg, "NOTICE_APNS_HOSTS")
    check_url(cfg["NOTICE_APNS_URL"], apns_hosts, "NOTICE_APNS_URL")
    _seconds(cfg, "NOTICE_APNS_TIMEOUT")
    if cfg["NOTICE_APNS_PRIORITY"] not in (5, 10) or isinstance(cfg["NOTICE_APNS_PRIORITY"], bool):
        raise ConfigurationError("NOTICE_APNS_PRIORITY must be 10 (at once) or 5 (power-saving)")
    for key in ("NOTICE_FCM_PROJECT_ID", "NOTICE_APNS_KEY_ID", "NOTICE_APNS_TEAM_ID"):
        value = cfg[key]
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigurationError(f"{key} must be None or a non-empty string")
    topic = cfg["NOTICE_APNS_TOPIC"]
    if topic is not None:
        from .devices import APP_ID_RE

        if not isinstance(topic, str) or not APP_ID_RE.match(topic):
            raise ConfigurationError("NOTICE_APNS_TOPIC must be None or the app's bundle id")
