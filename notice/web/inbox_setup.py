"""What the inbox needs on each app, done when the blueprint is registered: the Jinja
globals of the templates (``notice_unread_count()``, ``notice_safe_url``,
``notice_settings()``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import g
from flask.sansio.blueprints import BlueprintSetupState

from ..config import Settings
from ..state import state_of
from .auth import current_user_id
from .blueprints import inbox_bp
from .inbox_reads import unread_count


@inbox_bp.record_once
def _setup(setup_state: BlueprintSetupState) -> None:
    app = setup_state.app
    app.jinja_env.globals.update(
        notice_unread_count=notice_unread_count,
        notice_safe_url=safe_url,
        notice_settings=notice_settings,
    )


def notice_settings() -> Settings:
    """The current app's settings, read once by ``init_app`` (the templates' view of
    ``NOTICE_*``)."""
    return state_of().settings


def notice_unread_count() -> int:
    """The current user's unread count for templates (0 when nobody is logged in);
    counted once per request."""
    if "_notice_unread" not in g:
        user_id = current_user_id()
        g._notice_unread = 0 if user_id is None else unread_count(user_id)
    return int(g._notice_unread)


def safe_url(url: str | None) -> str | None:
    """``url`` if a browser may follow it from a notice (http, https or a path on this
    site), else None: a ``javascript:`` or ``data:`` link never reaches a page."""
    if not url or "\\" in url or any(ord(c) < 33 for c in url.strip()):
        return None  # "/\\host" is "//host" to browsers
    parts = urlsplit(url.strip())
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    if not parts.scheme and not parts.netloc and url.strip().startswith("/"):
        return url.strip()
    return None
