"""The logged-in user's JSON API under ``NOTICE_URL_PREFIX`` (default ``/notices``).

=======  ==============================  ===========================================
GET      ``/api/notices``                list, newest first; filters and cursor
GET      ``/api/notices/<id>``           one notice
GET      ``/api/unread-count``           ``{"unread": n}``
POST     ``/api/notices/<id>/read``      mark one read (``/unread``: unread)
POST     ``/api/notices/read``           mark many (``{"ids": [...]}``) or all
                                         (``{"all": true}``) read (``/unread``)
DELETE   ``/api/notices/<id>``           delete one
=======  ==============================  ===========================================

Someone else's notice is a 404, exactly like one that does not exist. State changes
need the CSRF token (``X-CSRFToken`` header, see :mod:`notice.web.auth`). Errors are
JSON (:mod:`notice.web.errors`).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from ..state import state_of
from ..store.reads import delete_notice
from ..types import ReadStatus
from .auth import check_csrf, require_api_user
from .blueprints import inbox_bp
from .inbox_params import mark_targets, notice_query


def _ext() -> Any:
    return current_app.extensions["notice"]


def _own(user_id: Any, notice_id: int) -> Any:
    notice = _ext().get(user_id, notice_id)
    if notice is None:
        # someone else's notice looks exactly like a missing one
        raise NotFound("no such notice")
    return notice


@inbox_bp.get("/api/notices")
def api_list() -> ResponseReturnValue:
    user_id = require_api_user()
    query = notice_query()
    ext = _ext()
    # one extra row tells whether an older page exists, so the last page has no cursor
    rows = ext.list_notices(user_id, _with_limit(query, query.limit + 1))
    page = rows[: query.limit]
    return jsonify(
        notices=[n.to_dict() for n in page],
        next_before_id=page[-1].id if len(rows) > query.limit else None,
        unread=ext.unread_count(user_id),
    )


def _with_limit(query: Any, limit: int) -> Any:
    from dataclasses import replace

    return replace(query, limit=limit)


@inbox_bp.get("/api/notices/<int:notice_id>")
def api_get(notice_id: int) -> ResponseReturnValue:
    return jsonify(notice=_own(require_api_user(), notice_id).to_dict())


@inbox_bp.get("/api/unread-count")
def api_unread_count() -> ResponseReturnValue:
    return jsonify(unread=_ext().unread_count(require_api_user()))


@inbox_bp.post("/api/notices/<int:notice_id>/<any(read, unread):action>")
def api_mark_one(notice_id: int, action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    ext = _ext()
    _own(user_id, notice_id)
    if action == "read":
        ext.mark_read(user_id, [notice_id])
    else:
        ext.mark_unread(user_id, [notice_id])
    notice = _own(user_id, notice_id)
    return jsonify(notice=notice.to_dict(), unread=ext.unread_count(user_id))


@inbox_bp.post("/api/notices/<any(read, unread):action>")
def api_mark_many(action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    ids = mark_targets()
    ext = _ext()
    mark = ext.mark_read if action == "read" else ext.mark_unread
    changed = mark(user_id, ids)
    return jsonify(changed=changed, unread=ext.unread_count(user_id))


@inbox_bp.delete("/api/notices/<int:notice_id>")
def api_delete(notice_id: int) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    unread = delete_one(user_id, notice_id)
    return jsonify(deleted=notice_id, unread=unread)


def delete_one(user_id: Any, notice_id: int) -> int:
    """Delete the user's notice (404 if it is not theirs); return the unread count and
    tell the user's streams when it changed."""
    ext = _ext()
    status = delete_notice(ext.db.session, ext.Notice, user_id, notice_id)
    if status is None:
        raise NotFound("no such notice")
    ext.db.session.commit()
    if status == ReadStatus.UNREAD.value:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        state_of(app).publish_count(user_id, deleted=[notice_id])
    return int(ext.unread_count(user_id))
