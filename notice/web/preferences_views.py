"""Preferences: the page and JSON endpoint of the logged-in user, and the signed
one-click unsubscribe endpoint that works without logging in.

``GET  <prefix>/preferences``             the page (a form of type x channel switches)
``POST <prefix>/preferences``             the page's form (CSRF)
``GET  <prefix>/preferences.json``        ``{"preferences": {type: {channel: bool}},
                                          "email_modes": {type: mode}, ...}``
``POST <prefix>/preferences.json``        partial update, same shape (CSRF header);
                                          ``"quiet_hours": {"timezone", "start", "end"}``
                                          or null
``GET  <prefix>/unsubscribe/<token>``     a confirm page (link scanners must not unsubscribe)
``POST <prefix>/unsubscribe/<token>``     unsubscribe (RFC 8058 one-click; no CSRF: the
                                          signed token is the credential)
"""

from __future__ import annotations

from typing import Any, NoReturn

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.sansio.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError

from .. import links
from ..errors import BadToken, InvalidQuietHours, InvalidUserId
from ..i18n import gettext as _
from ..preferences.preferences import Preferences
from ..preferences.settings import DIGEST_FREQUENCIES, EMAIL_MODES
from ..schedule.quiet import QuietWindow, format_clock, parse_clock
from ..state import state_of
from .auth import check_csrf, exempt_from_flask_wtf, require_user
from .blueprints import inbox_bp
from .errors import json_error
from .facade import notices
from .inbox_params import json_body


def _prefs() -> Preferences:
    return notices().preferences


def _bad_request(message: str) -> NoReturn:
    abort(json_error(400, "bad_request", message))


def _document(user_id: Any) -> dict[str, Any]:
    prefs = _prefs()
    return {
        "preferences": prefs.get(user_id),
        "types": prefs.types(),
        "channels": prefs.channels(),
        "required": [t for t in prefs.types() if prefs.is_required(t)],
        "digest": prefs.get_digest(user_id),
        "digest_frequencies": list(DIGEST_FREQUENCIES),
        "quiet_hours": prefs.get_quiet_hours(user_id),
        "email_modes": prefs.email_modes(user_id),
        "email_mode_choices": list(EMAIL_MODES),
    }


@inbox_bp.get("/preferences")
def preferences_page() -> str:
    user_id = require_user()
    return render_template(
        "notice/preferences.html",
        notice_base_template=state_of().settings.base_template,
        digest_labels=_digest_labels(),
        mode_labels=_mode_labels(),
        channel_labels={c: channel_label(c) for c in _prefs().channels()},
        digest_available=_digest_available(),
        quiet_available=_quiet_available(),
        **_document(user_id),
    )


def _digest_available() -> bool:
    """True when the digest can reach anyone: an "email" sender, or a mail sender
    address configured for the digest alone; otherwise the page hides the selector."""
    state = state_of()
    return "email" in state.senders_by_name or bool(state.app.config.get("NOTICE_MAIL_SENDER"))


def _quiet_available() -> bool:
    """True when quiet hours hold anything back here: a sender on one of
    ``NOTICE_QUIET_HOURS_CHANNELS``; otherwise the page hides them."""
    state = state_of()
    return bool(state.schedule_settings.quiet_channels & set(state.senders_by_name))


def _quiet_hours(given: Any) -> QuietWindow | None:
    """A ``quiet_hours`` field (``{"timezone", "start", "end"}`` or null) checked;
    a 400 naming what is wrong."""
    if given is None:
        return None
    if not isinstance(given, dict) or set(given) != {"timezone", "start", "end"}:
        _bad_request('quiet_hours must be null or {"timezone": ..., "start": "HH:MM", "end": ...}')
    try:
        return QuietWindow(
            given["timezone"], parse_clock(given["start"]), parse_clock(given["end"])
        )
    except InvalidQuietHours as exc:
        _bad_request(f"quiet_hours: {exc}")


