"""The publisher: :func:`notice_event` sends the ``notification`` signal, and the
library's receiver turns the event into Notice and delivery rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

from flask import current_app
from sqlalchemy.orm import class_mapper, make_transient_to_detached

from . import fallback, references, store, throttle
from .aftercommit import EARLY, call_after_commit
from .claimed import ClaimedBatch, ClaimedSegment
from .columns import utcnow
from .dispatch import defer_until_commit
from .errors import NoRecipientError
from .fallback import SHARED
from .grouping import write_grouped
from .models import NoticeView
from .references import CATEGORIES, Ref
from .schedule.publishing import (
    Scheduler,
    check_timing,
    schedule_near,
    schedule_visible,
)
from .signals import notice_created, notification, send_observing
from .state import NoticeState, state_of
from .store.claims import process_token
from .types import DeliveryStatus, NoticeType, ReadStatus, SendStatus, user_key, user_keys

MAX_SUBJECT = 255
MAX_URL = 2048
MAX_DEDUPE_KEY = 255

#: recipients routed and written per step of a fan-out (one ``INSERT ... SELECT`` of
#: notices and one of deliveries each): bounds its peak memory, while a step stays
#: large enough that a 10,000-recipient fan-out is still a single step
STREAM_CHUNK = store.writes.FAN_OUT_CHUNK


@dataclass
class PublishResult:
    """What the library's receiver wrote for one event."""

    notice_ids: list[int]
    #: ids of notices that already existed under the event's dedupe_key
    existing_ids: list[int]
    #: the new deliveries, dispatched after commit
    delivery_ids: list[int] = field(default_factory=list)
    #: set by the receiver: it ran (an event with no new rows is still written)
    written: bool = False
    #: the new deliveries written already leased to this process, with what their send
    #: needs (None: the dispatcher claims them itself)
    claimed: ClaimedBatch | None = None
    #: the first new notice as written (what a single-user ``notice_event`` returns)
    first: NoticeView | None = None
    #: deliveries written for later, unleased: ``(due time, ids)`` per due time; the
    #: sweeper sends them when due (a sync/thread dispatcher times the near ones)
    scheduled: list[tuple[datetime, list[int]]] = field(default_factory=list)
    #: ids of groups a notice folded into (also in ``existing_ids``): updated, not new
    folded_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class NoticeEvent:
    """One call of :func:`notice_event`, validated; what the ``notification`` signal
    carries to its receivers."""

    user_ids: tuple[Any, ...]
    #: True when one user id (not an iterable) was given
    single: bool
    notice_type: NoticeType
    subject: str
    content: str
    url: str | None
    sender_id: Any
    data: Any
    expires_at: datetime | None
    dedupe_key: str | None
    channels: frozenset[str] | None
    commit: bool
    #: explicit targets per channel and user key, replacing the sender's own choice
    #: (``Sender.targets``) for that channel: ``{"webpush": {"7": ("12",)}}``
    targets: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None
    #: a dedupe_key holds only this long: an older notice under it no longer dedupes
    dedupe_for: timedelta | None = None
    #: every delivery is due then (None: at once)
    deliver_at: datetime | None = None
    #: per channel, when its deliveries are due (overrides ``deliver_at``)
    delays: Mapping[str, datetime] | None = None
    #: the channels whose (delayed) deliveries end Skipped if the notice is read first
    unless_read: frozenset[str] = frozenset()
    #: the notice is hidden from lists, counts and the stream until then (None: at once)
    visible_at: datetime | None = None
    #: what the notice is about (:mod:`notice.references`); None: nothing
    actor: Ref | None = None
    target: Ref | None = None
    action_object: Ref | None = None
    #: info, success, warning or error
    category: str = CATEGORIES[0]
    #: checked action buttons (``label``, ``url``, ``method``); None: none
    actions: tuple[Mapping[str, str], ...] | None = None
    #: fold into the user's open group under this key (:mod:`notice.grouping`)
    group_key: str | None = None
    #: the group's window (the argument, else the type's NOTICE_GROUP_WINDOWS)
    group_window: timedelta | None = None
    #: who acted, as the grouped subject names them (default: ``str(sender_id)``)
    actor_name: str | None = None
    #: ``commit=True`` with nothing else in the session's transaction and no other
    #: receiver writing in it: a write that is one statement may commit itself
    #: (:func:`notice.store.insert_one`)
    autocommit: bool = False
    #: what the library's receiver wrote; filled in while the signal is sent
    result: PublishResult = field(default_factory=lambda: PublishResult([], []), compare=False)


