"""The "Simple Notification Service" API on ``api_bp`` (``NOTICE_API_PREFIX``).

Managing topics and publishing need a service token (``Authorization: Bearer ...``,
one of ``NOTICE_API_TOKENS`` or accepted by ``NOTICE_API_AUTH``). Subscribing, reading
a topic's history and publishing are also open to logged-in users (with the CSRF
token) when ``notices.topic_authorizer`` allows it (403 otherwise); with
``NOTICE_API_ANONYMOUS_DEVICES`` an anonymous caller may (un)subscribe a browser's
push subscription, rate-limited per client address. A service token is the app's
trusted back end: the authorizer is not asked for it.
Errors are JSON ``{"error", "message"}`` (:mod:`notice.web.errors`); a malformed body
is 400, and a ``user_id`` or ``exclude`` that is no user id of this app is a 400
``bad_parameter`` naming the field.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidUserId, SubscriptionError, UnknownTopic
from ..publish import check_content_size, check_data_size
from ..push import subscriptions as subs
from ..push.config import push_options
from ..state import state_of
from ..topics.topics import Topics
from ..types import NoticeType
from .auth import check_csrf, current_user_id, exempt_from_flask_wtf, topic_allowed
from .blueprints import api_bp
from .errors import BadParameter, json_error
from .facade import notices
from .inbox_params import ID_MAX, parse_int
from .push_views import json_object, push_key

#: topic messages one /notifications/list call returns at most
MAX_LIST = 100


def _topics() -> Topics:
    return notices().topics


def _bearer() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def service_authorized() -> bool:
    """Whether the request carries a valid service token."""
    token = _bearer()
    if token is None:
        return False
    sent = token.encode()
    # compare with every token, in constant time, so timing tells nothing
    settings = state_of().settings
    ok = False
    for known in settings.api_tokens:
        ok |= hmac.compare_digest(sent, known.encode())
    hook = settings.api_auth
    return ok or (hook is not None and bool(hook(token)))


def _unauthorized() -> ResponseReturnValue:
    response = json_error(401, "unauthorized", "a valid API token is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="notice"'
    return response


def _forbidden(action: str, name: str) -> ResponseReturnValue:
    return json_error(403, "forbidden", f"you may not {action} topic {name!r}", topic=name)


def _anonymous_limited() -> ResponseReturnValue | None:
    """A 429 with ``Retry-After`` once this client address is past
    ``NOTICE_API_ANONYMOUS_RATE`` anonymous calls a minute, else None (and counted).
    Behind a proxy, ``request.remote_addr`` is the proxy unless the app uses
    werkzeug's ``ProxyFix``."""
    wait = state_of().anonymous_limiter.hit(request.remote_addr or "")
    if not wait:
        return None
    response = json_error(429, "rate_limited", f"too many anonymous calls; retry in {wait} s")
    response.headers["Retry-After"] = str(wait)
    return response


def _user_id(value: Any, field: str) -> Any:
    """``value`` as a user id of this app; a :class:`BadParameter` naming ``field``
    (rendered as a JSON 400) when it is not one, e.g. ``true`` or ``2.5``."""
    try:
        return state_of().coerce_user_id(value)
    except InvalidUserId as exc:
        raise BadParameter(field, str(exc)) from None


