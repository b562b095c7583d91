"""Registering mobile devices: validate, save, list and remove a user's devices.

Every function works in ``db.session`` and leaves committing to the caller; the
statements are in :mod:`notice.store.devices`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import NoticeError
from ..store import devices as device_store
from .models import MAX_APP, MAX_TOKEN, PLATFORMS, DeviceModels

#: FCM registration tokens: URL-safe characters and colons (~160 today, may grow)
FCM_TOKEN_RE = re.compile(rf"^[A-Za-z0-9_:.-]{{1,{MAX_TOKEN}}}$")
#: APNs device tokens: hex (32 bytes today, may grow); stored lower-case
APNS_TOKEN_RE = re.compile(rf"^(?:[0-9a-fA-F]{{2}}){{16,{MAX_TOKEN // 2}}}$")
#: an Android application id or iOS bundle id (reverse-DNS: letters, digits, . _ -)
APP_ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_APP - 1}}}$")


class DeviceError(NoticeError, ValueError):
    """A mobile device registration that cannot be stored (malformed, or its token is
    registered for another app)."""


@dataclass(frozen=True)
class Registration:
    """A validated device registration."""

    platform: str
    token: str
    app_id: str | None


def parse_registration(value: object) -> Registration:
    """Validate ``{"platform": "fcm"|"apns", "token": ..., "app_id": ...}`` from an app.

    :raise DeviceError: saying what is wrong (never echoing the token).
    """
    if not isinstance(value, Mapping):
        raise DeviceError("send the device as an object with platform and token")
    platform = value.get("platform")
    if platform not in PLATFORMS:
        raise DeviceError(f"platform must be one of {', '.join(PLATFORMS)}")
    token = value.get("token")
    pattern = FCM_TOKEN_RE if platform == "fcm" else APNS_TOKEN_RE
    if not isinstance(token, str) or not pattern.match(token):
        kind = "an FCM registration token" if platform == "fcm" else "a hex APNs device token"
        raise DeviceError(f"token must be {kind} of at most {MAX_TOKEN} characters")
    if platform == "apns":
        token = token.lower()  # the same device written in either case is one row
    app_id = value.get("app_id")
    if app_id is not None and (not isinstance(app_id, str) or not APP_ID_RE.match(app_id)):
        raise DeviceError(
            f"app_id must be an application or bundle id (letters, digits, '.', '_', '-'; "
            f"at most {MAX_APP} characters)"
        )
    return Registration(str(platform), token, app_id)


def check_app(reg: Registration, allowed: Mapping[str, frozenset[str]]) -> None:
    """DeviceError unless ``reg.app_id`` is one of its platform's allowed app ids
    (``NOTICE_APNS_TOPICS``, ``NOTICE_FCM_APP_IDS``; a platform not in ``allowed``
    takes any). A device without an app_id passes: it is sent with the configured
    default (``NOTICE_APNS_TOPIC``), which the app chose.

    Without it any user could register a token under any bundle id, and our provider
    key, valid for every app of the team, would push as that app.
    """
    apps = allowed.get(reg.platform)
    if apps is None or reg.app_id is None or reg.app_id in apps:
        return
    key = "NOTICE_APNS_TOPICS" if reg.platform == "apns" else "NOTICE_FCM_APP_IDS"
    raise DeviceError(f"app_id is not one of this server's apps ({key})")


def save(
    session: Any,
    models: DeviceModels,
    user_id: Any,
    reg: Registration,
    *,
    max_per_user: int | None = 20,
) -> tuple[Any, bool]:
    """Store ``reg`` for ``user_id``; return ``(device, created)``.

    Registering the same token again is idempotent. A known token moves to the caller
    as a push subscription with the same keys does (:func:`notice.push.subscriptions.save`):
    the token is the install's secret, which only that app install and this server
    know, so whoever sends it *is* that install (a new login in the same app). It moves
    only with the same ``app_id``: one differing is not the same install. Beyond
    ``max_per_user`` devices the least recently used are dropped.

    :raise DeviceError: the token is registered for another app.
    """
    existing = device_store.find(session, models.Device, reg.platform, reg.token)
    if existing is not None:
        if existing.app_id != reg.app_id:
            raise DeviceError("this token is registered for another app")
        existing.user_id = user_id
        return existing, False
    device = device_store.add(
        session,
        models.Device,
        user_id,
        platform=reg.platform,
        token=reg.token,
        app_id=reg.app_id,
    )
    if max_per_user is not None:
        device_store.drop_least_used(session, models.Device, user_id, keep=max_per_user)
    return device, True


def mine(session: Any, models: DeviceModels, user_id: Any) -> list[Any]:
    """``user_id``'s devices, oldest first."""
    return device_store.user_devices(session, models.Device, user_id)


def remove(session: Any, models: DeviceModels, user_id: Any, device_id: int) -> bool:
    """Delete ``user_id``'s device ``device_id``; False if it is unknown or not theirs."""
    return device_store.remove(session, models.Device, user_id, device_id)
