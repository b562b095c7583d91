"""Helpers shared by the Web Push, topic and service API tests: an app wired to a
loopback PushService, logging a test client in, and registering browser devices."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask, session
from flask.testing import FlaskClient

from notice.push.vapid import VapidKeys, generate

from .pushservice import PushService

SUBJECT = "mailto:ops@example.org"
CSRF = "csrf-token-for-tests"
API_TOKEN = "service-token-0123456789"

_KEYS: VapidKeys | None = None


def vapid_keys() -> VapidKeys:
    """One key pair per test session (generating is cheap, but keys must match the
    PushService's expected key)."""
    global _KEYS
    if _KEYS is None:
        _KEYS = generate()
    return _KEYS


def push_config(service: PushService, **extra: Any) -> dict[str, Any]:
    """Config for an app that pushes to ``service`` (its origin is allow-listed)."""
    config: dict[str, Any] = {
        "NOTICE_SENDERS": ["webpush"],
        "NOTICE_VAPID_PRIVATE_KEY": vapid_keys().private_raw(),
        "NOTICE_VAPID_SUBJECT": SUBJECT,
        "NOTICE_PUSH_ALLOWED_HOSTS": [service.origin],
        "NOTICE_PUSH_TIMEOUT": 5.0,
        "NOTICE_API_TOKENS": [API_TOKEN],
    }
    config.update(extra)
    return config


def use_session_login(app: Flask) -> None:
    """The current user is ``session["uid"]`` (what :func:`login` sets)."""
    app.notices.user_loader(lambda: session.get("uid"))  # type: ignore[attr-defined]


def login(client: FlaskClient, user_id: Any) -> dict[str, str]:
    """Log ``client`` in as ``user_id``; return headers carrying the CSRF token."""
    with client.session_transaction() as sess:
        sess["uid"] = user_id
        sess["_notice_csrf"] = CSRF
    return {"X-CSRFToken": CSRF}


def service_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


def add_device(app: Flask, user_id: Any, info: dict[str, Any]) -> int:
    """Register a browser's subscription for ``user_id`` straight in the database."""
    PS = app.notices.push_models.PushSubscription  # type: ignore[attr-defined]
    db = app.db  # type: ignore[attr-defined]
    with app.app_context():
        sub = PS(
            user_id=user_id,
            endpoint=info["endpoint"],
            p256dh=info["keys"]["p256dh"],
            auth=info["keys"]["auth"],
            failure_count=0,
        )
        db.session.add(sub)
        db.session.commit()
        return int(sub.id)


def deliveries(app: Flask, channel: str = "webpush") -> list[Any]:
    """Every delivery row of ``channel``, by id (call inside an app context)."""
    Delivery = app.notices.Delivery  # type: ignore[attr-defined]
    db = app.db  # type: ignore[attr-defined]
    db.session.expire_all()
    return list(
        db.session.execute(
            sa.select(Delivery).where(Delivery.channel == channel).order_by(Delivery.id)
        ).scalars()
    )