def _exclude(value: Any) -> Any:
    """The ``exclude`` field: one user id, or a list of them."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_user_id(v, "exclude") for v in value]
    return _user_id(value, "exclude")


def _topic_name(body: dict[str, Any]) -> str | None:
    name = body.get("topic")
    return name if isinstance(name, str) and name else None


# --- VAPID key and topics -----------------------------------------------------------


# 200 ``{"public_key"}``; 404 when Web Push is not configured
api_bp.add_url_rule("/vapid/public/key", "vapid_public_key", push_key, methods=["GET"])


@api_bp.post("/topics/")
def create_topic() -> ResponseReturnValue:
    """``{"topic", "description"?}`` → 201; 400 when invalid or taken."""
    if not service_authorized():
        return _unauthorized()
    body = json_object()
    if body is None or _topic_name(body) is None:
        return json_error(400, "bad_request", 'send {"topic": name, "description": text}')
    try:
        topic = _topics().create(body["topic"], body.get("description") or "")
    except ValueError as exc:
        state_of().db.session.rollback()
        return json_error(400, "bad_topic", str(exc))
    return jsonify(topic.to_dict()), 201


@api_bp.get("/topics/list")
def list_topics() -> ResponseReturnValue:
    """Topic names, 200; 204 when there are none. For services, and for logged-in
    users the topics the authorizer lets them subscribe to."""
    service = service_authorized()
    user_id = None if service else current_user_id()
    if not service and user_id is None:
        return _unauthorized()
    names = [t.name for t in _topics().all()]
    if not service:
        names = [n for n in names if topic_allowed(user_id, n, "subscribe")]
    if not names:
        return "", 204
    return jsonify(names)


@api_bp.delete("/topics/<name>")
def delete_topic(name: str) -> ResponseReturnValue:
    """200; 400 when there is no such topic."""
    if not service_authorized():
        return _unauthorized()
    if not _topics().delete(name):
        return json_error(400, "unknown_topic", f"no topic named {name!r}")
    return jsonify(deleted=name)


# --- subscribing --------------------------------------------------------------------


@api_bp.post("/topics/subscribe")
def subscribe() -> ResponseReturnValue:
    return _subscription(subscribe=True)


@api_bp.post("/topics/unsubscribe")
def unsubscribe() -> ResponseReturnValue:
    return _subscription(subscribe=False)


def _subscription(*, subscribe: bool) -> ResponseReturnValue:
    """``{"topic", "token"}``: ``token`` is the device's ``PushSubscription.toJSON()``
    or its endpoint. A service token may also send ``{"topic", "user_id"}``; a
    logged-in user sending no token (un)subscribes themselves. Users and anonymous
    devices subscribe only where the topic authorizer allows it; leaving is always
    allowed.
    """
    settings = state_of().settings
    service = service_authorized()
    user_id = None if service else current_user_id()
    anonymous = not service and user_id is None
    if anonymous:
        if not settings.api_anonymous_devices:
            return _unauthorized()
        # counted before the body is read, so malformed guesses are limited too
        limited = _anonymous_limited()
        if limited is not None:
            return limited
    elif not service:
        check_csrf()
    body = json_object()
    if body is None or _topic_name(body) is None:
        return json_error(400, "bad_request", 'send {"topic": name, "token": subscription}')
    name = body["topic"]
    if subscribe and not service and not topic_allowed(user_id, name, "subscribe"):
        return _forbidden("subscribe to", name)
    topics, session = _topics(), state_of().db.session
    try:
        if anonymous:
            target = _anonymous_device(body.get("token"), create=subscribe)
        else:
            target = _subscriber(body, service, user_id, create=subscribe)
    except SubscriptionError as exc:
        session.rollback()
        return json_error(400, "bad_token", str(exc))
    except LookupError:
        session.rollback()
        if service:
            return json_error(400, "unknown_device", "no such push subscription")
        return json_error(404, "not_found", "no such push subscription")
    if target is None:
        return json_error(
            400, "bad_request", "token (or user_id, with a service token) is required"
        )
    try:
        if subscribe:
            changed = topics.subscribe(name, **target)
        else:
            changed = topics.unsubscribe(name, **target)
    except UnknownTopic as exc:
        session.rollback()
        return json_error(400, "unknown_topic", str(exc))
    except IntegrityError:
        # a user the app does not have: refused by Notices(user_table=...)'s foreign key
        session.rollback()
        if "user_id" not in target:
            raise
        return json_error(404, "not_found", "no such user", parameter="user_id")
    key = "subscribed" if subscribe else "unsubscribed"
    return jsonify({"topic": name, key: changed})


def _subscriber(
    body: dict[str, Any], service: bool, user_id: Any, *, create: bool
) -> dict[str, Any] | None:
    """``{"user_id": ...}`` or ``{"push_subscription_id": ...}`` for the body.

    :raise LookupError: the device is unknown, or (for a user) not theirs.
    :raise SubscriptionError: a malformed token.
    """
    token = body.get("token")
    if token is None:
        if service and body.get("user_id") is not None:
            return {"user_id": _user_id(body["user_id"], "user_id")}
        return None if service else {"user_id": user_id}
    state = state_of()
    if isinstance(token, dict):
        endpoint = token.get("endpoint")
    elif isinstance(token, str):
        endpoint = token
    else:
        raise SubscriptionError("token must be a push subscription object or its endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise SubscriptionError("token has no endpoint")
    sub = subs.find(state.db.session, state.push_models, endpoint)
    if sub is None and isinstance(token, dict) and create and not service:
        # a browser subscribing to its first topic registers the device on the way
        info = subs.parse_subscription(token, state.push_settings.allow)
        sub, _ = subs.save(
            state.db.session,
            state.push_models,
            user_id,
            info,
            user_agent=request.headers.get("User-Agent"),
            max_per_user=state.push_settings.max_subscriptions,
        )
    if sub is None or (not service and str(sub.user_id) != str(user_id)):
        raise LookupError(endpoint)
    return {"push_subscription_id": sub.id}


def _anonymous_device(token: Any, *, create: bool) -> dict[str, Any] | None:
    """``{"push_subscription_id": ...}`` for an anonymous caller's ``token``, which must
    be the whole subscription: its keys prove the caller is that browser, where an
    endpoint alone would let anyone (un)subscribe someone else's device.

    A new device is registered for ``NOTICE_API_ANONYMOUS_USER`` (without the
    per-user device cap, which would let one caller evict every other anonymous
    device); a known one keeps its owner.

    :raise LookupError: the device is unknown (unsubscribing) or has other keys.
    :raise SubscriptionError: a malformed or refused subscription.
    """
    if token is None:
        return None
    if not isinstance(token, dict):
        raise SubscriptionError("send the whole push subscription, keys included")
    state = state_of()
    info = subs.parse_subscription(token, state.push_settings.allow)
    sub = subs.find(state.db.session, state.push_models, info.endpoint)
    if sub is None and create:
        owner = state.coerce_user_id(state.settings.api_anonymous_user)
        sub, _ = subs.save(
            state.db.session,
            state.push_models,
            owner,
            info,
            user_agent=request.headers.get("User-Agent"),
            max_per_user=None,
        )
    elif sub is not None and not (
        hmac.compare_digest(str(sub.auth), info.auth)
        and hmac.compare_digest(str(sub.p256dh), info.p256dh)
    ):
        sub = None
    if sub is None:
        raise LookupError(info.endpoint)
    return {"push_subscription_id": sub.id}


# --- notifications ------------------------------------------------------------------


def _safe_url(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise BadParameter(field, f"{field} must be a URL of at most 2048 characters")
    if value.startswith("/") and not value.startswith("//"):
        return value
    if value.lower().startswith(("https://", "http://")):
        return value
    raise BadParameter(field, f"{field} must be a path (/...) or an http(s) URL")


def _notification(value: Any) -> dict[str, Any]:
    """Keyword arguments for ``publish``/``push`` from the ``notification`` field:
    ``{"title", "body", "url", "icon", "type", "data", "ttl", "urgency", "topic"}``
    (a plain string is the title); :class:`BadParameter` when it is malformed."""
    if isinstance(value, str):
        value = {"title": value}
    if not isinstance(value, dict):
        raise BadParameter("notification", "notification must be an object with a title")
    title = value.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 255:
        raise BadParameter(
            "notification.title", "notification.title must be a string of 1-255 characters"
        )
    content = value.get("body", "")
    if not isinstance(content, str):
        raise BadParameter("notification.body", "notification.body must be a string")
    try:
        notice_type = NoticeType(value.get("type", "System"))
    except ValueError as exc:
        raise BadParameter("notification.type", str(exc)) from None
    data = value.get("data")
    if data is not None and not isinstance(data, dict):
        raise BadParameter("notification.data", "notification.data must be an object")
    push = {k: value[k] for k in ("ttl", "urgency", "topic") if value.get(k) is not None}
    icon = _safe_url(value.get("icon"), "notification.icon")
    if icon:
        push["icon"] = icon
    if "ttl" in push and (not isinstance(push["ttl"], int) or push["ttl"] < 0):
        raise BadParameter("notification.ttl", "notification.ttl must be a whole number of seconds")
    try:
        push_options({"webpush": push})  # what notice_event would refuse: a 400, not a 500
    except ValueError as exc:
        raise BadParameter("notification", str(exc)) from None
    if push:
        data = {**(data or {}), "webpush": push}
    # notice_event's size limits, answered as a 400 naming the field instead of a 500
    settings = state_of().settings
    try:
        check_content_size(content, settings.max_content)
    except ValueError as exc:
        raise BadParameter("notification.body", str(exc)) from None
    try:
        check_data_size(data, settings.max_data)
    except ValueError as exc:
        raise BadParameter("notification.data", str(exc)) from None
    return {
        "notice_type": notice_type,
        "subject": title,
        "content": content,
        "url": _safe_url(value.get("url"), "notification.url"),
        "data": data,
    }


@api_bp.post("/notifications/push")
def push_one() -> ResponseReturnValue:
    """``{"token", "notification"}``: push to one device (and its owner's inbox)."""
    if not service_authorized():
        return _unauthorized()
    body = json_object()
    if body is None:
        return json_error(400, "bad_request", 'send {"token": subscription, "notification": {...}}')
    token = body.get("token")
    endpoint = token.get("endpoint") if isinstance(token, dict) else token
    try:
        options = _notification(body.get("notification"))
    except BadParameter as exc:
        return json_error(400, "bad_notification", exc.message)
    state = state_of()
    sub = None
    if isinstance(endpoint, str):
        sub = subs.find(state.db.session, state.push_models, endpoint)
    if sub is None:
        return json_error(400, "unknown_device", "token is not a known push subscription")
    notice_type = options.pop("notice_type")
    notice_id = _topics().push(sub.id, notice_type, **options)
    if notice_id is None:
        return json_error(400, "push_disabled", "the webpush sender is not configured")
    return jsonify(notice_id=notice_id)


@api_bp.post("/notifications/publish")
def publish() -> ResponseReturnValue:
    """``{"topic", "notification", "exclude"?}``: to every subscriber of the topic.
    For services, and for users the topic authorizer lets publish (the user is then
    the sender)."""
    service = service_authorized()
    user_id = None if service else current_user_id()
    if not service and user_id is None:
        return _unauthorized()
    if not service:
        check_csrf()
    body = json_object()
    if body is None or _topic_name(body) is None:
        return json_error(400, "bad_request", 'send {"topic": name, "notification": {...}}')
    if not service and not topic_allowed(user_id, body["topic"], "publish"):
        return _forbidden("publish to", body["topic"])
    try:
        options = _notification(body.get("notification"))
    except BadParameter as exc:
        return json_error(400, "bad_notification", exc.message)
    notice_type = options.pop("notice_type")
    exclude = _exclude(body.get("exclude"))
    try:
        published = _topics().publish(
            body["topic"], notice_type, exclude=exclude, sender_id=user_id, **options
        )
    except UnknownTopic as exc:
        return json_error(400, "unknown_topic", str(exc))
    return jsonify(message_id=published.message_id, recipients=len(published.notice_ids))


@api_bp.get("/notifications/list")
def list_messages() -> ResponseReturnValue:
    """``?topic=&start=&end=``: what was published to a topic, newest first; 204 when
    nothing is in range. For services, and for users the topic authorizer lets read
    the history."""
    service = service_authorized()
    user_id = None if service else current_user_id()
    if not service and user_id is None:
        return _unauthorized()
    name = request.args.get("topic", "")
    start = parse_int("start", request.args.get("start") or "0", low=0, high=ID_MAX)
    raw_end = request.args.get("end")
    end = parse_int("end", raw_end, low=0, high=ID_MAX) if raw_end else min(start + 10, ID_MAX)
    if end < start or end - start > MAX_LIST:
        return json_error(400, "bad_request", f"need 0 <= start <= end <= start + {MAX_LIST}")
    topics = _topics()
    # asked before the topic is looked up, so a refusal tells nothing about it
    if not service and not (name and topic_allowed(user_id, name, "history")):
        return _forbidden("read", name)
    if not name or topics.get(name) is None:
        return json_error(400, "unknown_topic", f"no topic named {name!r}")
    messages = topics.messages(name, start=start, end=end)
    if not messages:
        return "", 204
    return jsonify([m.to_dict(name) for m in messages])


@api_bp.record_once
def _exempt_from_flask_wtf(setup_state: Any) -> None:
    # services authenticate with a bearer token, which a browser never sends on its
    # own; the routes a logged-in user may call check our CSRF token themselves
    exempt_from_flask_wtf(setup_state.app, api_bp)