class _Draft:
    """A notice before it is written; what filters see at routing time."""

    __slots__ = (
        "user_id",
        "notice_type",
        "subject",
        "content",
        "url",
        "sender_id",
        "data",
        "expires_at",
        "dedupe_key",
        "category",
        "actor",
        "target",
        "action_object",
    )

    def __init__(self, event: NoticeEvent, user_id: Any) -> None:
        self.user_id = user_id
        self.notice_type = event.notice_type
        self.subject = event.subject
        self.content = event.content
        self.url = event.url
        self.sender_id = event.sender_id
        self.data = event.data
        self.expires_at = event.expires_at
        self.dedupe_key = event.dedupe_key
        self.category = event.category
        self.actor = event.actor
        self.target = event.target
        self.action_object = event.action_object


def notice_event(
    user_id: Any = None,
    notice_type: NoticeType | str = NoticeType.SYSTEM,
    *,
    subject: str,
    content: str,
    url: str | None = None,
    sender_id: Any = None,
    data: Any = None,
    expires_at: datetime | timedelta | None = None,
    dedupe_key: str | None = None,
    channels: Iterable[str] | None = None,
    targets: Mapping[str, Mapping[Any, Iterable[Any]]] | None = None,
    commit: bool = True,
    dedupe_for: timedelta | None = None,
    deliver_at: datetime | timedelta | None = None,
    delay: Mapping[str, datetime | timedelta] | None = None,
    unless_read: bool | Iterable[str] | None = None,
    visible_at: datetime | timedelta | None = None,
    actor: Any = None,
    target: Any = None,
    action_object: Any = None,
    category: str | None = None,
    actions: Iterable[Mapping[str, str]] | None = None,
    group_key: str | None = None,
    group_window: timedelta | None = None,
    actor_name: str | None = None,
) -> Any:
    """Publish a notice to one user or many. Needs an app context.

    :param user_id: a user id, an iterable of ids (one bulk insert for all), or None for
        flask-login's ``current_user``.
    :param notice_type: a :class:`NoticeType` or its stored value.
    :param expires_at: an aware datetime, or a timedelta from now; expired notices are
        never sent and drop out of counts and lists.
    :param dedupe_key: unique per user: publishing the same key again returns the
        existing notice and sends nothing. An expired notice never dedupes.
    :param dedupe_for: a positive timedelta: the key dedupes only notices created
        within this window before now; after it the same key notifies again.
    :param group_key: fold into the user's open group under this key: one inbox item
        with a count and the actors, sent once when its window ends (see
        :mod:`notice.grouping`); not with ``dedupe_key``.
    :param group_window: a positive timedelta from the group's first notice (default:
        the type's ``NOTICE_GROUP_WINDOWS``).
    :param actor_name: the name the grouped subject shows for this notice's actor
        (default: ``str(sender_id)``).
    :param channels: sender names to use for this call (default: every sender whose
        filter matches).
    :param targets: per channel, the targets to use for each user instead of the
        sender's own choice, e.g. ``{"webpush": {user_id: [subscription_id]}}`` (a user
        missing from the mapping gets no delivery on that channel).
    :param actor: who did it; ``target``: what it was done to; ``action_object``: with
        what (a comment on a post: the commenter, the post, the comment). Each a model
        instance (type: its table name, id: its primary key) or a ``(type, id)`` pair;
        ``@notices.reference_resolver`` gives their names and links when shown.
    :param category: ``"info"`` (default), ``"success"``, ``"warning"`` or ``"error"``.
    :param actions: up to NOTICE_MAX_ACTIONS buttons, each
        ``{"label": "Reply", "url": "/posts/7#reply", "method": "GET"}`` (method GET or
        POST, default GET); a url is a path on this site or on an origin of
        NOTICE_LINK_ORIGINS / NOTICE_BASE_URL.
    :param commit: commit ``db.session`` before returning (default). With False the rows
        join the caller's transaction and are delivered only after the caller commits;
        a rollback means no row and no send.
    :param deliver_at: an aware datetime, or a timedelta from now: every delivery waits
        until then (the sweeper sends it when due).
    :param delay: per channel, an aware datetime or a timedelta from now, e.g.
        ``{"email": timedelta(minutes=15)}``; overrides ``deliver_at`` for that channel.
        Without either, the type's ``NOTICE_DELAY_DEFAULTS`` apply.
    :param unless_read: True (every delayed channel) or channel names: a delayed
        delivery ends Skipped ("read before send") if the notice is read by then.
        None (default): the type's ``NOTICE_UNLESS_READ_DEFAULTS``; False: none.
    :param visible_at: an aware datetime, or a timedelta from now: the notice stays out
        of lists, counts and the live stream until then (default: at once).
    :return: for one user, the Notice (the existing one on a dedupe hit); for an
        iterable, the list of new notice ids.
    :raise InvalidNotice: a bad reference, category or action.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    state = state_of(app)
    session = state.db.session
    event = build_event(
        state,
        user_id,
        notice_type,
        subject=subject,
        content=content,
        url=url,
        sender_id=sender_id,
        data=data,
        expires_at=expires_at,
        dedupe_key=dedupe_key,
        channels=channels,
        targets=targets,
        commit=commit,
        dedupe_for=dedupe_for,
        deliver_at=deliver_at,
        delay=delay,
        unless_read=unless_read,
        visible_at=visible_at,
        actor=actor,
        target=target,
        action_object=action_object,
        category=category,
        actions=actions,
        group_key=group_key,
        group_window=group_window,
        actor_name=actor_name,
        autocommit=commit and _alone_in(app, state, session),
    )
    _publish(app, state, session, event)
    if commit:
        session.commit()
    result = event.result
    if not event.single:
        return result.notice_ids
    if result.first is not None and commit:
        return _as_model(session, state.models.Notice, result, visible_at=event.visible_at)
    # commit=False: the caller's transaction may still roll back (taking the id back on
    # SQLite), so the notice comes from the session, as any row of that transaction
    ids = result.notice_ids or result.existing_ids
    return session.get(state.models.Notice, ids[0]) if ids else None


def _as_model(
    session: Any, notice_model: Any, result: PublishResult, *, visible_at: datetime | None = None
) -> Any:
    """The ORM ``Notice`` of the notice just written, built from the values written and
    put in ``session`` as if loaded (reading it back was a round trip per emit); its
    ``send_status`` is the one a synchronous send recorded, if it ran."""
    view = result.first
    assert view is not None
    current = session()  # the scoped session's own Session: no proxy per call below
    mapper = class_mapper(notice_model)  # configured: the instance below needs it
    if mapper.identity_key_from_primary_key((view.id,)) in current.identity_map:
        # an object of a rolled-back transaction under a reused id (SQLite): reload
        return current.get(notice_model, view.id)
    values = {name: getattr(view, name) for name in _VIEW_FIELDS}
    if result.claimed is not None:
        values["send_status"] = result.claimed.settled.get(view.id, view.send_status)
    values["visible_at"] = visible_at
    # the values go straight into the instance's __dict__: the mapped __init__ fires an
    # attribute event per column (a twelfth of a write-only emit's Python calls), and
    # make_transient_to_detached commits the dict as loaded state in any case
    notice = mapper.class_manager.new_instance()
    notice.__dict__.update(values)
    make_transient_to_detached(notice)
    # a flush of this session must not write it again; merge would SELECT it
    current.add(notice)
    return notice


#: the columns a NoticeView carries, all of which the returned Notice takes
_VIEW_FIELDS = tuple(NoticeView.__dataclass_fields__)


def _publish(app: Any, state: NoticeState, session: Any, event: NoticeEvent) -> None:
    """Send ``notification`` and, once every receiver returned, schedule the delivery.

    Every receiver, the library's writer among them, runs in the caller's transaction.
    When one raises, the event is undone before its exception reaches the caller: with
    ``commit=True`` the transaction is rolled back; with ``commit=False`` the caller's
    transaction goes on without this event's rows (deleted again, not a SAVEPOINT:
    pysqlite's SAVEPOINT outside an explicit BEGIN commits on release). Nothing was
    scheduled yet, so nothing is sent.
    """
    try:
        notification.send(app, event=event)
        if not event.result.written:
            raise RuntimeError("the notice handler did not run; was notices.init_app(app) called?")
    except BaseException:
        if event.commit:
            session.rollback()
        elif event.result.notice_ids:
            store.delete_notices(
                session,
                state.models.Notice.__table__,
                state.models.Delivery.__table__,
                event.result.notice_ids,
            )
        raise
    notice_ids = event.result.notice_ids
    assert state.dispatcher is not None
    claimed = event.result.claimed
    defer_until_commit(
        session, state.dispatcher, claimed if claimed is not None else event.result.delivery_ids
    )
    if event.result.scheduled:
        schedule_near(session, state, event.result.scheduled)
    publisher = state.publisher
    # a fold is one live event too: the item's new count and subject replace the old
    live = notice_ids + event.result.folded_ids
    if event.visible_at is not None:
        # hidden for now: the sweeper publishes them when their time comes
        schedule_visible(session, state, event.visible_at)
    elif publisher is not None and live:
        engine = state.engine
        call_after_commit(
            session,
            lambda: publisher.submit(engine, live),
            priority=EARLY,
            description="publishing new notices to the live stream",
        )
    if notice_ids:
        send_observing(notice_created, app, notice_ids=notice_ids, event=event)


def _alone_in(app: Any, state: NoticeState, session: Any) -> bool:
    """This event would be alone in ``session``'s transaction (PostgreSQL): none begun,
    nothing pending, no receiver of ``notification`` or ``notice_created`` but ours that
    could write in it. Then ``commit=True`` may let a one-statement write commit itself
    (:attr:`NoticeEvent.autocommit`). The rollback :func:`_publish` does when a receiver
    raises then has nothing to undo: ours is the only one, and after its statement it
    runs no code that raises short of an interrupt, which would leave the notice written
    and its born-claimed deliveries to the sweeper once their lease runs out."""
    current = session()  # the scoped session's own Session
    return (
        state.engine.dialect.name == "postgresql"
        and _untouched(current)
        and not (current.new or current.dirty or current.deleted)
        and not notice_created.receivers
        and all(r is on_notification for r in notification.receivers_for(app))
    )


def _untouched(session: Any) -> bool:
    """No statement ran in ``session``'s transaction yet: none begun, or one begun
    without a connection (``add()`` begins one; the previous emit's returned Notice)."""
    tx = session.get_transaction()
    # (SessionTransaction keeps its connections there; absent, assume it has some)
    return tx is None or not getattr(tx, "_connections", True)


def _current_user_id() -> Any:
    from flask_login import current_user

    user: Any = current_user
    if user is not None and getattr(user, "is_authenticated", False):
        return user.get_id()
    raise NoRecipientError(
        "notice_event() needs user_id when no user is logged in (flask-login's current_user)"
    )


def check_content_size(content: str, limit: int) -> None:
    """Raise ValueError when ``content`` is over ``limit`` UTF-8 bytes (NOTICE_MAX_CONTENT)."""
    # a character is 1-4 bytes: most texts are decided without encoding them, and a
    # huge one is refused before it is copied
    if len(content) * 4 <= limit:
        return
    size = len(content) if len(content) > limit else len(content.encode("utf-8", "replace"))
    if size > limit:
        raise ValueError(
            f"content is {size}+ bytes (UTF-8); the limit is {limit} bytes (NOTICE_MAX_CONTENT)"
        )


def check_data_size(data: Any, limit: int) -> None:
    """Raise ValueError when ``data`` is not JSON-serialisable or its compact JSON
    encoding is over ``limit`` UTF-8 bytes (NOTICE_MAX_DATA)."""
    try:
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"data must be JSON-serialisable: {exc}") from exc
    size = len(encoded.encode("utf-8", "replace"))
    if size > limit:
        raise ValueError(
            f"data is {size} bytes as JSON (UTF-8); the limit is {limit} bytes (NOTICE_MAX_DATA)"
        )


