"""The app's :class:`~notice.Notices` object, for what only it does: marking notices
read or unread (with the ``notice_read`` signal and the streams' new count), the
preferences and the topics. Everything else the views reach through
:func:`notice.state.state_of` and :mod:`notice.store`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from flask import current_app

if TYPE_CHECKING:
    from ..preferences.preferences import Preferences
    from ..topics.topics import Topics


class Facade(Protocol):
    """The part of :class:`~notice.Notices` the views use (the web layer must not
    import :mod:`notice.extension`, which imports it)."""

    @property
    def preferences(self) -> Preferences: ...

    @property
    def topics(self) -> Topics: ...

    def mark_read(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int: ...

    def mark_unread(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int: ...

    def mark_seen(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int: ...

    def archive(
        self,
        user_id: Any,
        ids: Iterable[int] | None = None,
        *,
        only_read: bool = False,
        commit: bool = True,
    ) -> int: ...

    def unarchive(
        self, user_id: Any, ids: Iterable[int] | None = None, *, commit: bool = True
    ) -> int: ...


def notices() -> Facade:
    """The current app's ``Notices`` (``init_app`` files it in ``app.extensions``)."""
    facade: Facade = current_app.extensions["notice"]
    return facade
