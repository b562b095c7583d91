"""What scheduling adds to a publish: checking ``deliver_at``/``delay``/
``unless_read``/``visible_at``, deciding each delivery's due time (quiet hours
included), writing the later ones unleased, and timing the near ones in this process.

A delivery due later is written ``Wait`` with ``next_attempt_at`` = its due time and
no lease (never born claimed): the sweeper claims it when due, like any due row. With
sync or thread dispatch a due time within ``NOTICE_SCHEDULE_TIMER`` seconds is also
timed in this process, so a short delay needs no sweeper; the row is in the database
either way, so a process that dies before its timer fires loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .. import store
from ..aftercommit import call_after_commit
from ..columns import utcnow
from ..fallback import SHARED
from ..store import schedule as schedule_store
from ..types import DeliveryStatus, NoticeType, user_key
from .quiet import QuietWindow

if TYPE_CHECKING:
    from ..state import NoticeState

logger = logging.getLogger("notice")


class TimedEvent(Protocol):
    """What scheduling reads of a publish: a :class:`notice.publish.NoticeEvent`
    (named by its shape, so that publish and this module do not import each other)."""

    @property
    def notice_type(self) -> NoticeType: ...
    @property
    def channels(self) -> frozenset[str] | None: ...
    @property
    def deliver_at(self) -> datetime | None: ...
    @property
    def delays(self) -> Mapping[str, datetime] | None: ...
    @property
    def unless_read(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Timing:
    """``notice_event``'s scheduling arguments, checked and made absolute."""

    deliver_at: datetime | None
    delays: Mapping[str, datetime] | None
    unless_read: frozenset[str]
    visible_at: datetime | None


def _when(name: str, value: datetime | timedelta, now: datetime) -> datetime:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"{name} must not be a negative timedelta")
        return now + value
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime or a timedelta")
    return value


def check_timing(
    state: NoticeState,
    notice_type: Any,
    deliver_at: datetime | timedelta | None,
    delay: Mapping[str, datetime | timedelta] | None,
    unless_read: bool | Iterable[str] | None,
    visible_at: datetime | timedelta | None,
) -> Timing:
    """Check the scheduling arguments, the type's configured defaults filling in what
    the call left out; raise ValueError/TypeError naming the wrong one."""
    now = utcnow()
    settings = state.schedule_settings
    configured = unless_read is None
    if deliver_at is None and delay is None:
        # the type's policy (NOTICE_DELAY_DEFAULTS), for the channels this app has
        defaults = settings.type_delays(str(notice_type))
        delay = {c: d for c, d in defaults.items() if c in state.senders_by_name} or None
    at = None if deliver_at is None else _when("deliver_at", deliver_at, now)
    delays: dict[str, datetime] | None = None
    if delay is not None:
        if not isinstance(delay, Mapping):
            raise TypeError('delay must map channels to delays, e.g. {"email": timedelta(...)}')
        unknown = set(delay) - set(state.senders_by_name)
        if unknown:
            raise ValueError(f"delay: unknown channel(s) {', '.join(sorted(map(str, unknown)))}")
        delays = {c: _when(f"delay[{c!r}]", v, now) for c, v in delay.items()}
    delayed = set(state.senders_by_name) if at is not None else set(delays or ())
    if configured:
        # NOTICE_UNLESS_READ_DEFAULTS: only where this publish has a delay
        read_channels = settings.type_unless_read(str(notice_type)) & frozenset(delayed)
    elif unless_read is True:
        if not delayed:
            raise ValueError("unless_read needs a delay (deliver_at= or delay=)")
        read_channels = frozenset(delayed)
    elif unless_read is False:
        read_channels = frozenset()
    else:
        assert unless_read is not None
        read_channels = frozenset([unless_read] if isinstance(unless_read, str) else unless_read)
        undelayed = read_channels - delayed
        if undelayed:
            raise ValueError(
                f"unless_read: channel(s) {', '.join(sorted(undelayed))} have no delay"
            )
    shown = None if visible_at is None else _when("visible_at", visible_at, now)
    if shown is not None and shown <= now:
        shown = None  # already due: an ordinary notice
    return Timing(at, delays, read_channels, shown)


