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
from typing import Any

from ..columns import utcnow
from ..schedule.quiet import QuietWindow, format_clock, parse_clock
from ..senders.log import LogSender
from ..state import NoticeState, state_of
from ..store import preferences as preference_store
from ..store import schedule as schedule_store
from ..types import NoticeType, user_key
from .models import PreferenceModels
from .settings import DIGEST_FREQUENCIES, EMAIL_MODES, IMMEDIATE

#: channels that are not a way of reaching the user (the log): not offered as
#: choices, never gated
INTERNAL_CHANNELS = frozenset({LogSender.name})
#: the channel the digest reads choices of: settable even without an email sender,
#: as the digest mails anyway (it builds a sender from ``NOTICE_MAIL_*``)
DIGEST_CHANNEL = "email"


def allowed(
    state: NoticeState, channel: str, notice_type: str, user_ids: Sequence[Any]
) -> set[Any]:
    """The users of ``user_ids`` who receive ``notice_type`` on ``channel``.

    The routing gate (``NoticeState.gates``, bound to one app's state), so it runs in
    the publishing transaction: one query for the whole list (PostgreSQL gets the ids as
    one array parameter), none when the type is required, the channel internal, or no
    user stored any choice (:func:`~notice.store.preferences.any_stored`).
    """
    settings = state.preference_settings
    t = str(notice_type)
    if channel in INTERNAL_CHANNELS or settings.is_required(t) or not user_ids:
        return set(user_ids)
    session, model = state.db.session, state.preference_models.Preference
    if channel == DIGEST_CHANNEL:
        # email is a mode: only "immediate" writes an email of its own; the daily and
        # weekly digests carry the other modes' notices
        if not preference_store.any_stored(session, model):
            return set(user_ids) if settings.default_mode(t) == IMMEDIATE else set()
        modes = preference_store.modes_of(session, model, t, channel, user_ids)
        return {u for u in user_ids if settings.mode_of(t, modes.get(user_key(u))) == IMMEDIATE}
    default = settings.default(t, channel)
    if not preference_store.any_stored(session, model):
        return set(user_ids) if default else set()
    # keyed by user_key: callers may hold ids as "7" where the database says 7
    choices = preference_store.choices_of(session, model, t, channel, user_ids)
    return {u for u in user_ids if choices.get(user_key(u), default)}


def _channels(state: NoticeState) -> list[str]:
    """The channels users choose from: the app's senders but the internal ones."""
    return sorted(set(state.senders_by_name) - INTERNAL_CHANNELS)


