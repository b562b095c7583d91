"""What the inbox needs on each app, done when the blueprint is registered: the Jinja
globals of the templates (``notice_unread_count()``, ``notice_badge_count()``,
``notice_safe_url``, ``notice_settings()``, ``notice_extras``,
``notice_level_labels()``)."""

from __future__ import annotations

from flask import g
from flask.sansio.blueprints import BlueprintSetupState

from ..config import Settings
from ..links import safe_link
from ..state import state_of
from .auth import current_user_id
from .blueprints import inbox_bp
from .inbox_reads import counts, unread_count
from .inbox_view import level_labels, notice_extras


@inbox_bp.record_once
def _setup(setup_state: BlueprintSetupState) -> None:
    app = setup_state.app
    app.jinja_env.globals.update(
        notice_unread_count=notice_unread_count,
        notice_badge_count=notice_badge_count,
        notice_extras=notice_extras,
        notice_level_labels=level_labels,
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


def notice_badge_count() -> int:
    """What the bell's badge shows for the current user: the unread or the unseen count
    (``NOTICE_BADGE_COUNTS``); 0 when nobody is logged in. Counted once per request."""
    if "_notice_counts" not in g:
        user_id = current_user_id()
        g._notice_counts = {} if user_id is None else counts(user_id)
    return int(g._notice_counts.get(state_of().settings.badge_counts, 0))


def safe_url(url: str | None) -> str | None:
    """``url`` if a notice may link to it from a page (:func:`notice.links.safe_link`
    with the app's ``NOTICE_LINK_ORIGINS``), else None."""
    return safe_link(url, state_of().settings.link_origins)
