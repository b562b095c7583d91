"""Reading the inbox's query parameters and JSON bodies; a bad one is a 400 that names
the parameter and says why (:class:`notice.web.errors.BadParameter`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from flask import request

from ..state import state_of
from ..store import NoticeQuery
from ..types import NoticeType
from .errors import BadParameter

#: longest ``q`` text filter we accept
MAX_TEXT = 200
#: most ids one mark request may name
MAX_IDS = 1000

_TRUE = ("1", "true", "yes", "read")
_FALSE = ("0", "false", "no", "unread")


def parse_bool(name: str, value: str) -> bool | None:
    """``read=true|false`` (also 1/0, yes/no, read/unread); empty means either."""
    text = value.strip().lower()
    if not text or text == "all":
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadParameter(name, "use true or false")


def parse_datetime(name: str, value: str) -> datetime | None:
    """An ISO 8601 date or datetime; one without an offset is taken as UTC."""
    text = value.strip()
    if not text:
        return None
    # an unencoded "+01:00" arrives as " 01:00" (a "+" in a query string is a space)
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, "use an ISO 8601 datetime, e.g. 2026-01-31T12:00:00Z") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def parse_int(name: str, value: Any, *, low: int = 1, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise BadParameter(name, "must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadParameter(name, "must be a whole number") from None
    if isinstance(value, float) and value != number:
        raise BadParameter(name, "must be a whole number")
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadParameter(name, f"must be {bound}")
    return number


def parse_types(values: list[str]) -> tuple[str, ...]:
    """``type=Comment&type=Like`` or ``type=Comment,Like``; unknown types are refused."""
    found: list[str] = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    found.append(str(NoticeType(part.strip())))
                except ValueError:
                    known = ", ".join(NoticeType.known())
                    raise BadParameter("type", f"unknown type; known types: {known}") from None
    return tuple(dict.fromkeys(found))


def notice_query(args: Mapping[str, Any] | None = None) -> NoticeQuery:
    """The listing filters of the current request (``read``, ``type``, ``q``, ``before``,
    ``after``, ``before_id``, ``limit``); raises :class:`BadParameter`."""
    args = request.args if args is None else args
    settings = state_of().settings
    text = args.get("q", "").strip()
    if len(text) > MAX_TEXT:
        raise BadParameter("q", f"at most {MAX_TEXT} characters")
    before = parse_datetime("before", args.get("before", ""))
    after = parse_datetime("after", args.get("after", ""))
    if before is not None and after is not None and after >= before:
        raise BadParameter("after", "must be earlier than before")
    raw_cursor = args.get("before_id", "")
    raw_limit = args.get("limit", "")
    getlist = getattr(args, "getlist", None)
    types = getlist("type") if getlist is not None else [args.get("type", "")]
    return NoticeQuery(
        read=parse_bool("read", args.get("read", "")),
        types=parse_types(types),
        text=text or None,
        before=before,
        after=after,
        before_id=parse_int("before_id", raw_cursor) if raw_cursor else None,
        limit=(
            parse_int("limit", raw_limit, high=settings.page_max)
            if raw_limit
            else settings.page_size
        ),
    )


def mark_targets() -> list[int] | None:
    """Which notices a mark request names: ``{"ids": [...]}`` or ``{"all": true}`` as
    JSON, or form fields ``id`` (repeated) / ``all``; None means all."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BadParameter("body", 'send a JSON object such as {"ids": [1, 2]}')
        everything, ids = body.get("all"), body.get("ids")
    else:
        everything = request.form.get("all") or None
        ids = request.form.getlist("id") or None
    if everything not in (None, False) and ids is not None:
        raise BadParameter("ids", "send either ids or all, not both")
    if everything not in (None, False):
        if everything not in (True, "1", "true"):
            raise BadParameter("all", "must be true")
        return None
    if ids is None:
        raise BadParameter("ids", "required: a list of notice ids (or all: true)")
    if not isinstance(ids, list) or not ids:
        raise BadParameter("ids", "must be a non-empty list of notice ids")
    if len(ids) > MAX_IDS:
        raise BadParameter("ids", f"at most {MAX_IDS} per request")
    return [parse_int("ids", i) for i in ids]
