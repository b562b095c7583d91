"""The logged-in user's JSON API under ``NOTICE_URL_PREFIX`` (default ``/notices``).

=======  ==============================  ===========================================
GET      ``/api/notices``                list, newest first; filters and cursor
GET      ``/api/notices/<id>``           one notice
GET      ``/api/unread-count``           ``{"unread": n, "unseen": m}``; ``actor``,
                                         ``target``, ``category`` filters as the list's
POST     ``/api/notices/<id>/<action>``  one notice: ``read``, ``unread``, ``seen``,
                                         ``archive``, ``unarchive``
POST     ``/api/notices/<action>``       many (``{"ids": [...]}``) or all
                                         (``{"all": true}``; for ``archive``: all
                                         read ones)
DELETE   ``/api/notices/<id>``           delete one
=======  ==============================  ===========================================

Someone else's notice is a 404, exactly like one that does not exist. State changes
need the CSRF token (``X-CSRFToken`` header, see :mod:`notice.web.auth`). Errors are
JSON (:mod:`notice.web.errors`).

Each notice carries ``link``: its ``url`` if a browser may follow it
(:func:`notice.links.safe_link`), else null; ``url`` is as stored; ``seen_at`` and
``archived_at`` say when it was seen and archived (null: not yet). Archived notices
are listed only with ``archived=only`` (or ``include``). ``category``, ``actions`` and
the ``actor`` / ``target`` / ``action_object`` references (named by the app's
``@notices.reference_resolver``) are described in :mod:`notice.references`; the list
filters by ``actor=type:id``, ``target=type:id`` (target or action object) and
``category=warning,error``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from ..models import iso_time
from ..state import state_of
from .auth import check_csrf, require_api_user
from .blueprints import inbox_bp
from .facade import notices
from .inbox_params import about_query, mark_targets, notice_query
from .inbox_reads import counts, delete_one, own, page, unread_count

#: the state changes a POST may ask for, as in the URL
ACTIONS = ("read", "unread", "seen", "archive", "unarchive")
_ACTION = f"<any({', '.join(ACTIONS)}):action>"


def _jsons(rows: list[Any]) -> list[dict[str, Any]]:
    """The notices' JSON: ``link``, inbox times, references named (one resolver call
    per reference type for the whole page)."""
    return state_of().notice_dicts(
        [
            {
                **n.to_dict(),
                "seen_at": iso_time(n.seen_at),
                "archived_at": iso_time(n.archived_at),
            }
            for n in rows
        ]
    )


def _json(notice: Any) -> dict[str, Any]:
    return _jsons([notice])[0]


def _change(action: str) -> Callable[[Any, list[int] | None], int]:
    """The façade call behind ``action``; with no ids, "archive" takes the read ones."""
    facade = notices()
    if action == "archive":
        return lambda user, ids: facade.archive(user, ids, only_read=ids is None)
    change: Callable[[Any, list[int] | None], int] = {
        "read": facade.mark_read,
        "unread": facade.mark_unread,
        "seen": facade.mark_seen,
        "unarchive": facade.unarchive,
    }[action]
    return change


@inbox_bp.get("/api/notices")
def api_list() -> ResponseReturnValue:
    user_id = require_api_user()
    rows, next_before_id = page(user_id, notice_query())
    return jsonify(
        notices=_jsons(rows),
        next_before_id=next_before_id,
        unread=unread_count(user_id),
    )


@inbox_bp.get("/api/notices/<int:notice_id>")
def api_get(notice_id: int) -> ResponseReturnValue:
    return jsonify(notice=_json(own(require_api_user(), notice_id)))


@inbox_bp.get("/api/unread-count")
def api_unread_count() -> ResponseReturnValue:
    return jsonify(counts(require_api_user(), about_query()))


@inbox_bp.post(f"/api/notices/<int:notice_id>/{_ACTION}")
def api_mark_one(notice_id: int, action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    own(user_id, notice_id)
    _change(action)(user_id, [notice_id])
    notice = own(user_id, notice_id)
    return jsonify(notice=_json(notice), **counts(user_id))


@inbox_bp.post(f"/api/notices/{_ACTION}")
def api_mark_many(action: str) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    changed = _change(action)(user_id, mark_targets())
    return jsonify(changed=changed, **counts(user_id))


@inbox_bp.delete("/api/notices/<int:notice_id>")
def api_delete(notice_id: int) -> ResponseReturnValue:
    user_id = require_api_user()
    check_csrf()
    return jsonify(deleted=notice_id, **delete_one(user_id, notice_id))
