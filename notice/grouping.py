"""Grouping: notices under one ``group_key`` for one user within a window fold into one
inbox item ("Ana and 3 others liked “Weekend photos”"), sent once per window.

The first notice under a key opens a group: a notice row with ``group_key``,
``group_count = 1``, its actor and ``group_until`` (now + window). Its deliveries are
written due at ``group_until`` and unleased, so nothing goes out before the window ends
and the sweeper sends the group once, as it reads it then (a sync/thread dispatcher
times a window ending within ``NOTICE_SCHEDULE_TIMER`` itself, claiming as the sweeper
does). A later notice under the key,
inside the window and before that send is claimed, folds into the row (count, actors,
subject, content; unread again) and writes no delivery: one live event updates the item.

A window that closes while a notice arrives loses nothing (see
:func:`notice.store.grouping.hold_pending`): the fold either holds the still-pending
deliveries, so the send waits for it and mails the folded group, or finds them claimed
and opens a new group, mailed at the end of its own window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .errors import ConfigurationError
from .references import ROLES
from .store import grouping as group_store
from .store.writes import insert_deliveries
from .types import DeliveryStatus, NoticeType, ReadStatus, SendStatus, user_key

#: a publisher that loses the insert of a new group to another one (same user and key)
#: folds into the winner's; this bounds those turns (each needs a group to close first)
MAX_TURNS = 5


@dataclass(frozen=True)
class Group:
    """A group as its subject is rendered from (``NOTICE_GROUP_SUBJECTS``)."""

    notice_type: str
    #: the newest notice's own subject
    subject: str
    #: notices in the group, this one included
    count: int
    #: distinct actors, newest first (at most ``NOTICE_GROUP_ACTORS``)
    actors: tuple[str, ...]

    @property
    def actor(self) -> str | None:
        """The newest actor."""
        return self.actors[0] if self.actors else None

    @property
    def others(self) -> int:
        """Notices in the group besides the newest."""
        return self.count - 1


Renderer = Callable[[Group], str]


def default_subject(group: Group) -> str:
    """ "Ana and 3 others liked “Weekend photos”" from the newest subject "Ana liked
    “Weekend photos”" when it starts with the newest actor; else the subject with
    "(and 3 others)"."""
    if group.count <= 1:
        return group.subject
    others = "1 other" if group.others == 1 else f"{group.others} others"
    actor = group.actor
    if actor and group.subject.startswith(actor):
        return f"{actor} and {others}{group.subject[len(actor) :]}"
    return f"{group.subject} (and {others})"


def render_subject(template: str | Renderer | None, group: Group) -> str:
    """The group's subject: ``template`` formatted with ``actor``, ``others``,
    ``count``, ``actors`` (comma-separated) and ``subject``, or called with the
    :class:`Group`; the default without one. Cut to the subject column's 255."""
    if group.count <= 1:
        return group.subject
    if template is None:
        text = default_subject(group)
    elif callable(template):
        text = str(template(group))
    else:
        text = template.format(
            actor=group.actor or "",
            others=group.others,
            count=group.count,
            actors=", ".join(group.actors),
            subject=group.subject,
        )
    return text[:255]


@dataclass(frozen=True)
class GroupSettings:
    """NOTICE_GROUP_WINDOWS, NOTICE_GROUP_SUBJECTS and NOTICE_GROUP_ACTORS."""

    windows: Mapping[str, timedelta]
    subjects: Mapping[str, str | Renderer]
    max_actors: int = 10

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> GroupSettings:
        return cls(
            windows={t: timedelta(seconds=s) for t, s in cfg["NOTICE_GROUP_WINDOWS"].items()},
            subjects=dict(cfg["NOTICE_GROUP_SUBJECTS"]),
            max_actors=int(cfg["NOTICE_GROUP_ACTORS"]),
        )

    def window(self, notice_type: str) -> timedelta | None:
        """The type's default window (then ``"*"``'s); None: none configured."""
        return self.windows.get(str(notice_type), self.windows.get("*"))

    def subject(self, group: Group) -> str:
        """The group's subject with the type's renderer."""
        return render_subject(self.subjects.get(group.notice_type), group)


def validate_grouping(cfg: Mapping[str, Any]) -> None:
    """Check the grouping keys; raise ConfigurationError naming the key."""
    windows = cfg["NOTICE_GROUP_WINDOWS"]
    if not isinstance(windows, dict) or not all(
        isinstance(t, str) and not isinstance(s, bool) and isinstance(s, (int, float)) and s > 0
        for t, s in windows.items()
    ):
        raise ConfigurationError(
            "NOTICE_GROUP_WINDOWS must map a notice type (or '*') to a positive number "
            f'of seconds, e.g. {{"Like": 600}}; got {windows!r}'
        )
    subjects = cfg["NOTICE_GROUP_SUBJECTS"]
    if not isinstance(subjects, dict) or not all(
        isinstance(t, str) and (isinstance(s, str) or callable(s)) for t, s in subjects.items()
    ):
        raise ConfigurationError(
            "NOTICE_GROUP_SUBJECTS must map a notice type to a format string such as "
            f"'{{actor}} and {{others}} others liked your post' or a callable; got {subjects!r}"
        )
    for t, s in subjects.items():
        if isinstance(s, str):
            try:
                s.format(actor="", others=1, count=2, actors="", subject="")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigurationError(
                    f"NOTICE_GROUP_SUBJECTS[{t!r}]: {exc!r}; the fields are actor, others, "
                    "count, actors and subject"
                ) from None
    actors = cfg["NOTICE_GROUP_ACTORS"]
    if isinstance(actors, bool) or not isinstance(actors, int) or actors <= 0:
        raise ConfigurationError(f"NOTICE_GROUP_ACTORS must be a positive number, got {actors!r}")
    for value in [*windows, *subjects]:
        if value != "*":
            try:
                NoticeType(value)
            except ValueError as exc:
                raise ConfigurationError(f"NOTICE_GROUP_WINDOWS/SUBJECTS: {exc}") from None


