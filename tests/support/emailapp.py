"""An app wired to the loopback SMTP server, for the email, digest and preference tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from .smtpserver import SMTPServer

BASE_URL = "https://app.example"
FROM = "Notices <noreply@example.com>"


def address(user_id: Any) -> str:
    return f"user{user_id}@example.com"


def email_app(app_factory: Any, smtp: SMTPServer, **config: Any) -> Flask:
    """An app sending through ``smtp``; user N's address is userN@example.com."""
    settings: dict[str, Any] = {
        "NOTICE_SENDERS": ["email"],
        "NOTICE_MAIL_HOST": smtp.host,
        "NOTICE_MAIL_PORT": smtp.port,
        "NOTICE_MAIL_SENDER": FROM,
        "NOTICE_MAIL_TIMEOUT": 5.0,
        "NOTICE_BASE_URL": BASE_URL,
    }
    settings.update(config)
    app: Flask = app_factory(**settings)
    app.notices.email_loader(address)  # type: ignore[attr-defined]
    return app


def deliveries(app: Flask, channel: str | None = None) -> list[Any]:
    """Every delivery row (fresh from the database), by id."""
    Delivery = app.notices.Delivery  # type: ignore[attr-defined]
    db = app.db  # type: ignore[attr-defined]
    db.session.expire_all()
    stmt = sa.select(Delivery).order_by(Delivery.id)
    if channel is not None:
        stmt = stmt.where(Delivery.channel == channel)
    return list(db.session.execute(stmt).scalars())