def build_event(
    state: NoticeState,
    user_id: Any,
    notice_type: NoticeType | str,
    *,
    subject: str,
    content: str,
    url: str | None,
    sender_id: Any,
    data: Any,
    expires_at: datetime | timedelta | None,
    dedupe_key: str | None,
    channels: Iterable[str] | None,
    commit: bool,
    targets: Mapping[str, Mapping[Any, Iterable[Any]]] | None = None,
    dedupe_for: timedelta | None = None,
    deliver_at: datetime | timedelta | None = None,
    delay: Mapping[str, datetime | timedelta] | None = None,
    unless_read: bool | Iterable[str] | None = None,
    visible_at: datetime | timedelta | None = None,
    actor: Any = None,
    target: Any = None,
    action_object: Any = None,
    category: str | None = None,
    actions: Iterable[Mapping[str, str]] | None = None,
    group_key: str | None = None,
    group_window: timedelta | None = None,
    actor_name: str | None = None,
    autocommit: bool = False,
) -> NoticeEvent:
    """Validate ``notice_event``'s arguments; raise ValueError/TypeError naming the one
    that is wrong."""
    if user_id is None:
        user_ids: tuple[Any, ...] = (state.coerce_user_id(_current_user_id()),)
        single = True
    elif isinstance(user_id, (str, bytes, int)) or not isinstance(user_id, Iterable):
        user_ids, single = (state.coerce_user_id(user_id),), True
    else:
        user_ids, single = state.coerce_user_id.many(user_id), False
        if any(u is None for u in user_ids):
            raise ValueError("user_id contains None")
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError("subject must be a non-empty string")
    if len(subject) > MAX_SUBJECT:
        raise ValueError(f"subject is {len(subject)} characters; the limit is {MAX_SUBJECT}")
    if not isinstance(content, str):
        raise TypeError(f"content must be a string, got {type(content).__name__}")
    check_content_size(content, state.settings.max_content)
    if url is not None and (not isinstance(url, str) or len(url) > MAX_URL):
        raise ValueError(f"url must be a string of at most {MAX_URL} characters")
    if dedupe_key is not None and (
        not isinstance(dedupe_key, str) or not 0 < len(dedupe_key) <= MAX_DEDUPE_KEY
    ):
        raise ValueError(f"dedupe_key must be a string of 1-{MAX_DEDUPE_KEY} characters")
    if dedupe_for is not None and (
        not isinstance(dedupe_for, timedelta) or dedupe_for <= timedelta(0)
    ):
        raise ValueError("dedupe_for must be a positive timedelta")
    if dedupe_for is not None and dedupe_key is None:
        raise ValueError("dedupe_for needs a dedupe_key")
    if group_key is not None or group_window is not None:
        group_window = _check_group(state, notice_type, dedupe_key, group_key, group_window)
    if actor_name is not None and (
        not isinstance(actor_name, str) or not 0 < len(actor_name) <= MAX_SUBJECT
    ):
        raise ValueError(f"actor_name must be a string of 1-{MAX_SUBJECT} characters")
    if data is not None:
        check_data_size(data, state.settings.max_data)
    if isinstance(expires_at, timedelta):
        expires_at = utcnow() + expires_at
    elif expires_at is not None and (
        not isinstance(expires_at, datetime) or expires_at.tzinfo is None
    ):
        raise ValueError("expires_at must be a timezone-aware datetime or a timedelta")
    wanted: frozenset[str] | None = None
    if channels is not None:
        wanted = frozenset([channels] if isinstance(channels, str) else channels)
        unknown = wanted - set(state.senders_by_name)
        if unknown:
            raise ValueError(
                f"unknown channel(s) {', '.join(sorted(unknown))}; this app has: "
                f"{', '.join(sorted(state.senders_by_name)) or 'no senders'}"
            )
    for name, sender in state.senders_by_name.items():
        if wanted is None or name in wanted:
            sender.validate_data(data)
    chosen: dict[str, dict[str, tuple[str, ...]]] | None = None
    if targets is not None:
        strangers = set(targets) - set(state.senders_by_name)
        if strangers:
            raise ValueError(f"targets: unknown channel(s) {', '.join(sorted(strangers))}")
        chosen = {
            channel: {
                user_key(state.coerce_user_id(u)): tuple(str(t) for t in ts)
                for u, ts in per_user.items()
            }
            for channel, per_user in targets.items()
        }
    timing = check_timing(state, notice_type, deliver_at, delay, unless_read, visible_at)
    checked_actions = references.actions(
        actions, state.settings.max_actions, state.settings.link_origins
    )
    return NoticeEvent(
        deliver_at=timing.deliver_at,
        delays=timing.delays,
        unless_read=timing.unless_read,
        visible_at=timing.visible_at,
        actor=references.reference("actor", actor),
        target=references.reference("target", target),
        action_object=references.reference("action_object", action_object),
        category=references.category(category),
        actions=None if checked_actions is None else tuple(checked_actions),
        targets=chosen,
        user_ids=user_ids,
        single=single,
        notice_type=NoticeType(notice_type),
        subject=subject,
        content=content,
        url=url,
        sender_id=sender_id,
        data=data,
        expires_at=expires_at,
        dedupe_key=dedupe_key,
        channels=wanted,
        commit=commit,
        dedupe_for=dedupe_for,
        group_key=group_key,
        group_window=group_window,
        actor_name=actor_name,
        autocommit=autocommit,
    )


