"""User preferences: which notice types reach a user on which channel, and their digest.

A choice is per user x notice type x channel. Without a stored choice the default
applies: ``NOTICE_PREFERENCE_DEFAULTS[type][channel]``, then ``[...]["*"][channel]``,
then on. Types in ``NOTICE_REQUIRED_TYPES`` are always on. The inbox keeps every
notice either way: preferences only decide which deliveries are made, and routing asks
them through :meth:`Preferences.allowed`, a ``NoticeState.gates`` entry, before any
delivery row is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flask import current_app

from ..columns import utcnow
from ..store import preferences as preference_store
from ..types import NoticeType
from .models import build_preference_models
from .settings import DIGEST_FREQUENCIES

if TYPE_CHECKING:
    from ..extension import Notices

#: channels that are not a way of reaching the user (the log, the open inbox tab's live
#: stream): not offered as choices, never gated
INTERNAL_CHANNELS = frozenset({"log", "stream"})


class Preferences:
    """The preference API, ``notices.preferences``; needs an app context.

    ::

        notices.preferences.set(user.id, "Like", "email", False)
        notices.preferences.get(user.id)       # {"Like": {"email": False, ...}, ...}
        notices.preferences.set_digest(user.id, "weekly")
    """

    def __init__(self, ext: Notices, *, user_table: str | None, user_id_type: Any) -> None:
        self._ext = ext
        models = build_preference_models(ext.db, user_table=user_table, user_id_type=user_id_type)
        #: the stored choices model (``notice_preference``)
        self.Preference = models.Preference
        #: the digest settings and lease model (``notice_digest``)
        self.DigestSetting = models.DigestSetting

    # --- what exists -----------------------------------------------------------------

    def channels(self) -> list[str]:
        """The current app's channels users choose from (sender names), sorted."""
        return sorted(set(self._ext.state().senders_by_name) - INTERNAL_CHANNELS)

    def types(self) -> list[str]:
        """Every registered notice type value, sorted."""
        return [str(t) for t in NoticeType.known()]

    def is_required(self, notice_type: str) -> bool:
        """True when users cannot turn ``notice_type`` off."""
        return str(notice_type) in current_app.config["NOTICE_REQUIRED_TYPES"]

    def default(self, notice_type: str, channel: str) -> bool:
        """The configured default for a type and channel (on unless configured off)."""
        if self.is_required(notice_type):
            return True
        defaults = current_app.config["NOTICE_PREFERENCE_DEFAULTS"]
        for key in (str(notice_type), "*"):
            value = defaults.get(key, {}).get(channel)
            if value is not None:
                return bool(value)
        return True

    # --- reading ---------------------------------------------------------------------

    def get(self, user_id: Any) -> dict[str, dict[str, bool]]:
        """``{notice_type: {channel: enabled}}`` for every type and channel, defaults
        filled in."""
        stored = preference_store.choices(self._session(), self.Preference, user_id)
        channels = self.channels()
        return {
            t: {
                c: True if self.is_required(t) else stored.get((t, c), self.default(t, c))
                for c in channels
            }
            for t in self.types()
        }

    def enabled(self, user_id: Any, notice_type: str, channel: str) -> bool:
        """Whether ``user_id`` receives ``notice_type`` on ``channel``."""
        return user_id in self.allowed(channel, notice_type, [user_id])

    def get_digest(self, user_id: Any) -> str:
        """The user's digest frequency: "off", "daily" or "weekly"."""
        value = preference_store.digest_frequency(self._session(), self.DigestSetting, user_id)
        return str(value or current_app.config["NOTICE_DIGEST_DEFAULT"])

    def allowed(self, channel: str, notice_type: str, user_ids: Sequence[Any]) -> set[Any]:
        """The users of ``user_ids`` who receive ``notice_type`` on ``channel``.

        One query for the whole list (PostgreSQL gets the ids as one array parameter).
        This is the routing gate, so it runs in the publishing transaction.
        """
        t = str(notice_type)
        if channel in INTERNAL_CHANNELS or self.is_required(t) or not user_ids:
            return set(user_ids)
        default = self.default(t, channel)
        # keyed by str: callers may hold ids as "7" where the database says 7
        choices = preference_store.choices_of(
            self._session(), self.Preference, t, channel, user_ids
        )
        return {u for u in user_ids if choices.get(str(u), default)}

    # --- writing ---------------------------------------------------------------------

    def set(
        self, user_id: Any, notice_type: str, channel: str, enabled: bool, *, commit: bool = True
    ) -> None:
        """Turn ``notice_type`` on ``channel`` on or off for ``user_id``.

        :raise ValueError: unknown type or channel, or turning off a required type.
        """
        t = str(NoticeType(notice_type))
        if channel not in self.channels():
            raise ValueError(
                f"unknown channel {channel!r}; this app has: {', '.join(self.channels())}"
            )
        if not enabled and self.is_required(t):
            raise ValueError(f"{t} notices are required and cannot be turned off")
        session = self._session()
        preference_store.set_choice(
            session, self.Preference, user_id, t, channel, bool(enabled), now=utcnow()
        )
        if commit:
            session.commit()

    def set_digest(self, user_id: Any, frequency: str, *, commit: bool = True) -> None:
        """Set the user's digest frequency ("off", "daily" or "weekly")."""
        if frequency not in DIGEST_FREQUENCIES:
            raise ValueError(
                f"digest frequency must be one of {', '.join(DIGEST_FREQUENCIES)}, "
                f"got {frequency!r}"
            )
        session = self._session()
        preference_store.set_digest_frequency(
            session, self.DigestSetting, user_id, frequency, now=utcnow()
        )
        if commit:
            session.commit()

    # --- helpers ---------------------------------------------------------------------

    def _session(self) -> Any:
        return self._ext.db.session