def _store_quiet_hours(user_id: Any, window: QuietWindow | None) -> None:
    prefs = _prefs()
    if window is None:
        prefs.clear_quiet_hours(user_id, commit=False)
    else:
        start, end = format_clock(window.start), format_clock(window.end)
        prefs.set_quiet_hours(user_id, window.timezone, start, end, commit=False)


def channel_label(channel: str) -> str:
    """The name a page shows for a channel: the shipped senders' names translate (in
    English they stay as they are), an app's own sender keeps its name."""
    labels = {"email": _("email"), "webpush": _("webpush"), "webhook": _("webhook")}
    return labels.get(channel, channel)


def _digest_labels() -> dict[str, str]:
    """The digest choices as the page names them (values stay the English keys)."""
    return {"off": _("off"), "daily": _("daily"), "weekly": _("weekly")}


def _mode_labels() -> dict[str, str]:
    """The email modes as the page names them (values stay the English keys)."""
    return {
        "immediate": _("at once"),
        "daily": _("daily digest"),
        "weekly": _("weekly digest"),
        "off": _("off"),
    }


@inbox_bp.post("/preferences")
def preferences_form() -> ResponseReturnValue:
    """The page's form: every switch is sent (unchecked ones are absent, so off)."""
    user_id = require_user()
    check_csrf()
    prefs = _prefs()
    checked = set(request.form.getlist("on"))
    digest = request.form.get("digest", "")
    if digest and digest not in DIGEST_FREQUENCIES:
        abort(400, description="unknown digest frequency")
    modes = {t: request.form.get(f"mode:{t}") for t in prefs.types()}
    if any(m is not None and m not in EMAIL_MODES for m in modes.values()):
        abort(400, description="unknown email mode")
    email_switch = "email" in prefs.channels()
    for t in prefs.types():
        if prefs.is_required(t):
            continue
        mode = modes[t]
        for c in prefs.channels():
            if c == "email" and mode is not None:
                continue  # the mode below sets it
            prefs.set(user_id, t, c, f"{t}:{c}" in checked, commit=False)
        if mode is not None:
            # the email switch says whether, the mode when
            if email_switch and f"{t}:email" not in checked:
                mode = "off"
            prefs.set_email_mode(user_id, t, mode, commit=False)
    if digest:
        prefs.set_digest(user_id, digest, commit=False)
    if "quiet_timezone" in request.form:
        quiet: Any = None
        if request.form.get("quiet_on"):
            quiet = {
                "timezone": request.form.get("quiet_timezone", "").strip(),
                "start": request.form.get("quiet_start", ""),
                "end": request.form.get("quiet_end", ""),
            }
        try:
            window = (
                None
                if quiet is None
                else QuietWindow(
                    quiet["timezone"], parse_clock(quiet["start"]), parse_clock(quiet["end"])
                )
            )
        except InvalidQuietHours as exc:
            abort(400, description=str(exc))
        _store_quiet_hours(user_id, window)
    state_of().db.session.commit()
    return redirect(url_for(".preferences_page", saved=1), code=303)


@inbox_bp.get("/preferences.json")
def preferences_json() -> Response:
    return jsonify(_document(require_user()))


