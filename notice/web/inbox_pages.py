"""The inbox page (``GET <prefix>/``) and its form actions (``POST <prefix>/mark``).

Plain HTML that works without JavaScript; ``notice.js`` adds live updates on top.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from ..state import state_of
from ..types import NoticeType
from .auth import check_csrf, require_user
from .blueprints import inbox_bp
from .errors import BadParameter
from .facade import notices
from .inbox_params import mark_targets, notice_query, parse_int
from .inbox_reads import delete_one, get, has_archivable, page, unread_count
from .inbox_setup import safe_url
from .inbox_view import CATEGORIES, notice_extras

_FILTERS = ("read", "type", "category", "q", "archived")


@inbox_bp.get("/")
def inbox() -> ResponseReturnValue:
    user_id = require_user()
    query = notice_query()
    rows, next_before_id = page(user_id, query)
    # the page's JSON dicts name the references: one resolver call per type per page
    extras = {d["id"]: notice_extras(d) for d in state_of().notice_dicts(rows)}
    filters = {key: request.args.get(key, "") for key in _FILTERS}
    return render_template(
        "notice/inbox.html",
        notice_base_template=state_of().settings.base_template,
        notices=rows,
        extras=extras,
        unread=unread_count(user_id),
        next_before_id=next_before_id,
        cursor=query.before_id,
        filters=filters,
        filtered=any(v for k, v in filters.items() if k != "archived"),
        archived_view=query.archived is True,
        page_args={k: v for k, v in filters.items() if v},
        types=NoticeType.known(),
        categories=CATEGORIES,
        archivable=not query.archived and has_archivable(user_id),
    )


@inbox_bp.post("/mark")
def inbox_mark() -> ResponseReturnValue:
    """Form action: ``action`` read / unread / archive / unarchive / delete on ``id``
    (repeated) or ``all`` (archive with ``all``: all read ones)."""
    user_id = require_user()
    check_csrf()
    action = request.form.get("action", "")
    if action == "delete":
        delete_one(user_id, parse_int("id", request.form.get("id", "")))
    elif action in ("read", "unread"):
        ids = mark_targets()
        if ids is not None and len(ids) == 1 and get(user_id, ids[0]) is None:
            raise NotFound("no such notice")
        facade = notices()
        (facade.mark_read if action == "read" else facade.mark_unread)(user_id, ids)
    elif action in ("archive", "unarchive"):
        ids = mark_targets()
        if ids is not None and len(ids) == 1 and get(user_id, ids[0]) is None:
            raise NotFound("no such notice")
        if action == "archive":
            notices().archive(user_id, ids, only_read=ids is None)
        else:
            notices().unarchive(user_id, ids)
    else:
        raise BadParameter("action", "use read, unread, archive, unarchive or delete")
    return redirect(_back(), code=303)


def _back() -> Any:
    # only a path on this site: a crafted form must not turn this into an open redirect
    target = safe_url(request.form.get("next"))
    if target is None or not target.startswith("/"):
        target = url_for("notice.inbox")
    return target