class Preferences:
    """The preference API, ``notices.preferences``; needs an app context.

    ::

        notices.preferences.set(user.id, "Like", "email", False)
        notices.preferences.get(user.id)       # {"Like": {"email": False, ...}, ...}
        notices.preferences.set_digest(user.id, "weekly")
    """

    def __init__(self, models: PreferenceModels) -> None:
        #: the stored choices model (``notice_preference``)
        self.Preference = models.Preference
        #: the digest settings and lease model (``notice_digest``)
        self.DigestSetting = models.DigestSetting

    # --- what exists -----------------------------------------------------------------

    def channels(self) -> list[str]:
        """The current app's channels users choose from (sender names), sorted."""
        return _channels(state_of())

    def settable_channels(self) -> list[str]:
        """:meth:`channels` and "email": a digest-only app (no per-notice email sender)
        still lets users leave a type out of the digest."""
        return sorted(set(self.channels()) | {DIGEST_CHANNEL})

    def types(self) -> list[str]:
        """Every registered notice type value, sorted."""
        return [str(t) for t in NoticeType.known()]

    def is_required(self, notice_type: str) -> bool:
        """True when users cannot turn ``notice_type`` off."""
        return state_of().preference_settings.is_required(notice_type)

    def default(self, notice_type: str, channel: str) -> bool:
        """The configured default for a type and channel (on unless configured off)."""
        return state_of().preference_settings.default(notice_type, channel)

    # --- reading ---------------------------------------------------------------------

    def get(self, user_id: Any) -> dict[str, dict[str, bool]]:
        """``{notice_type: {channel: enabled}}`` for every type and channel, defaults
        filled in."""
        state = state_of()  # once, not per type and channel
        settings = state.preference_settings
        user_id = state.coerce_user_id(user_id)
        stored = preference_store.choices(state.db.session, self.Preference, user_id)
        channels = _channels(state)
        return {
            t: {
                c: True if settings.is_required(t) else stored.get((t, c), settings.default(t, c))
                for c in channels
            }
            for t in self.types()
        }

    def enabled(self, user_id: Any, notice_type: str, channel: str) -> bool:
        """Whether ``user_id`` receives ``notice_type`` on ``channel``."""
        user_id = state_of().coerce_user_id(user_id)
        return user_id in self.allowed(channel, notice_type, [user_id])

    def get_digest(self, user_id: Any) -> str:
        """The user's digest frequency: "off", "daily" or "weekly"."""
        state = state_of()
        value = preference_store.digest_frequency(
            self._session(), self.DigestSetting, state.coerce_user_id(user_id)
        )
        return str(value or state.preference_settings.digest_default)

    def email_modes(self, user_id: Any) -> dict[str, str]:
        """``{notice_type: mode}``: how each type reaches the user by email,
        "immediate", "daily", "weekly" or "off" (defaults filled in)."""
        state = state_of()
        settings = state.preference_settings
        stored = preference_store.channel_modes(
            state.db.session, self.Preference, state.coerce_user_id(user_id), DIGEST_CHANNEL
        )
        return {t: settings.mode_of(t, stored.get(t)) for t in self.types()}

    def allowed(self, channel: str, notice_type: str, user_ids: Sequence[Any]) -> set[Any]:
        """The users of ``user_ids`` who receive ``notice_type`` on ``channel`` (the
        current app's routing gate, :func:`allowed`)."""
        return allowed(state_of(), channel, notice_type, user_ids)

    # --- writing ---------------------------------------------------------------------

    def set(
        self, user_id: Any, notice_type: str, channel: str, enabled: bool, *, commit: bool = True
    ) -> None:
        """Turn ``notice_type`` on ``channel`` on or off for ``user_id``.

        :raise ValueError: unknown type or channel, or turning off a required type.
        """
        user_id = state_of().coerce_user_id(user_id)
        t = str(NoticeType(notice_type))
        if channel not in self.settable_channels():
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

    def set_email_mode(
        self, user_id: Any, notice_type: str, mode: str, *, commit: bool = True
    ) -> None:
        """Set how ``notice_type`` reaches ``user_id`` by email: "immediate" (its own
        email), "daily" or "weekly" (a line in that digest, no email of its own), or
        "off".

        :raise ValueError: unknown type or mode, or any but "immediate" for a required
            type.
        """
        user_id = state_of().coerce_user_id(user_id)
        t = str(NoticeType(notice_type))
        if mode not in EMAIL_MODES:
            raise ValueError(f"email mode must be one of {', '.join(EMAIL_MODES)}, got {mode!r}")
        if mode != IMMEDIATE and self.is_required(t):
            raise ValueError(f"{t} notices are required and always emailed at once")
        session = self._session()
        preference_store.set_choice(
            session,
            self.Preference,
            user_id,
            t,
            DIGEST_CHANNEL,
            mode != "off",
            now=utcnow(),
            mode=mode,
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
            session,
            self.DigestSetting,
            state_of().coerce_user_id(user_id),
            frequency,
            now=utcnow(),
        )
        if commit:
            session.commit()

    # --- quiet hours -----------------------------------------------------------------

    def get_quiet_hours(self, user_id: Any) -> dict[str, str] | None:
        """``{"timezone": "Europe/Berlin", "start": "22:00", "end": "07:00"}``, or None
        when the user has no quiet hours."""
        state = state_of()
        found = schedule_store.quiet_hours_of(
            self._session(), state.preference_models.QuietHours, [state.coerce_user_id(user_id)]
        )
        if not found:
            return None
        tz, start, end = next(iter(found.values()))
        return {"timezone": tz, "start": format_clock(start), "end": format_clock(end)}

    def set_quiet_hours(
        self, user_id: Any, timezone: str, start: str, end: str, *, commit: bool = True
    ) -> None:
        """Set the user's quiet hours: ``start`` and ``end`` as ``"HH:MM"`` local time
        in the IANA zone ``timezone``; ``end`` before ``start`` crosses midnight.
        Email and push deliveries due inside the window wait until it ends.

        :raise InvalidQuietHours: an unknown zone or a malformed time.
        """
        window = QuietWindow(timezone, parse_clock(start), parse_clock(end))
        state = state_of()
        session = self._session()
        schedule_store.set_quiet_hours(
            session,
            state.preference_models.QuietHours,
            state.coerce_user_id(user_id),
            window.timezone,
            window.start,
            window.end,
            now=utcnow(),
        )
        if commit:
            session.commit()

    def clear_quiet_hours(self, user_id: Any, *, commit: bool = True) -> None:
        """Remove the user's quiet hours."""
        state = state_of()
        session = self._session()
        schedule_store.clear_quiet_hours(
            session, state.preference_models.QuietHours, state.coerce_user_id(user_id)
        )
        if commit:
            session.commit()

    # --- helpers ---------------------------------------------------------------------

    def _session(self) -> Any:
        return state_of().db.session
