"""Who is asking, and is the request genuine: the current user and CSRF checks shared
by every view of the web layer."""

from __future__ import annotations

import hmac
import secrets
from typing import Any, NoReturn

from flask import abort, current_app, redirect, request, session, url_for
from flask.sansio.app import App
from werkzeug.exceptions import BadRequest, HTTPException

from ..errors import NoticeError
from ..state import TOPIC_ACTIONS, state_of
from .errors import json_error, wants_json

SESSION_KEY = "_notice_csrf"
HEADER = "X-CSRFToken"
FORM_FIELD = "csrf_token"


class CSRFError(NoticeError, BadRequest):
    """The CSRF token is missing or wrong (400), like Flask-WTF's ``CSRFError``."""

    description = "The CSRF token is missing or invalid."


def current_user_id() -> Any:
    """The logged-in user's id, or None.

    Uses the loader registered with ``notices.user_loader`` if any, else flask-login's
    ``current_user``. The id is converted by the app's user-id policy, so the views and
    the store see one type (flask-login hands out ``"7"`` for ``7``).
    """
    state = state_of()
    if state.user_loader is not None:
        user_id = state.user_loader()
        return None if user_id is None else state.coerce_user_id(user_id)
    from flask_login import current_user

    user: Any = current_user
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return state.coerce_user_id(user.get_id())


def _unauthorized() -> NoReturn:
    abort(json_error(401, "unauthorized", "log in to see your notices"))


def require_user() -> Any:
    """The current user's id; otherwise 401 JSON, or the app's login page for HTML."""
    user_id = current_user_id()
    if user_id is not None:
        return user_id
    if not wants_json():
        login_manager = getattr(current_app, "login_manager", None)
        view = getattr(login_manager, "login_view", None)
        if view:
            abort(redirect(url_for(view, next=request.full_path)))
    _unauthorized()


def require_api_user() -> Any:
    """The current user's id, or a 401 JSON response (never a login redirect: an API
    client or an EventSource cannot follow one)."""
    user_id = current_user_id()
    if user_id is None:
        _unauthorized()
    return user_id


def csrf_token() -> str:
    """The token pages put in ``<meta name="csrf-token">`` and forms in ``csrf_token``.

    Flask-WTF's token when the app uses ``CSRFProtect``, so one meta tag serves both.
    """
    if "csrf" in current_app.extensions:
        from flask_wtf.csrf import generate_csrf

        return str(generate_csrf())
    token = session.get(SESSION_KEY)
    if not token:
        token = session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf() -> None:
    """Refuse a state-changing request without a valid token (raise :class:`CSRFError`).

    With Flask-WTF's ``CSRFProtect`` on the app its check applies (it has already run
    for our views unless they were exempted), else we compare the ``X-CSRFToken`` header
    or the ``csrf_token`` form field with the session's token in constant time.
    """
    if "csrf" in current_app.extensions:
        from flask_wtf.csrf import CSRFError as WTFCSRFError
        from flask_wtf.csrf import validate_csrf

        sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD, "")
        try:
            validate_csrf(sent)
        except (WTFCSRFError, Exception) as exc:
            if isinstance(exc, HTTPException) and not isinstance(exc, BadRequest):
                raise
            raise CSRFError() from exc
        return
    expected = session.get(SESSION_KEY)
    sent = request.headers.get(HEADER) or request.form.get(FORM_FIELD) or ""
    if not expected or not sent or not hmac.compare_digest(str(expected), str(sent)):
        raise CSRFError()


def exempt_from_flask_wtf(app: App, target: Any) -> None:
    """Exempt ``target`` (a view function or a blueprint) from Flask-WTF's
    ``CSRFProtect`` on ``app``, for requests that prove themselves another way (a
    bearer token, a signed link, a push subscription's secret).

    ``CSRFProtect`` may be set up before or after notice: exempt now when it is there,
    else from a ``before_request`` hook, which runs ahead of one CSRFProtect adds later.
    """

    def exempt() -> bool:
        csrf = app.extensions.get("csrf")
        if csrf is None:
            return False
        csrf.exempt(target)
        return True

    if exempt():
        return
    done = False

    def exempt_late() -> None:
        nonlocal done
        if not done:
            done = exempt()

    app.before_request(exempt_late)


def topic_allowed(user_id: Any, topic: str, action: str) -> bool:
    """Whether ``user_id`` (None: an anonymous device) may ``action`` (``"subscribe"``,
    ``"history"``, ``"publish"``) topic ``topic``: the app's ``notices.topic_authorizer``
    decides; without one nobody may, since a topic may mirror a private group."""
    if action not in TOPIC_ACTIONS:  # a typo here would silently ask the app the wrong thing
        raise ValueError(f"unknown topic action {action!r}")
    hook = state_of().topic_authorizer
    return hook is not None and bool(hook(user_id, topic, action))
