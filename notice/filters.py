"""Composable filters that decide which senders get which notices.

A filter is a predicate over a notice (or the draft of one before it is written),
combined with ``&``, ``|`` and ``~``::

    from notice.filters import of_type, to_user, from_sender
    notices.register_sender(SmsSender(), when=of_type(NoticeType.SYSTEM) & ~to_user(1))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Filter:
    """A named predicate over a notice; combine with ``&``, ``|``, ``~``."""

    def __init__(self, predicate: Callable[[Any], bool], description: str) -> None:
        self._predicate = predicate
        self.description = description

    def __call__(self, notice: Any) -> bool:
        return bool(self._predicate(notice))

    def __and__(self, other: Filter) -> Filter:
        return Filter(lambda n: self(n) and other(n), f"({self.description} & {other.description})")

    def __or__(self, other: Filter) -> Filter:
        return Filter(lambda n: self(n) or other(n), f"({self.description} | {other.description})")

    def __invert__(self) -> Filter:
        return Filter(lambda n: not self(n), f"~{self.description}")

    def __repr__(self) -> str:
        return f"<Filter {self.description}>"


def of_type(*types: str) -> Filter:
    """Notices whose ``notice_type`` is one of ``types``."""
    wanted = frozenset(str(t) for t in types)
    return Filter(lambda n: n.notice_type in wanted, f"of_type({', '.join(sorted(wanted))})")


def of_category(*categories: str) -> Filter:
    """Notices whose ``category`` is one of ``categories`` (``"warning"``, ``"error"``:
    say, an SMS only for errors)."""
    wanted = frozenset(categories)
    return Filter(lambda n: n.category in wanted, f"of_category({', '.join(sorted(wanted))})")


def to_user(*user_ids: Any) -> Filter:
    """Notices addressed to one of ``user_ids`` (the receiver)."""
    wanted = frozenset(user_ids)
    return Filter(lambda n: n.user_id in wanted, f"to_user({', '.join(map(str, user_ids))})")


def from_sender(*sender_ids: Any) -> Filter:
    """Notices caused by one of ``sender_ids`` (the acting user)."""
    wanted = frozenset(sender_ids)
    return Filter(
        lambda n: n.sender_id in wanted, f"from_sender({', '.join(map(str, sender_ids))})"
    )


def where(predicate: Callable[[Any], bool], description: str = "where(...)") -> Filter:
    """Wrap any predicate so it composes with the others."""
    return Filter(predicate, description)


#: matches everything; the default ``when`` of a sender
always = Filter(lambda n: True, "always")