def _check_group(
    state: NoticeState,
    notice_type: NoticeType | str,
    dedupe_key: str | None,
    group_key: str | None,
    group_window: timedelta | None,
) -> timedelta:
    """Validate the grouping arguments; the window to use."""
    if group_key is None:
        raise ValueError("group_window needs a group_key")
    if not isinstance(group_key, str) or not 0 < len(group_key) <= MAX_DEDUPE_KEY:
        raise ValueError(f"group_key must be a string of 1-{MAX_DEDUPE_KEY} characters")
    if dedupe_key is not None:
        raise ValueError("group_key and dedupe_key exclude each other")
    if group_window is None:
        group_window = state.group_settings.window(str(NoticeType(notice_type)))
        if group_window is None:
            raise ValueError(
                "group_key needs group_window= or a NOTICE_GROUP_WINDOWS entry for "
                f"{NoticeType(notice_type)}"
            )
    if not isinstance(group_window, timedelta) or group_window <= timedelta(0):
        raise ValueError("group_window must be a positive timedelta")
    return group_window


def _write_throttled(
    state: NoticeState,
    session: Any,
    written: list[tuple[int, Any]],
    held: dict[str, list[tuple[str, str]]],
    now: datetime,
) -> None:
    """Write the deliveries :func:`notice.throttle.hold_back` took out, already
    Skipped: the inbox and the delivery list show why nothing went out."""
    reason = state.throttle_settings.reason
    rows = [
        {
            "notice_id": notice_id,
            "channel": channel,
            "target": target,
            "status": DeliveryStatus.SKIPPED.value,
            "attempts": 0,
            "last_error": reason,
            "next_attempt_at": now,
            "create_at": now,
            "update_at": now,
        }
        for notice_id, u in written
        for channel, target in held.get(user_key(u), ())
    ]
    store.insert_deliveries(session, state.models.Delivery.__table__, rows)


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def _delivery_columns(
    written: list[tuple[int, Any]], routes: Mapping[str, list[tuple[str, str]]]
) -> tuple[list[int], list[Any], list[str], list[str]]:
    """The notice ids, users, channels and targets of the deliveries of ``written``
    (``(notice id, user)`` pairs) per their ``routes`` (by user key), in order: by
    ``map``, ``repeat`` and ``chain`` in C, with no Python step per delivery."""
    per_user = list(map(routes.__getitem__, user_keys(map(_SECOND, written))))
    counts = list(map(len, per_user))
    flat = list(chain.from_iterable(per_user))
    return (
        list(chain.from_iterable(map(repeat, map(_FIRST, written), counts))),
        list(chain.from_iterable(map(repeat, map(_SECOND, written), counts))),
        list(map(_FIRST, flat)),
        list(map(_SECOND, flat)),
    )


