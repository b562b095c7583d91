"""Reading the web layer's query parameters, path values and JSON bodies; a bad one is
a 400 that names the parameter and says why (:class:`notice.web.errors.BadParameter`).

Everything is checked here, before it reaches SQL: ids are whole numbers in the id
columns' range, text holds no NUL (PostgreSQL cannot store it), JSON bodies are
standard JSON (no ``NaN``/``Infinity``) nested at most :data:`MAX_JSON_DEPTH` deep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, NoReturn

from flask import request

from ..references import CATEGORIES, MAX_REF
from ..state import state_of
from ..store import NoticeQuery
from ..types import NoticeType
from .blueprints import api_bp, inbox_bp
from .errors import BadParameter

#: longest ``q`` text filter we accept
MAX_TEXT = 200
#: most ids one mark request may name
MAX_IDS = 1000
#: the largest id: every id column is a BigInteger
ID_MAX = 2**63 - 1
#: deepest nesting of arrays and objects a JSON body may have
MAX_JSON_DEPTH = 32

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
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        # the database compares in UTC: year 1 at +14:00 is before year 1 there
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise BadParameter(name, "out of range") from None


def parse_int(name: str, value: Any, *, low: int = 1, high: int | None = None) -> int:
    """``value`` (text or a JSON number) as a whole number in ``[low, high]``."""
    if isinstance(value, bool):
        raise BadParameter(name, "must be a whole number")
    if isinstance(value, str) and len(value.strip()) > 40:
        # no number we accept is this long; int() of a huge text costs quadratic time
        raise BadParameter(name, "must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadParameter(name, "must be a whole number") from None
    if isinstance(value, float) and value != number:
        raise BadParameter(name, "must be a whole number")
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadParameter(name, f"must be {bound}")
    return number


def parse_id(name: str, value: Any, *, low: int = 1) -> int:
    """A row id: a whole number from ``low`` to :data:`ID_MAX` (a larger one is no id,
    and a database error if it reached SQL)."""
    return parse_int(name, value, low=low, high=ID_MAX)


def parse_text(name: str, value: str) -> str:
    """``value`` unless it holds a NUL character, which no text column can store."""
    if "\x00" in value:
        raise BadParameter(name, "must not contain NUL characters")
    return value


def json_body(parameter: str = "body") -> Any:
    """The request's JSON body; None when there is none or it is not JSON.

    Only standard JSON is accepted: ``NaN`` and ``Infinity`` (which Python's ``json``
    would take) and nesting deeper than :data:`MAX_JSON_DEPTH` are a
    :class:`BadParameter` naming ``parameter``, as is a NUL in any string.
    """
    if not request.is_json:
        return None
    text = request.get_data(cache=True)

    def no_constant(name: str) -> NoReturn:
        raise BadParameter(parameter, f"{name} is not standard JSON")

    try:
        body = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise BadParameter(parameter, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # not JSON at all: JSONDecodeError, UnicodeDecodeError
        return None
    _check_json(body, parameter)
    return body


def _check_json(body: Any, parameter: str) -> None:
    # iterative, so checking depth cannot itself overflow the stack
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            parse_text(parameter, value)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadParameter(parameter, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                parse_text(parameter, key)
                stack.append((item, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in value)


@inbox_bp.url_value_preprocessor
@api_bp.url_value_preprocessor
def _check_request(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Before every view: ids in the path are in range, and no path value or query
    parameter holds a NUL."""
    for key, value in (values or {}).items():
        if isinstance(value, int):
            parse_id(key, value, low=0)
        elif isinstance(value, str):
            parse_text(key, value)
    for key, value in request.args.items(multi=True):
        parse_text(parse_text("query", key), value)


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


def parse_ref(name: str, value: str) -> tuple[str, str] | None:
    """``actor=user:7`` / ``target=post:12``: a reference's type and id (the id may hold
    more colons); empty means no filter."""
    text = value.strip()
    if not text:
        return None
    kind, colon, key = text.partition(":")
    if not colon or not kind or not key:
        raise BadParameter(name, "use type:id, e.g. post:12")
    if len(kind) > MAX_REF or len(key) > MAX_REF:
        raise BadParameter(name, f"type and id are at most {MAX_REF} characters each")
    return kind, key


def parse_categories(values: list[str]) -> tuple[str, ...]:
    """``category=warning&category=error`` or ``category=warning,error``."""
    found = [part.strip() for value in values for part in value.split(",") if part.strip()]
    unknown = [c for c in found if c not in CATEGORIES]
    if unknown:
        raise BadParameter("category", f"unknown category; use {', '.join(CATEGORIES)}")
    return tuple(dict.fromkeys(found))


def about_query(args: Mapping[str, Any] | None = None) -> NoticeQuery:
    """The current request's ``actor``, ``target`` and ``category`` filters alone (what
    the unread count takes)."""
    args = request.args if args is None else args
    getlist = getattr(args, "getlist", None)
    categories = getlist("category") if getlist is not None else [args.get("category", "")]
    return NoticeQuery(
        actor=parse_ref("actor", args.get("actor", "")),
        target=parse_ref("target", args.get("target", "")),
        categories=parse_categories(categories),
    )


def notice_query(args: Mapping[str, Any] | None = None) -> NoticeQuery:
    """The listing filters of the current request (``read``, ``type``, ``q``, ``before``,
    ``after``, ``before_id``, ``limit``, ``archived``, ``actor``, ``target``,
    ``category``); raises :class:`BadParameter`."""
    args = request.args if args is None else args
    settings = state_of().settings
    text = parse_text("q", args.get("q", "")).strip()
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
    about = about_query(args)
    return replace(
        about,
        read=parse_bool("read", args.get("read", "")),
        types=parse_types(types),
        text=text or None,
        before=before,
        after=after,
        before_id=parse_id("before_id", raw_cursor) if raw_cursor else None,
        limit=(
            parse_int("limit", raw_limit, high=settings.page_max)
            if raw_limit
            else settings.page_size
        ),
        archived=parse_archived(args.get("archived", "")),
    )


#: ``archived=`` values and what the listing keeps: archived only, both, or none
ARCHIVED = {"only": True, "include": None, "": False}


def parse_archived(raw: str) -> bool | None:
    """``archived=only|include`` (default: archived notices left out)."""
    try:
        return ARCHIVED[raw]
    except KeyError:
        raise BadParameter("archived", "must be only or include") from None


def mark_targets() -> list[int] | None:
    """Which notices a mark request names: ``{"ids": [...]}`` or ``{"all": true}`` as
    JSON, or form fields ``id`` (repeated) / ``all``; None means all."""
    if request.is_json:
        body = json_body()
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
    return [parse_id("ids", i) for i in ids]
