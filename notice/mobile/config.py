"""Checking the mobile push config (the URLs with :func:`notice.senders.urls.check_url`).

The senders read their own required keys (credentials, key ids) in ``init_app``;
:func:`validate_mobile` checks the shape of every key at startup, for every app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..senders.urls import check_url


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
    #: the app ids a device of each platform may register with; a platform missing
    #: accepts any (:func:`allowed_apps`)
    apps: Mapping[str, frozenset[str]]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> MobileSettings:
        return cls(max_devices=int(cfg["NOTICE_MOBILE_MAX_DEVICES"]), apps=allowed_apps(cfg))


def allowed_apps(cfg: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """``{"apns": NOTICE_APNS_TOPICS, "fcm": NOTICE_FCM_APP_IDS}`` as sets, leaving out a
    platform whose list is not set (``NOTICE_APNS_TOPICS`` defaults to
    ``[NOTICE_APNS_TOPIC]`` when that is set)."""
    out: dict[str, frozenset[str]] = {}
    topics = cfg["NOTICE_APNS_TOPICS"]
    if topics is None and cfg["NOTICE_APNS_TOPIC"] is not None:
        topics = [cfg["NOTICE_APNS_TOPIC"]]
    if topics is not None:
        out["apns"] = frozenset(topics)
    if cfg["NOTICE_FCM_APP_IDS"] is not None:
        out["fcm"] = frozenset(cfg["NOTICE_FCM_APP_IDS"])
    return out


def _app_ids(cfg: Mapping[str, Any], key: str, what: str) -> None:
    from .devices import APP_ID_RE

    value = cfg[key]
    if value is None:
        return
    if isinstance(value, str) or not all(isinstance(v, str) and APP_ID_RE.match(v) for v in value):
        raise ConfigurationError(f"{key} must be None or a list of {what}, got {value!r}")


def validate_mobile(cfg: Mapping[str, Any]) -> None:
    """Fail fast on wrong mobile push config (called by ``init_app``)."""
    limit = cfg["NOTICE_MOBILE_MAX_DEVICES"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError("NOTICE_MOBILE_MAX_DEVICES must be a whole number >= 1")
    fcm_hosts = _hosts(cfg, "NOTICE_FCM_HOSTS")
    check_url(cfg["NOTICE_FCM_URL"], fcm_hosts, "NOTICE_FCM_URL", "NOTICE_FCM_HOSTS")
    if cfg["NOTICE_FCM_TOKEN_URI"] is not None:
        check_url(
            cfg["NOTICE_FCM_TOKEN_URI"], fcm_hosts, "NOTICE_FCM_TOKEN_URI", "NOTICE_FCM_HOSTS"
        )
    _seconds(cfg, "NOTICE_FCM_TIMEOUT")
    apns_hosts = _hosts(cfg, "NOTICE_APNS_HOSTS")
    check_url(cfg["NOTICE_APNS_URL"], apns_hosts, "NOTICE_APNS_URL", "NOTICE_APNS_HOSTS")
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
    _app_ids(cfg, "NOTICE_APNS_TOPICS", "bundle ids")
    topics = cfg["NOTICE_APNS_TOPICS"]
    if topic is not None and topics is not None and topic not in topics:
        raise ConfigurationError("NOTICE_APNS_TOPIC must be one of NOTICE_APNS_TOPICS")
    _app_ids(cfg, "NOTICE_FCM_APP_IDS", "Android application ids")
