"""What a notice is about: its actor, target and action object (references to the
app's own rows), its category and its action buttons.

A reference is stored as two strings, a type and an id. :func:`reference` takes a model
instance (type: its table name, id: its primary key) or a ``(type, id)`` pair. Names and
links are not stored: they change (a user renames themself, a post moves) and belong
to the app. The app's resolver (``@notices.reference_resolver``) gives them when a
notice is shown, called by :func:`resolve` once per *type* for a whole page of
notices, never once per notice::

    @notices.reference_resolver
    def names(type_: str, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        if type_ == "user":
            users = User.query.filter(User.id.in_(ids))
            return {str(u.id): (u.name, f"/users/{u.id}") for u in users}
        return {}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import NoInspectionAvailable

from .errors import InvalidNotice
from .links import origin_of, safe_link

logger = logging.getLogger("notice")

#: the categories (levels) a notice may have; the first is the default
CATEGORIES = ("info", "success", "warning", "error")
#: the reference roles, as in the notice JSON and the ``<role>_type`` / ``<role>_id`` columns
ROLES = ("actor", "target", "action_object")
#: longest reference type and id (the columns' lengths)
MAX_REF = 64
#: longest action label, and the HTTP methods an action may use
MAX_LABEL = 64
METHODS = ("GET", "POST")
MAX_ACTION_URL = 2048

#: ``resolver(type, ids) -> {id: (name, url)}`` for the ids it knows
#: (``Notices.reference_resolver``)
Resolver = Callable[[str, list[str]], Mapping[str, Any]]


class Ref(NamedTuple):
    """A stored reference: the type and id of a row of the app."""

    type: str
    id: str


def reference(role: str, value: Any) -> Ref | None:
    """``value`` (a model instance, a ``(type, id)`` pair or None) as a :class:`Ref`.

    :raise InvalidNotice: anything else, an instance without one primary key, or a type
        or id that is empty or longer than :data:`MAX_REF`.
    """
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InvalidNotice(f"{role} must be a model instance or a (type, id) pair")
        kind, key = value
    else:
        try:
            mapper = sa.inspect(value).mapper
        except NoInspectionAvailable:
            raise InvalidNotice(
                f"{role} must be a model instance or a (type, id) pair, "
                f"not {type(value).__name__}"
            ) from None
        table = getattr(mapper, "local_table", None)
        kind = getattr(table, "name", None) or mapper.class_.__name__
        keys = mapper.primary_key_from_instance(value)
        if len(keys) != 1 or keys[0] is None:
            raise InvalidNotice(
                f"{role}: {type(value).__name__} needs one primary key with a value "
                "(flush it first, or pass a (type, id) pair)"
            )
        key = keys[0]
    if isinstance(key, bool) or not isinstance(key, (str, int, UUID)):
        raise InvalidNotice(f"{role} id must be a string, an integer or a UUID, got {key!r}")
    kind, key = str(kind), str(key)
    for part, text in (("type", kind), ("id", key)):
        if not 0 < len(text) <= MAX_REF or "\x00" in text:
            raise InvalidNotice(f"{role} {part} must be 1-{MAX_REF} characters, got {text!r}")
    return Ref(kind, key)


def category(value: Any) -> str:
    """``value`` as a category; None is the default, ``"info"``."""
    if value is None:
        return CATEGORIES[0]
    if value not in CATEGORIES:
        raise InvalidNotice(f"unknown category {value!r}; use one of {', '.join(CATEGORIES)}")
    return str(value)


def actions(value: Any, limit: int, origins: Collection[str]) -> list[dict[str, str]] | None:
    """``value`` (dicts with ``label``, ``url`` and ``method`` GET or POST, the default
    GET) checked and normalised; None when there are none.

    An action URL is a path on this site or an http(s) URL on one of ``origins``
    (NOTICE_LINK_ORIGINS, NOTICE_BASE_URL): the inbox, the pop-up, Web Push and email
    all make a link or a button of it, so a ``javascript:`` URL would run in the inbox.

    :raise InvalidNotice: more than ``limit`` (NOTICE_MAX_ACTIONS), or one that is wrong.
    """
    if value is None:
        return None
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise InvalidNotice("actions must be a list of {label, url, method} dicts")
    items = list(value)
    if len(items) > limit:
        raise InvalidNotice(f"{len(items)} actions; the limit is {limit} (NOTICE_MAX_ACTIONS)")
    checked = [_action(n, item, origins) for n, item in enumerate(items)]
    return checked or None


def _action(n: int, item: Any, origins: Collection[str]) -> dict[str, str]:
    where = f"actions[{n}]"
    if not isinstance(item, Mapping):
        raise InvalidNotice(f"{where} must be a dict with label, url and method")
    unknown = set(item) - {"label", "url", "method"}
    if unknown:
        raise InvalidNotice(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    label, url, method = item.get("label"), item.get("url"), item.get("method", "GET")
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL:
        raise InvalidNotice(f"{where}: label must be a non-empty string of at most {MAX_LABEL}")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InvalidNotice(f"{where}: method must be GET or POST, got {method!r}")
    if not isinstance(url, str) or len(url) > MAX_ACTION_URL:
        raise InvalidNotice(f"{where}: url must be a string of at most {MAX_ACTION_URL}")
    scheme = urlsplit(url.strip()).scheme.lower() if url.strip() else ""
    if scheme not in ("", "http", "https"):
        raise InvalidNotice(f"{where}: url must be http(s) or a path on this site, not {scheme}:")
    if safe_link(url, origins) is None:
        if scheme:
            raise InvalidNotice(
                f"{where}: {origin_of(url) or url!r} is not an allowed link origin; "
                "add it to NOTICE_LINK_ORIGINS (or use a path on this site)"
            )
        raise InvalidNotice(f"{where}: url must be http(s) or a path starting with /")
    return {"label": label.strip(), "url": url.strip(), "method": method.upper()}


# --- showing references -------------------------------------------------------------


def ref_dict(kind: str | None, key: str | None) -> dict[str, Any] | None:
    """The JSON of a stored reference, names not resolved yet."""
    if kind is None or key is None:
        return None
    return {"type": kind, "id": key, "name": None, "url": None}


def resolve(
    resolver: Resolver | None, notices: Sequence[dict[str, Any]], origins: Collection[str]
) -> None:
    """Fill in ``name`` and ``url`` of every reference in the notice dicts (in place):
    one ``resolver`` call per reference type among them. A resolver's url is kept only
    if it is a safe link (:func:`notice.links.safe_link`). A resolver that raises is
    logged and leaves names empty: the notices still show."""
    if resolver is None:
        return
    wanted: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for notice in notices:
        for role in ROLES:
            ref = notice.get(role)
            if ref is not None:
                wanted.setdefault(ref["type"], {}).setdefault(ref["id"], []).append(ref)
    for kind, by_id in wanted.items():
        try:
            found = resolver(kind, list(by_id))
        except Exception:  # noqa: BLE001 - an app bug must not hide the notices
            logger.exception("the reference resolver failed for type %r", kind)
            continue
        for key, refs in by_id.items():
            name, url = _named(found.get(key))
            for ref in refs:
                ref["name"], ref["url"] = name, safe_link(url, origins)


def _named(value: Any) -> tuple[str | None, str | None]:
    """A resolver's answer for one id: ``(name, url)``, a name alone, or None."""
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    name, url = value
    return (None if name is None else str(name)), (None if url is None else str(url))