@dataclass
class Scheduler:
    """Decides the due time of each delivery of one publish and writes the later ones."""

    state: NoticeState
    event: TimedEvent
    now: datetime
    #: the quiet hours model, when quiet hours may apply to this publish
    quiet_model: Any = None
    #: quiet windows of the current chunk's users who have one, by user key
    windows: dict[str, QuietWindow] = field(default_factory=dict)
    #: (due, unless_read) -> parallel columns (notice ids, channels, targets)
    groups: dict[tuple[datetime, bool], tuple[list[int], list[str], list[str]]] = field(
        default_factory=dict
    )

    @classmethod
    def for_event(
        cls, state: NoticeState, session: Any, event: TimedEvent, now: datetime
    ) -> Scheduler | None:
        """A scheduler, or None when every delivery of ``event`` goes out at once (no
        delay asked and no quiet hours that could apply: no query then)."""
        settings = state.schedule_settings
        channels = set(state.senders_by_name)
        if event.channels is not None:
            channels &= event.channels
        model = state.preference_models.QuietHours
        quiet = (
            model is not None
            and str(event.notice_type) not in settings.urgent_types
            and bool(channels & settings.quiet_channels)
            and schedule_store.any_quiet_hours(session, model)
        )
        if not quiet and event.deliver_at is None and not event.delays:
            return None
        return cls(state, event, now, quiet_model=model if quiet else None)

    def load(self, session: Any, user_ids: Iterable[Any]) -> None:
        """Read the quiet hours of the next chunk's users (one query)."""
        self.windows = {}
        if self.quiet_model is None:
            return
        found = schedule_store.quiet_hours_of(session, self.quiet_model, list(user_ids))
        for key, (tz, start, end) in found.items():
            try:
                self.windows[key] = QuietWindow(tz, start, end)
            except ValueError:  # a zone this host's tzdata lacks: no quiet hours
                logger.warning("quiet hours of user %s: unknown time zone %r", key, tz)

    def due(self, user_id: Any, channel: str, target: str) -> datetime | None:
        """When the delivery may go out, or None for at once."""
        event = self.event
        at = event.deliver_at
        if event.delays is not None:
            at = event.delays.get(channel, at)
        window = self.windows.get(user_key(user_id)) if self.windows else None
        if (
            window is not None
            and not target.startswith(SHARED)
            and self.state.schedule_settings.quiet_applies(channel, str(event.notice_type))
        ):
            at = window.release(at if at is not None and at > self.now else self.now)
        return at if at is not None and at > self.now else None

    def add(self, due: datetime, notice_id: int, channel: str, target: str) -> None:
        key = (due, channel in self.event.unless_read)
        ids, channels, targets = self.groups.setdefault(key, ([], [], []))
        ids.append(notice_id)
        channels.append(channel)
        targets.append(target)

    def write(self, session: Any, delivery_table: Any) -> list[tuple[datetime, list[int]]]:
        """Insert the later deliveries added since the last call, unleased, due at
        their time; return ``(due, ids)`` per due time."""
        out: list[tuple[datetime, list[int]]] = []
        for (due, unless_read), (ids, channels, targets) in sorted(
            self.groups.items(), key=lambda item: item[0][0]
        ):
            shared = {
                "status": DeliveryStatus.WAIT.value,
                "attempts": 0,
                "next_attempt_at": due,
                "unless_read": unless_read,
                "create_at": self.now,
                "update_at": self.now,
            }
            written = store.insert_delivery_columns(
                session, delivery_table, shared, ids, channels, targets
            )
            out.append((due, written))
        self.groups = {}
        return out


def schedule_near(
    session: Any, state: NoticeState, scheduled: list[tuple[datetime, list[int]]]
) -> None:
    """After commit, time the deliveries due within ``NOTICE_SCHEDULE_TIMER`` seconds
    on a dispatcher that sends in this process (sync, thread)."""
    dispatcher = state.dispatcher
    horizon = state.schedule_settings.timer
    if dispatcher is None or not dispatcher.sends_claimed or horizon <= 0:
        return
    limit = utcnow() + timedelta(seconds=horizon)
    for due, ids in scheduled:
        if due <= limit and ids:
            # keyed by the rows: a group's send timed again by each fold is one timer
            key = ("deliveries", tuple(sorted(ids)))
            call_after_commit(
                session,
                lambda due=due, ids=ids, key=key: dispatcher.submit_at(  # type: ignore[misc]
                    due, ids, key=key
                ),
                description=f"timing {len(ids)} scheduled deliveries (the sweeper sends them)",
            )


def schedule_visible(session: Any, state: NoticeState, visible_at: datetime) -> None:
    """After commit, time the live event of notices shown within
    ``NOTICE_SCHEDULE_TIMER`` seconds (sync, thread); later ones are the sweeper's."""
    dispatcher = state.dispatcher
    horizon = state.schedule_settings.timer
    if (
        dispatcher is None
        or not dispatcher.sends_claimed
        or state.publisher is None
        or horizon <= 0
        or visible_at > utcnow() + timedelta(seconds=horizon)
    ):
        return
    from ..sweeper import announce_visible

    def announce() -> None:
        with state.app.app_context():  # the engine is the app's
            announce_visible(state)

    call_after_commit(
        session,
        lambda: dispatcher.call_at(visible_at, announce),
        description="timing the live event of a scheduled notice (the sweeper sends it)",
    )
