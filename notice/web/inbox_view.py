"""A notice's optional presentation fields, checked for the inbox page: its category
(level), action buttons, actor and target.

The notice JSON may carry (issue 17's inbox-model contract)::

    "category": "info" | "success" | "warning" | "error"
    "actions":  [{"label": ..., "url": ..., "method": "GET" | "POST"}, ...]
    "actor", "target": {"type": ..., "id": ..., "name": ..., "url": ...} | null

Each is optional: a missing or malformed one renders nothing, an action or reference
whose url may not be a link (:func:`notice.links.safe_link`) is left out or shown as
text. notice.js applies the same rules to notices arriving on the live stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..i18n import gettext
from ..links import safe_link
from ..state import state_of

#: the categories a notice may have; each is a CSS class ``notice-level-<category>``
CATEGORIES = ("info", "success", "warning", "error")
#: action buttons shown per notice at most (a longer list is cut, not refused: the
#: model that stores them sets its own limit)
MAX_ACTIONS = 3
#: longest label or name shown, in characters
MAX_LABEL = 80


def level_labels() -> dict[str, str]:
    """Each category's label in the current locale, for the level badges of the page,
    the live list and the pop-ups (notice.js reads them from the script tag)."""
    return {
        "info": gettext("Info"),
        "success": gettext("Success"),
        "warning": gettext("Warning"),
        "error": gettext("Error"),
    }


@dataclass(frozen=True)
class Action:
    """A button: a link for GET, a small form (with the CSRF token) for POST."""

    label: str
    url: str
    method: str


@dataclass(frozen=True)
class Ref:
    """An actor or target: its name, and a link when its url may be one."""

    name: str
    url: str | None


@dataclass(frozen=True)
class Extras:
    category: str | None
    actions: tuple[Action, ...]
    actor: Ref | None
    target: Ref | None


def safe_url(url: Any) -> str | None:
    """``url`` if the page may link to it (the app's ``NOTICE_LINK_ORIGINS``)."""
    return safe_link(url, state_of().settings.link_origins)


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()[:MAX_LABEL]


def _actions(value: Any) -> tuple[Action, ...]:
    if not isinstance(value, list):
        return ()
    found: list[Action] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            continue
        label, url = _text(entry.get("label")), safe_url(entry.get("url"))
        method = str(entry.get("method") or "GET").upper()
        if label and url and method in ("GET", "POST"):
            found.append(Action(label, url, method))
    return tuple(found[:MAX_ACTIONS])


def _ref(value: Any) -> Ref | None:
    if not isinstance(value, Mapping):
        return None
    name = _text(value.get("name"))
    return Ref(name, safe_url(value.get("url"))) if name else None


def notice_extras(notice: Any) -> Extras:
    """The checked optional fields of ``notice`` (a row with ``to_dict()`` or its
    JSON dict)."""
    data: Mapping[str, Any] = notice if isinstance(notice, Mapping) else notice.to_dict()
    category = data.get("category")
    return Extras(
        category=category if category in CATEGORIES else None,
        actions=_actions(data.get("actions")),
        actor=_ref(data.get("actor")),
        target=_ref(data.get("target")),
    )