def route(
    state: NoticeState, event: NoticeEvent, user_ids: tuple[Any, ...], *, first: bool = True
) -> dict[Any, list[tuple[str, str]]]:
    """Decide, per user, which ``(channel, target)`` deliveries the event needs.

    ``user_ids`` are distinct. ``first``: they begin the event (its first chunk), so
    the event's shared routes (:mod:`notice.fallback`) are attached to the first of
    them.

    Users with the same deliveries may share one list (a fan-out where every route
    takes everyone: one list, not one per recipient): replace a user's list, never
    change it in place.
    """
    keys = dict(zip(user_ids, user_keys(user_ids), strict=True))
    # the pairs of the routes that took every user with one target each, while no
    # route took only some: then every user's list is this one
    common: list[tuple[str, str]] = []
    routes: dict[Any, list[tuple[str, str]]] | None = None
    for r in state.routes:
        channel = r.sender.name
        if event.channels is not None and channel not in event.channels:
            continue
        when = r.when
        users = list(user_ids) if when is None else [u for u in user_ids if when(_Draft(event, u))]
        for gate in state.gates:
            if not users:
                break
            allowed = gate(channel, event.notice_type, users)
            users = [u for u in users if u in allowed]
        if not users:
            continue
        chosen = None if event.targets is None else event.targets.get(channel)
        targets = r.sender.targets(users) if chosen is None else None
        if chosen is None and targets is None and routes is None and len(users) == len(keys):
            common.append((channel, ""))
            continue
        if routes is None:
            routes = {k: list(common) for k in keys.values()}
        if chosen is not None:
            for u in users:
                routes[keys[u]].extend((channel, t) for t in chosen.get(keys[u], ()))
            continue
        if targets is None:
            # one delivery per user: the same (immutable) pair for all of them
            pair = (channel, "")
            for u in users:
                routes[keys[u]].append(pair)
            continue
        for u in users:
            for target in targets.get(u, ()):
                routes[keys[u]].append((channel, str(target)))
    if routes is None:
        routes = dict.fromkeys(keys.values(), common)
    config = state.app.config
    chain = fallback.chain_for(config, event.notice_type)
    if chain:
        for key, pairs in routes.items():
            routes[key] = fallback.first_of_chain(pairs, chain)
    if first and user_ids:
        for channel, names in fallback.shared_for(config, event.notice_type).items():
            if channel in state.senders_by_name and (
                event.channels is None or channel in event.channels
            ):
                key = keys[user_ids[0]]
                routes[key] = [*routes[key], *((channel, SHARED + n) for n in names)]
    return routes