@inbox_bp.route("/preferences.json", methods=["POST", "PUT", "PATCH"])
def preferences_update() -> Response:
    """Apply ``{"preferences": {type: {channel: bool}}, "email_modes": {type: mode},
    "digest": freq}`` (each optional); everything is checked before anything is
    written."""
    user_id = require_user()
    check_csrf()
    body = json_body()
    allowed = {"preferences", "digest", "quiet_hours", "email_modes"}
    if not isinstance(body, dict) or not set(body) <= allowed:
        _bad_request(
            'send JSON {"preferences": {type: {channel: bool}}, "email_modes": {type: mode}, '
            '"digest": ..., "quiet_hours": ...}'
        )
    prefs = _prefs()
    changes: list[tuple[str, str, bool]] = []
    given = body.get("preferences", {})
    if not isinstance(given, dict):
        _bad_request("preferences must be an object of {type: {channel: bool}}")
    types, channels = set(prefs.types()), set(prefs.settable_channels())
    for t, chans in given.items():
        if t not in types:
            _bad_request(f"unknown notice type {t!r}")
        if not isinstance(chans, dict):
            _bad_request(f"preferences[{t!r}] must be an object of {{channel: bool}}")
        for c, enabled in chans.items():
            if c not in channels:
                _bad_request(f"unknown channel {c!r}")
            if not isinstance(enabled, bool):
                _bad_request(f"preferences[{t!r}][{c!r}] must be true or false")
            if not enabled and prefs.is_required(t):
                _bad_request(f"{t} notices are required and cannot be turned off")
            changes.append((t, c, enabled))
    modes = body.get("email_modes", {})
    if not isinstance(modes, dict):
        _bad_request("email_modes must be an object of {type: mode}")
    for t, mode in modes.items():
        if t not in types:
            _bad_request(f"unknown notice type {t!r}")
        if mode not in EMAIL_MODES:
            _bad_request(f"email_modes[{t!r}] must be one of {', '.join(EMAIL_MODES)}")
        if mode != "immediate" and prefs.is_required(t):
            _bad_request(f"{t} notices are required and always emailed at once")
    digest = body.get("digest")
    if digest is not None and digest not in DIGEST_FREQUENCIES:
        _bad_request(f"digest must be one of {', '.join(DIGEST_FREQUENCIES)}")
    window = _quiet_hours(body["quiet_hours"]) if "quiet_hours" in body else None
    for t, c, enabled in changes:
        prefs.set(user_id, t, c, enabled, commit=False)
    for t, mode in modes.items():
        prefs.set_email_mode(user_id, t, mode, commit=False)
    if digest is not None:
        prefs.set_digest(user_id, digest, commit=False)
    if "quiet_hours" in body:
        _store_quiet_hours(user_id, window)
    state_of().db.session.commit()
    return jsonify(_document(user_id))


@inbox_bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Any:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        req = links.read_token(app, token)
        # signed by us, yet the app's user ids may have changed type since
        user_id = state_of(app).coerce_user_id(req.user_id)
    except (BadToken, InvalidUserId):
        return _page("invalid", 400)
    prefs = _prefs()
    digest = req.channel == links.DIGEST
    what = (
        _("digest emails")
        if digest
        else _(
            "%(type)s notices by %(channel)s",
            type=req.notice_type,
            channel=channel_label(str(req.channel)),
        )
    )
    if not digest and (req.notice_type not in prefs.types() or req.channel not in prefs.channels()):
        return _page("gone", 400, what=what)
    if not digest and prefs.is_required(str(req.notice_type)):
        return _page("required", 409 if request.method == "POST" else 200, what=what)
    if request.method == "GET":
        return _page("confirm", 200, what=what, action=request.path)
    try:
        if digest:
            prefs.set_digest(user_id, "off")
        else:
            prefs.set(user_id, str(req.notice_type), req.channel, False)
    except IntegrityError:
        # the user has been deleted since the link was sent (user_table foreign key)
        state_of(app).db.session.rollback()
        return _page("invalid", 404)
    return _page("done", 200, what=what)


def _page(step: str, status: int, what: str = "", **context: Any) -> Response:
    # sentence case without lowering the rest: |capitalize made German nouns lowercase
    what_start = what[:1].upper() + what[1:]
    html = render_template(
        "notice/unsubscribe.html", step=step, what=what, what_start=what_start, **context
    )
    response = Response(html, status=status)
    # the token is in the URL: keep it out of Referer headers and search indexes
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@inbox_bp.record_once
def _exempt_unsubscribe_from_csrf(setup_state: BlueprintSetupState) -> None:
    """Mail clients POST the one-click unsubscribe without a CSRF token (RFC 8058); the
    signed link is the proof."""
    exempt_from_flask_wtf(setup_state.app, unsubscribe)
