"""Helpers of the FCM and APNs tests: an app's devices, added and read straight in the
database."""

from __future__ import annotations

from typing import Any

from flask import Flask


def add_device(
    app: Flask, user_id: Any, platform: str, token: str, app_id: str | None = None
) -> int:
    """Register a device for ``user_id`` in the database; return its id."""
    Device = app.notices.device_models.Device  # type: ignore[attr-defined]
    db = app.db  # type: ignore[attr-defined]
    with app.app_context():
        device = Device(user_id=user_id, platform=platform, token=token, app_id=app_id)
        db.session.add(device)
        db.session.commit()
        return int(device.id)


def devices(app: Flask) -> list[Any]:
    """Every device row (fresh from the database), by id."""
    Device = app.notices.device_models.Device  # type: ignore[attr-defined]
    db = app.db  # type: ignore[attr-defined]
    with app.app_context():
        db.session.expire_all()
        rows = list(db.session.query(Device).order_by(Device.id))
        db.session.expunge_all()
        return rows