def on_notification(app: Any, *, event: NoticeEvent, **_: Any) -> None:
    """The library's receiver of ``notification`` (connected with ``sender=app``)."""
    write(state_of(app), event)


def write(state: NoticeState, event: NoticeEvent) -> PublishResult:
    """The library's ``notification`` receiver: write the event's rows in
    ``db.session`` and record them on ``event.result`` (dispatched after commit).

    Recipients are routed and written :data:`STREAM_CHUNK` at a time, so a fan-out's
    peak memory does not grow with its recipients beyond one chunk: what is kept across
    chunks is the new ids and, for a born-claimed send, a few columns per delivery.
    """
    if event.group_key is not None:
        write_grouped(
            state.db.session,
            state.models.Notice.__table__,
            state.models.Delivery.__table__,
            state.group_settings,
            event,
            lambda u: route(state, event, (u,))[user_key(u)],
            utcnow(),
        )
        return event.result
    session = state.db.session
    Notice, Delivery = state.models.Notice, state.models.Delivery
    dedupe = event.dedupe_key is not None
    # one notice per user and key: a repeated id in a deduplicated fan-out is one notice;
    # and one order for every caller: two callers racing on the same key with
    # overlapping users in different orders would otherwise wait on each other's
    # unique-index entries and deadlock (PostgreSQL)
    user_ids = (
        tuple(sorted(dict.fromkeys(event.user_ids), key=user_key)) if dedupe else event.user_ids
    )
    now = utcnow()
    # the values every notice of the event shares; only user_id and send_status vary
    shared = {
        "sender_id": event.sender_id,
        "subject": event.subject,
        "content": event.content,
        "notice_type": str(event.notice_type),
        "read_status": ReadStatus.UNREAD.value,
        "url": event.url,
        "data": event.data,
        "dedupe_key": event.dedupe_key,
        "expires_at": event.expires_at,
        "read_at": None,
        "emailed_at": None,
        "create_at": now,
        "update_at": now,
        "category": event.category,
        "actions": None if event.actions is None else [dict(a) for a in event.actions],
    }
    for role in references.ROLES:
        ref = getattr(event, role)
        shared[f"{role}_type"] = None if ref is None else ref.type
        shared[f"{role}_id"] = None if ref is None else ref.id
    # what the send and the caller see of the notices: one JSON copy of ``data``, so a
    # caller changing its dict after the call (a thread sends later) changes nothing sent
    seen = dict(shared)
    if event.data is not None:
        seen["data"] = json.loads(json.dumps(event.data))
    if event.visible_at is not None:
        # written, not seen: senders and the returned view keep their shape
        shared["visible_at"] = event.visible_at
    # None: every delivery at once (no delay asked, no quiet hours could apply)
    scheduler = Scheduler.for_event(state, session, event, now)
    dispatcher = state.dispatcher
    born = dispatcher is not None and dispatcher.sends_claimed
    delivery_shared: dict[str, Any] = {
        "status": DeliveryStatus.WAIT.value,
        "create_at": now,
        "update_at": now,
    }
    segment: ClaimedSegment | None = None
    if born:
        # born claimed: leased to this process in the same INSERT, so the send after
        # commit needs no claim; if we die first, the lease runs out and the sweeper
        # takes them (attempts counts this first try, as a claim would)
        token = process_token()
        started = time.monotonic()
        segment = ClaimedSegment(seen)
        delivery_shared.update(
            attempts=1,
            next_attempt_at=now,
            claimed_until=now + state.lease,
            claim_token=token,
        )
    else:
        # a new delivery is the dispatcher's for a grace period before the sweeper may
        # take it
        first_try = now if state.dispatch_mode == "none" else now + state.sweep_grace
        delivery_shared.update(attempts=0, next_attempt_at=first_try)
    result = event.result
    wait, sent = SendStatus.WAIT.value, SendStatus.SENT.value
    for start in range(0, len(user_ids), STREAM_CHUNK):
        part = user_ids[start : start + STREAM_CHUNK]
        routes = route(state, event, tuple(dict.fromkeys(part)), first=start == 0)
        # over NOTICE_THROTTLE: written Skipped below, never sent
        held = (
            throttle.hold_back(
                state.db.session,
                state.models.Notice.__table__,
                state.models.Delivery.__table__,
                state.throttle_settings,
                str(event.notice_type),
                tuple(dict.fromkeys(part)),
                routes,
                now,
            )
            if state.throttle_settings.limits
            else {}
        )
        if dedupe:
            # an expired notice never dedupes: its key is freed for the new one
            assert event.dedupe_key is not None
            # (and, with dedupe_for, one created before the window)
            store.release_dedupe_key(
                session,
                Notice.__table__,
                list(part),
                event.dedupe_key,
                now,
                created_before=None if event.dedupe_for is None else now - event.dedupe_for,
            )
        statuses = [wait if r else sent for r in map(routes.__getitem__, user_keys(part))]
        one: list[int] | None = None
        if len(part) == 1 and not dedupe and scheduler is None:
            # one recipient: the notice and its deliveries in one statement where the
            # database allows (store.insert_one); not when some deliveries are due
            # later: the scheduler writes those, unleased
            notice_id, one = store.insert_one(
                session,
                Notice.__table__,
                Delivery.__table__,
                {**shared, "user_id": part[0], "send_status": statuses[0]},
                delivery_shared,
                routes[user_key(part[0])],
                # not when throttled rows follow: they belong in the same transaction
                autocommit=event.autocommit and not held and _untouched(session()),
            )
            written = [(notice_id, part[0])]
        else:
            written = store.insert_notice_columns(
                session, Notice.__table__, shared, list(part), statuses, dedupe=dedupe
            )
        if dedupe and len(written) < len(part):
            new_users = {user_key(u) for _, u in written}
            missing = [u for u in part if user_key(u) not in new_users]
            assert event.dedupe_key is not None
            result.existing_ids.extend(
                store.deduplicated_ids(session, Notice.__table__, missing, event.dedupe_key)
            )
        if event.single and written:
            notice_id, u = written[0]
            result.first = NoticeView(id=notice_id, user_id=u, send_status=statuses[0], **seen)
        d_notice: list[int] = []
        d_user: list[Any] = []
        d_channel: list[str] = []
        d_target: list[str] = []
        result.notice_ids.extend([notice_id for notice_id, _ in written])
        if scheduler is None:
            # every delivery at once: the columns built in C (a fan-out's costliest
            # Python loop was a step per delivery here)
            d_notice, d_user, d_channel, d_target = _delivery_columns(written, routes)
        else:
            scheduler.load(session, [u for _, u in written])
            for notice_id, u in written:
                for channel, target in routes[user_key(u)]:
                    due = scheduler.due(u, channel, target)
                    if due is not None:
                        scheduler.add(due, notice_id, channel, target)
                        continue
                    d_notice.append(notice_id)
                    d_user.append(u)
                    d_channel.append(channel)
                    d_target.append(target)
        delivery_ids = (
            one
            if one is not None
            else store.insert_delivery_columns(
                session, Delivery.__table__, delivery_shared, d_notice, d_channel, d_target
            )
        )
        if held:
            _write_throttled(state, session, written, held, now)
        result.delivery_ids.extend(delivery_ids)
        if scheduler is not None:
            later = scheduler.write(session, Delivery.__table__)
            result.scheduled.extend(later)
            if later and segment is not None:
                segment.partial = True
        if segment is not None:
            segment.delivery_ids.extend(delivery_ids)
            segment.notice_ids.extend(d_notice)
            segment.user_ids.extend(d_user)
            segment.channels.extend(d_channel)
            segment.targets.extend(d_target)
    if segment is not None and len(segment):
        result.claimed = ClaimedBatch(token, started, [segment])
    result.written = True
    return result
