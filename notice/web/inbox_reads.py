"""The logged-in user's inbox rows, through the store: the unread and unseen counts, a page of
notices, one notice, deleting one.

``user_id`` is :func:`notice.web.auth.current_user_id`'s, already converted by the
app's user-id policy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from werkzeug.exceptions import NotFound

from .. import store
from ..state import state_of
from ..store.reads import delete_notice
from ..types import ReadStatus


def unread_count(user_id: Any, query: store.NoticeQuery | None = None) -> int:
    """``user_id``'s unread count; with ``query``, of the notices matching its actor,
    target and category filters."""
    state = state_of()
    return int(store.unread_count(state.db.session, state.models.Notice, user_id, query=query))


def has_archivable(user_id: Any) -> bool:
    """Whether ``user_id`` has a read notice "archive all read" would archive."""
    state = state_of()
    return store.has_archivable(state.db.session, state.models.Notice, user_id)


def counts(user_id: Any, query: store.NoticeQuery | None = None) -> dict[str, int]:
    """``{"unread": n, "unseen": m}`` for JSON answers and stream events; with
    ``query``, of the notices matching its actor, target and category filters."""
    state = state_of()
    return store.badge_count(state.db.session, state.models.Notice, user_id, query=query)._asdict()


def notices(user_id: Any, query: store.NoticeQuery) -> list[Any]:
    """``user_id``'s notices matching ``query``, newest first."""
    state = state_of()
    return store.list_notices(state.db.session, state.models.Notice, user_id, query)


def page(user_id: Any, query: store.NoticeQuery) -> tuple[list[Any], int | None]:
    """One page of ``query`` and the ``before_id`` cursor of the next, older page (None
    on the last page)."""
    # one extra row tells whether an older page exists, so the last page has no cursor
    rows = notices(user_id, replace(query, limit=query.limit + 1))
    shown = rows[: query.limit]
    return shown, shown[-1].id if len(rows) > query.limit else None


def get(user_id: Any, notice_id: int) -> Any:
    """``user_id``'s notice, or None (also when it is someone else's)."""
    state = state_of()
    return store.get_notice(state.db.session, state.models.Notice, user_id, notice_id)


def own(user_id: Any, notice_id: int) -> Any:
    """``user_id``'s notice, or 404."""
    notice = get(user_id, notice_id)
    if notice is None:
        # someone else's notice looks exactly like a missing one
        raise NotFound("no such notice")
    return notice


def delete_one(user_id: Any, notice_id: int) -> dict[str, int]:
    """Delete the user's notice (404 if it is not theirs); return the :func:`counts`
    and tell the user's streams when they changed."""
    state = state_of()
    status = delete_notice(state.db.session, state.models.Notice, user_id, notice_id)
    if status is None:
        raise NotFound("no such notice")
    state.db.session.commit()
    if status == ReadStatus.UNREAD.value:
        state.publish_count(user_id, deleted=[notice_id])
    return counts(user_id)
