"""The logged-in user's push subscriptions: the VAPID key, subscribe, unsubscribe, and
the service worker's ``pushsubscriptionchange`` re-subscribe.

``notice/static/notice/push.js`` calls these; ``sw.js`` calls ``/push/resubscribe``.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from ..errors import SubscriptionError
from ..push import subscriptions as subs
from ..state import state_of
from ..store import push as push_store
from .auth import check_csrf, exempt_from_flask_wtf, require_user
from .blueprints import inbox_bp
from .errors import json_error
from .inbox_params import json_body


def json_object() -> dict[str, Any] | None:
    """The request's JSON object body, or None when it is missing or malformed; a
    :class:`~notice.web.errors.BadParameter` when it is not standard JSON or too deep
    (:func:`~notice.web.inbox_params.json_body`)."""
    body = json_body()
    return body if isinstance(body, dict) else None


@inbox_bp.get("/push/key")
def push_key() -> ResponseReturnValue:
    """The VAPID public key browsers pass to ``pushManager.subscribe`` (also served by
    the service API); 404 when Web Push is not configured."""
    key = state_of().push_settings.public_key
    if key is None:
        return json_error(404, "push_disabled", "Web Push is not configured on this server")
    return jsonify(public_key=key)


@inbox_bp.get("/push/subscriptions")
def push_list() -> ResponseReturnValue:
    """The current user's devices."""
    user_id = require_user()
    state = state_of()
    rows = push_store.user_devices(state.db.session, state.push_models.PushSubscription, user_id)
    return jsonify(subscriptions=[{"id": r.id, "endpoint": r.endpoint} for r in rows])


@inbox_bp.post("/push/subscribe")
def push_subscribe() -> ResponseReturnValue:
    """Store the browser's ``PushSubscription.toJSON()`` for the current user.

    201 when new, 200 when it was already known; 400 for a malformed subscription or
    an endpoint outside ``NOTICE_PUSH_ALLOWED_HOSTS``.
    """
    user_id = require_user()
    check_csrf()
    body = json_object()
    if body is None:
        return json_error(400, "bad_request", "send the subscription as a JSON object")
    state = state_of()
    session = state.db.session
    try:
        info = subs.parse_subscription(body.get("subscription", body), state.push_settings.allow)
        sub, created = subs.save(
            session,
            state.push_models,
            user_id,
            info,
            user_agent=request.headers.get("User-Agent"),
            max_per_user=state.push_settings.max_subscriptions,
        )
    except SubscriptionError as exc:
        session.rollback()
        return json_error(400, "bad_subscription", str(exc))
    session.commit()
    return jsonify(id=sub.id, endpoint=sub.endpoint, created=created), 201 if created else 200


@inbox_bp.post("/push/unsubscribe")
def push_unsubscribe() -> ResponseReturnValue:
    """Forget one of the current user's devices (``{"endpoint": ...}``); 404 if it is
    unknown or someone else's."""
    user_id = require_user()
    check_csrf()
    body = json_object()
    endpoint = body.get("endpoint") if body else None
    if not isinstance(endpoint, str) or not endpoint:
        return json_error(400, "bad_request", 'send {"endpoint": ...}')
    state = state_of()
    removed = subs.remove(state.db.session, state.push_models, user_id, endpoint)
    state.db.session.commit()
    if not removed:
        return json_error(404, "not_found", "no such push subscription")
    return jsonify(removed=True)


@inbox_bp.post("/push/resubscribe")
def push_resubscribe() -> ResponseReturnValue:
    """Move a subscription to the browser's new endpoint (``pushsubscriptionchange``).

    Body: ``{"old_endpoint", "old_auth", "subscription"}``. The service worker has no
    page to read a CSRF token from and may run with no session, so the proof is the old
    subscription's auth secret, which only that browser and this server know. Keeps the
    owner and the topics. 404 when the old subscription is unknown or the secret wrong.
    """
    body = json_object()
    if body is None:
        return json_error(400, "bad_request", "send a JSON object")
    old_endpoint, old_auth = body.get("old_endpoint"), body.get("old_auth")
    if not isinstance(old_endpoint, str) or not isinstance(old_auth, str):
        return json_error(400, "bad_request", "old_endpoint and old_auth are required")
    state = state_of()
    session = state.db.session
    try:
        info = subs.parse_subscription(body.get("subscription"), state.push_settings.allow)
    except SubscriptionError as exc:
        return json_error(400, "bad_subscription", str(exc))
    sub = subs.resubscribe(session, state.push_models, old_endpoint, old_auth, info)
    if sub is None:
        session.rollback()
        return json_error(404, "not_found", "no such push subscription")
    session.commit()
    return jsonify(id=sub.id, endpoint=sub.endpoint)


@inbox_bp.record_once
def _exempt_resubscribe_from_flask_wtf(setup_state: Any) -> None:
    # the service worker's cookie-less call proves itself with the old subscription's
    # auth secret instead (see push_resubscribe)
    exempt_from_flask_wtf(setup_state.app, push_resubscribe)