def write_grouped(
    session: Session,
    notice: sa.Table,
    delivery: sa.Table,
    settings: GroupSettings,
    event: Any,
    route: Callable[[Any], list[tuple[str, str]]],
    now: datetime,
) -> None:
    """The ``notification`` receiver's path for an event with a ``group_key``: per
    user, fold into the open group or open a new one (see the module docstring).

    :param event: the :class:`notice.publish.NoticeEvent`; what was written is recorded
        on its ``result``.
    :param route: ``route(user_id)``: the ``(channel, target)`` deliveries of a new
        group for that user.
    """
    assert event.group_key is not None and event.group_window is not None
    result = event.result
    # one order for every caller: two fan-outs over the same users lock their groups
    # in the same order, so they never wait on each other crosswise
    for user_id in sorted(dict.fromkeys(event.user_ids), key=user_key):
        for _ in range(MAX_TURNS):
            group = group_store.lock_group(session, notice, user_id, event.group_key)
            held = (
                group_store.hold_pending(session, delivery, group.id, now)
                if group is not None
                and group.group_until > now
                # an expired item is hidden: folding into it would hide the notice too
                and (group.expires_at is None or group.expires_at > now)
                else None
            )
            if group is not None and held is not None:
                _fold(session, notice, settings, event, group, now)
                result.existing_ids.append(group.id)
                result.folded_ids.append(group.id)
                if held:
                    # timed again: a timer firing while this fold held the rows claimed
                    # none of them (SKIP LOCKED); one timer per group and process
                    result.scheduled.append((group.group_until, held))
                break
            if group is not None:
                group_store.close_group(session, notice, group.id)
            notice_id = group_store.insert_group(
                session, notice, _first_row(event, user_id, now, settings.max_actors)
            )
            if notice_id is None:
                continue  # another publisher opened it first: fold into theirs
            routes = route(user_id)
            result.notice_ids.append(notice_id)
            if routes:
                until = now + event.group_window
                ids = insert_deliveries(
                    session,
                    delivery,
                    [
                        {
                            "notice_id": notice_id,
                            "channel": channel,
                            "target": target,
                            "status": DeliveryStatus.WAIT.value,
                            "attempts": 0,
                            # due when the window ends: the sweeper sends the group once
                            "next_attempt_at": until,
                            "create_at": now,
                            "update_at": now,
                        }
                        for channel, target in routes
                    ],
                )
                # a window ending within NOTICE_SCHEDULE_TIMER is timed in this process
                # (sync, thread dispatch) like any near scheduled delivery
                result.scheduled.append((until, ids))
            else:
                group_store.fold(session, notice, notice_id, {"send_status": SendStatus.SENT.value})
            break
        else:
            raise RuntimeError(f"group {event.group_key!r}: no turn won in {MAX_TURNS} tries")
    result.written = True


def _actor(event: Any) -> str | None:
    if event.actor_name is not None:
        return str(event.actor_name)
    return None if event.sender_id is None else str(event.sender_id)


def _about(event: Any) -> dict[str, Any]:
    """The event's category, actions and references as columns: a group's row carries
    its newest event's, as its content (a fold that dropped them left a grouped like
    without its actor, target and level)."""
    about: dict[str, Any] = {
        "category": event.category,
        "actions": None if event.actions is None else [dict(a) for a in event.actions],
    }
    for role in ROLES:
        ref = getattr(event, role)
        about[f"{role}_type"] = None if ref is None else ref.type
        about[f"{role}_id"] = None if ref is None else ref.id
    return about


def _first_row(event: Any, user_id: Any, now: datetime, max_actors: int) -> dict[str, Any]:
    assert event.group_window is not None
    actor = _actor(event)
    return {
        "user_id": user_id,
        "sender_id": event.sender_id,
        "subject": event.subject,
        "content": event.content,
        "notice_type": str(event.notice_type),
        "read_status": ReadStatus.UNREAD.value,
        "send_status": SendStatus.WAIT.value,
        "url": event.url,
        "data": event.data,
        "expires_at": event.expires_at,
        "create_at": now,
        "update_at": now,
        "group_key": event.group_key,
        "group_count": 1,
        "group_actors": [actor][:max_actors] if actor is not None else [],
        "group_until": now + event.group_window,
        **_about(event),
    }


def _fold(
    session: Session,
    notice: sa.Table,
    settings: GroupSettings,
    event: Any,
    group: Any,
    now: datetime,
) -> None:
    actor = _actor(event)
    actors = [a for a in (group.group_actors or []) if a != actor]
    if actor is not None:
        actors.insert(0, actor)
    actors = actors[: settings.max_actors]
    count = int(group.group_count or 1) + 1
    subject = settings.subject(Group(str(event.notice_type), event.subject, count, tuple(actors)))
    group_store.fold(
        session,
        notice,
        group.id,
        {
            "group_count": count,
            "group_actors": actors,
            "subject": subject,
            "content": event.content,
            "sender_id": event.sender_id,
            **_about(event),
            # back in the inbox as new: unread, unseen, out of the archive
            "read_status": ReadStatus.UNREAD.value,
            "read_at": None,
            "seen_at": None,
            "archived_at": None,
            "update_at": now,
        },
    )
