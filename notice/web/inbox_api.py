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

Each notice carries ``link``: its ``url`` if a browser may follow it
(:func:`notice.links.safe_link`), else null; ``url`` is as stored.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from ..links import with_link
from ..state import state_of
from .auth import check_csrf, require_api_user
from .blueprints import inbox_bp
from .facade import notices
from .inbox_params import mark_targets, notice_query
from .inbox_reads import delete_one, own, page, unread_count


def _json(notice: Any) -> dict[str, Any]:
    return with_link(notice.to_dict(), state_of().settings.link_origins)


@inbox_bp.get("/api/notices")
def api_list() -> ResponseReturnValue:
    user_id = require_api_user()
    rows, next_before_id = page(user_id, notice_query())
    return jsonify(
        notices=[_json(n) for n in rows],
        next_before_id=next_before_id,
        unread=unread_count(user_id),
    )


@inbox_bp.get("/api/notices/<int:notice_id>")
def api_get(notice_id: int) -> ResponseReturnValue:
    return jsonify(notice=_json(own(require_api_user(), notice_id)))


@inbox_bp.get("/api/unread-count")
def api_unread_count() -> ResponseReturnValue:
    return jsonify(unread=unread_count(require_api_user()))


@inbox_bp.post("/api/notices/<int:notice_id>/<any(read, unread):action>")
def api_mark_one(notice_id: int, action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    own(user_id, notice_id)
    facade = notices()
    mark = facade.mark_read if action == "read" else facade.mark_unread
    mark(user_id, [notice_id])
    notice = own(user_id, notice_id)
    return jsonify(notice=_json(notice), unread=unread_count(user_id))


@inbox_bp.post("/api/notices/<any(read, unread):action>")
def api_mark_many(action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    ids = mark_targets()
    facade = notices()
    mark = facade.mark_read if action == "read" else facade.mark_unread
    changed = mark(user_id, ids)
    return jsonify(changed=changed, unread=unread_count(user_id))


@inbox_bp.delete("/api/notices/<int:notice_id>")
def api_delete(notice_id: int) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    unread = delete_one(user_id, notice_id)
    return jsonify(deleted=notice_id, unread=unread)
