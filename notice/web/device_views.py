"""The logged-in user's mobile devices (FCM and APNs): register, list, remove.

A mobile app calls these with the user's session, as the Web Push views are called:
state changes need the CSRF token (``X-CSRFToken``), and a user sees and removes only
their own devices.
"""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from ..mobile import devices
from ..state import state_of
from .auth import check_csrf, require_api_user
from .blueprints import inbox_bp
from .errors import json_error
from .push_views import json_object


@inbox_bp.get("/api/devices")
def devices_list() -> ResponseReturnValue:
    """The current user's devices, oldest first."""
    user_id = require_api_user()
    state = state_of()
    rows = devices.mine(state.db.session, state.device_models, user_id)
    return jsonify(devices=[row.to_dict() for row in rows])


@inbox_bp.post("/api/devices")
def devices_register() -> ResponseReturnValue:
    """Register the app install's token (``{"platform", "token", "app_id"}``) for the
    current user: 201 when new, 200 when known (it moves to this user: see
    :func:`notice.mobile.devices.save`); 400 when malformed, the app_id is not an
    allowed one (``NOTICE_APNS_TOPICS``, ``NOTICE_FCM_APP_IDS``) or the token is another
    app's."""
    user_id = require_api_user()
    check_csrf()
    state = state_of()
    session = state.db.session
    try:
        reg = devices.parse_registration(json_object())
        devices.check_app(reg, state.mobile_settings.apps)
        device, created = devices.save(
            session,
            state.device_models,
            user_id,
            reg,
            max_per_user=state.mobile_settings.max_devices,
        )
    except devices.DeviceError as exc:
        session.rollback()
        return json_error(400, "bad_device", str(exc))
    session.commit()
    return jsonify(device=device.to_dict(), created=created), 201 if created else 200


@inbox_bp.delete("/api/devices/<int:device_id>")
def devices_delete(device_id: int) -> ResponseReturnValue:
    """Forget one of the current user's devices; 404 if unknown or someone else's."""
    user_id = require_api_user()
    check_csrf()
    state = state_of()
    removed = devices.remove(state.db.session, state.device_models, user_id, device_id)
    state.db.session.commit()
    if not removed:
        return json_error(404, "not_found", "no such device")
    return jsonify(removed=device_id)
