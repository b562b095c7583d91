"""Running claimed deliveries: load, send through the right sender, record outcomes.

The after-commit dispatcher and the retry sweeper both come through
:func:`deliver`, so a delivery is sent the same way whoever picked it up.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import fallback, store
from .claimed import ClaimedBatch
from .columns import utcnow
from .errors import PermanentError, SkipDelivery, TransientError
from .models import VIEW_COLUMNS, NoticeView
from .preferences import preferences
from .senders.base import Sender
from .sending import SendBatch
from .signals import notice_failed, notice_sent, send_observing
from .types import DeliveryStatus

if TYPE_CHECKING:
    from .state import NoticeState

logger = logging.getLogger("notice")

#: stored error text is cut to this many characters
MAX_ERROR = 1000

#: ``last_error`` of a delivery skipped because the user turned its type and channel off
#: after it was written (while it waited for a retry, say)
TURNED_OFF = "turned off by the user's preferences"
#: ``last_error`` of an ``unless_read`` delivery whose notice was read before it was due
READ_BEFORE_SEND = "read before send"

#: deliveries of notices written (and their preferences checked) less than this long
#: before the claim are not checked again: the after-commit dispatch of a new notice
#: would run the routing gate's query twice within milliseconds
RECHECK_AFTER = timedelta(seconds=1)


@dataclass
class Report:
    """Counts from one :func:`deliver` call (or one sweep pass)."""

    claimed: int = 0
    sent: int = 0
    #: failed, will be retried
    failed: int = 0
    #: failed for good (permanent error, or out of attempts)
    gave_up: int = 0
    expired: int = 0
    skipped: int = 0
    #: not sent because our lease was running out or the worker is stopping (given back,
    #: due again at once), or sent but finished by someone else after our lease ran out
    #: (our result was dropped)
    lost_lease: int = 0

    def add(self, other: Report) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def deliver_claimed(
    state: NoticeState, batch: ClaimedBatch, *, stop: threading.Event | None = None
) -> Report:
    """Send a born-claimed batch from memory and finish it. Must run inside the app's
    context.

    It is sent in parts of ``NOTICE_BATCH_SIZE`` (each screened, then sent as one
    :class:`~notice.sending.SendBatch`), and finished in groups of consecutive parts:
    a group's finish, one transaction, runs once it holds :data:`FINISH_PARTS` parts,
    or once :data:`FINISH_AFTER` seconds passed since its first send began, or after
    the last part. Sends that go fast (an in-process sender) so share one finish
    transaction among up to :data:`FINISH_PARTS` parts; slower ones are finished part by
    part as before. What a crash between a send and its finish leaves to be sent again
    once the lease runs out is one group: at most :data:`FINISH_PARTS` parts, and no
    part begun more than :data:`FINISH_AFTER` seconds after the group's first.

    The lease is guarded as for a single part: every send starts only while the lease,
    counted from the write, still covers it and its time-out (see
    :class:`~notice.sending.SendBatch`'s ``stop_at``), so a group's finish comes no
    later than the finish of its last part alone would. What the lease no longer covers
    (a caller that held its transaction open for most of it, a part that comes up late
    in a large fan-out) is given back unsent, due at once for the sweeper.
    """
    report = Report(claimed=len(batch))
    token = batch.token
    if batch.give_back:
        store.finish(
            state.engine,
            state.models.Delivery.__table__,
            state.models.Notice.__table__,
            token,
            [],
            now=utcnow(),
            released=batch.ids,
        )
        report.lost_lease = len(batch)
        return report
    parts = batch.split(state.batch_size)
    # the group: parts sent since the last finish, from parts[first]
    first = 0
    outcomes: list[store.Outcome] = []
    unsent: list[int] = []
    pairs: list[tuple[Any, NoticeView]] = []
    opened = 0.0

    def finish_group(last: int) -> None:
        nonlocal first, outcomes, unsent, pairs
        recorded = _record(
            state, report, token, outcomes, unsent, pairs, _complete(parts, first, last)
        )
        for o in recorded:
            if o.send_status is not None:
                batch.settled[o.notice_id] = o.send_status
        done = pairs
        first, outcomes, unsent, pairs = last + 1, [], [], []
        _announce(state, recorded, done)

    for i, part in enumerate(parts):
        if stop is not None and stop.is_set():
            if pairs:
                finish_group(i - 1)
            rest = [d for p in parts[i:] for d in p.ids]
            _give_back(state, token, rest)
            report.lost_lease += len(rest)
            break
        part_pairs = [pair for segment in part.segments for pair in segment.pairs()]
        if not pairs:
            opened = time.monotonic()
        try:
            sent, sending = _send(state, token, part_pairs, utcnow(), batch.started, stop)
        except BaseException:
            # this part was given back unsent; what the group sent before it is recorded
            if pairs:
                try:
                    finish_group(i - 1)
                except Exception:  # noqa: BLE001 - the first error is the one to raise
                    logger.exception("recording the outcomes of a born-claimed group failed")
            raise
        outcomes += sent
        unsent += sending.unsent
        pairs += part_pairs
        if (
            i + 1 == len(parts)
            or sending.interrupted is not None
            or i + 1 - first >= FINISH_PARTS
            or time.monotonic() - opened >= FINISH_AFTER
        ):
            finish_group(i)
        if sending.interrupted is not None:
            raise sending.interrupted
        sending.wait_closed()
    return report


#: parts of ``NOTICE_BATCH_SIZE`` deliveries a born-claimed send finishes together at
#: most (:func:`deliver_claimed`): a finish transaction per 200 memory sends was a
#: third of a 10,000-recipient sync fan-out's time (bench/emit.py)
FINISH_PARTS = 10

#: seconds after which a born-claimed send finishes the parts it sent, however few:
#: a crash leaves at most this much sending to be done again
FINISH_AFTER = 0.1


def _complete(parts: Sequence[ClaimedBatch], first: int, last: int | None = None) -> set[int]:
    """The notices of ``parts[first:last + 1]`` (``last``: ``first``) whose every
    delivery is in them (none of a :attr:`~notice.claimed.ClaimedSegment.partial`
    segment).

    A notice's deliveries were written together and sit side by side in one segment, so
    only a notice the split cut through, the first or the last of the parts, can miss
    some; found by comparing with the neighbouring parts' ends (no per-notice count
    over the whole batch, which would grow with a fan-out's recipients).
    """
    if last is None:
        last = first
    chosen = parts[first : last + 1]
    # a notice with a delivery scheduled for later is not complete: marked Sent by an
    # all-Sent finish, it would read Sent while its email still waits
    out = {
        n
        for part in chosen
        for segment in part.segments
        if not segment.partial
        for n in segment.notice_ids
    }
    head, tail = chosen[0].segments[0].notice_ids[0], chosen[-1].segments[-1].notice_ids[-1]
    if first > 0 and parts[first - 1].segments[-1].notice_ids[-1] == head:
        out.discard(head)
    if last + 1 < len(parts) and parts[last + 1].segments[0].notice_ids[0] == tail:
        out.discard(tail)
    return out


def deliver(
    state: NoticeState,
    *,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    where: sa.ColumnElement[bool] | None = None,
    stop: threading.Event | None = None,
) -> Report:
    """Claim deliveries (``ids``, or whatever is due), send them, record the outcomes.

    Without ``ids``: one batch of ``limit`` rows when ``limit`` is given, otherwise
    batches of ``NOTICE_BATCH_SIZE`` until nothing due is left.

    Must run inside the app's context. Holds no database connection while senders run.
    Each call into a sender is bounded by ``NOTICE_SEND_TIMEOUT`` (:mod:`notice.sending`).

    :param stop: once set, no new send starts: the sends in flight end (or time out),
        the outcomes are recorded, the rest of the batch is given back and no further
        batch is claimed (a worker's SIGTERM).
    """
    report = Report()
    engine = state.engine
    delivery_table = state.models.Delivery.__table__
    batch = limit or state.batch_size
    pending = list(ids) if ids is not None else None
    while stop is None or not stop.is_set():
        now_ = now or utcnow()
        # the lease budget runs on the monotonic clock from before the claim: ``now``
        # may be a test's future time
        started = time.monotonic()
        # never claim a delivery whose abandoned send may still be running here
        skip = state.hung_sends.delivery_ids()
        part: Sequence[int] | None = None
        if pending is not None:
            if not pending:
                break
            part, pending = pending[:batch], pending[batch:]
        token, claimed = store.claim(
            engine,
            delivery_table,
            now=now_,
            lease=state.lease,
            limit=batch,
            ids=part,
            where=where,
            skip=skip,
        )
        report.claimed += len(claimed)
        progressed, gave_back = (
            _run_claimed(state, report, token, claimed, now_, started, stop)
            if claimed
            else (False, False)
        )
        if pending is None:
            # with a limit: one batch of that size; without: drain what is due now,
            # including what a batch gave back, as long as batches get anything done
            if limit is not None or not progressed or (len(claimed) < batch and not gave_back):
                break
    return report


def deliver_in_app(state: NoticeState, work: Sequence[int] | ClaimedBatch) -> Report:
    """:func:`deliver` ``work`` (delivery ids to claim, or a born-claimed batch for
    :func:`deliver_claimed`) inside a fresh app context: what dispatchers run (after the
    caller's commit, or on a pool thread, or in a Celery worker), so senders and hooks
    get a ``db.session`` of their own, removed again at the end."""
    with state.app.app_context():
        if isinstance(work, ClaimedBatch):
            report = deliver_claimed(state, work)
        else:
            report = deliver(state, ids=work)
    if logger.isEnabledFor(logging.DEBUG):  # as_dict() costs more than a small send
        logger.debug("delivered: %s", report.as_dict())
    return report


def _count(report: Report, recorded: Sequence[store.Outcome]) -> None:
    # counted in C: a fan-out's finish records thousands, nearly all Sent
    by_status = Counter(map(_STATUS, recorded))
    report.sent += by_status[DeliveryStatus.SENT]
    report.failed += by_status[DeliveryStatus.ERROR]
    report.gave_up += by_status[DeliveryStatus.DEAD]
    rest = len(recorded) - sum(by_status[s] for s in _COUNTED)
    if rest:
        expired = sum(1 for o in recorded if o.expired and o.status not in _COUNTED)
        report.expired += expired
        report.skipped += rest - expired


_STATUS = attrgetter("status")
#: the statuses :func:`_count` counts by status; the others are expired or skipped
_COUNTED = (DeliveryStatus.SENT, DeliveryStatus.ERROR, DeliveryStatus.DEAD)


def _load(state: NoticeState, ids: Sequence[int]) -> list[tuple[Any, NoticeView]]:
    """``(delivery, notice)`` pairs in delivery id order; the session is closed before
    sending.

    A delivery is a plain row (``id``, ``notice_id``, ``channel``, ``target``,
    ``attempts``, ``lease_expiries``) and each notice a :class:`NoticeView`, loaded once
    however many deliveries it has: building ORM objects (identity map, instance state)
    for every notice of a large fan-out took half of the delivery time.
    """
    rows, notice_rows = store.load_claimed(
        state.engine,
        state.models.Delivery.__table__,
        state.models.Notice.__table__,
        ids,
        VIEW_COLUMNS,
    )
    notices = {values[0]: NoticeView(*values) for values in notice_rows}
    return [(row, notices[row.notice_id]) for row in rows if row.notice_id in notices]


def _run_claimed(
    state: NoticeState,
    report: Report,
    token: str,
    ids: Sequence[int],
    now: datetime,
    started: float,
    stop: threading.Event | None,
) -> tuple[bool, bool]:
    """Load a batch just claimed, then :func:`_run_batch` it."""
    try:
        pairs = _load(state, ids)
    except BaseException:
        # nothing was sent: hand the rows back, so a database hiccup here is not
        # mistaken for a worker that died mid-send (a lost lease)
        _give_back(state, token, ids)
        raise
    progressed, gave_back, _ = _run_batch(state, report, token, pairs, now, started, stop)
    return progressed, gave_back


def _run_batch(
    state: NoticeState,
    report: Report,
    token: str,
    pairs: Sequence[tuple[Any, NoticeView]],
    now: datetime,
    started: float,
    stop: threading.Event | None,
) -> tuple[bool, bool, list[store.Outcome]]:
    """Send one claimed batch and record it in ``report``, in one finish transaction.
    Return whether any delivery got an outcome, whether any was given back unsent, and
    the outcomes recorded. Raises, after recording, what interrupted the main thread.
    """
    outcomes, sending = _send(state, token, pairs, now, started, stop)
    recorded = _record(state, report, token, outcomes, sending.unsent, pairs)
    if sending.interrupted is not None:
        raise sending.interrupted
    sending.wait_closed()
    _announce(state, recorded, pairs)
    return bool(outcomes), bool(sending.unsent), recorded


def _send(
    state: NoticeState,
    token: str,
    pairs: Sequence[tuple[Any, NoticeView]],
    now: datetime,
    started: float,
    stop: threading.Event | None,
) -> tuple[list[store.Outcome], SendBatch]:
    """Screen and send claimed ``pairs``; the outcomes (the ones decided before any
    send first) and the :class:`SendBatch` that sent them (its ``unsent``,
    ``interrupted``, ``wait_closed``). Nothing is recorded yet: see :func:`_record`.
    When the screening raises, nothing was sent: the rows are given back."""
    try:
        decided = _screen(state, pairs, now)
    except BaseException:
        _give_back(state, token, [d.id for d, _ in pairs])  # nothing was sent
        raise
    outcomes = list(decided.values())
    shares: dict[str, tuple[Sender, list[tuple[Any, Any]]]] = {}
    only = _only_channel(pairs) if not decided else None
    if only is not None and only in state.senders_by_name:
        # every delivery on one registered channel, none decided (a fan-out's part):
        # one share, with no step per delivery
        shares[only] = (state.senders_by_name[only], list(pairs))
    for delivery, notice in () if shares else pairs:
        if delivery.id in decided:
            continue
        sender = state.senders_by_name.get(delivery.channel)
        if sender is None:
            err = TransientError(f"no sender named {delivery.channel!r} is registered")
            outcomes.append(_failure(state, delivery, notice, err, now))
            continue
        shares.setdefault(delivery.channel, (sender, []))[1].append((delivery, notice))
    settings = state.settings
    lease = state.lease.total_seconds()
    sending = SendBatch(
        state.app,
        timeout=settings.send_timeout,
        # the last send may start when it can still time out well inside the lease: after
        # the lease another worker may claim the rest of the batch, and both would send
        stop_at=started + (lease - settings.send_timeout) * 0.9,
        stop=stop,
        hung=state.hung_sends,
        # positional: a keyword bound by partial is a dict merged on every call
        send_one=functools.partial(_send_one, state, now),
        fail=lambda d, n, exc, error: _failure(state, d, n, exc, now, error=error),
    )
    if shares:
        sending.run(shares)
    outcomes.extend(sending.outcomes)
    return outcomes, sending


def _record(
    state: NoticeState,
    report: Report,
    token: str,
    outcomes: Sequence[store.Outcome],
    unsent: Sequence[int],
    pairs: Sequence[tuple[Any, NoticeView]],
    complete: Collection[int] = (),
) -> list[store.Outcome]:
    """Finish what :func:`_send` sent (``unsent``: given back), in one transaction, and
    count it in ``report``; the outcomes recorded.

    :param complete: notices whose every delivery is in ``pairs`` (see
        :func:`notice.store.claims.finish`).
    """
    recorded = store.finish(
        state.engine,
        state.models.Delivery.__table__,
        state.models.Notice.__table__,
        token,
        outcomes,
        now=utcnow(),
        released=unsent,
        follow_ups=_follow_ups(state, outcomes, pairs),
        complete=complete,
    )
    # given back (the lease was running out, or stopping), or finished by someone else
    # after our lease ran out (our result was dropped)
    report.lost_lease += len(unsent) + len(outcomes) - len(recorded)
    _count(report, recorded)
    return recorded


def _follow_ups(
    state: NoticeState, outcomes: Sequence[store.Outcome], sent: Sequence[tuple[Any, Any]]
) -> dict[int, list[tuple[str, str]]]:
    """The next channel's deliveries of the fallback chain of each delivery of ``sent``
    (``(delivery, notice)`` pairs) that failed for good (written by the finish, in its
    transaction). Shared targets do not fall back: they are no user's."""
    out: dict[int, list[tuple[str, str]]] = {}
    dead = [o for o in outcomes if o.status is DeliveryStatus.DEAD]
    if not dead:
        return out
    pairs = {d.id: (d, n) for d, n in sent}
    config = state.app.config
    for o in dead:
        if o.delivery_id not in pairs:
            continue
        delivery, notice = pairs[o.delivery_id]
        chain = fallback.chain_for(config, notice.notice_type)
        if not chain or delivery.target.startswith(fallback.SHARED):
            continue
        try:
            with state.app.app_context():  # the target loader may query the app's db
                nxt = fallback.follow_up(
                    state.senders_by_name,
                    chain,
                    delivery.channel,
                    notice.user_id,
                    functools.partial(_user_allowed, state, notice),
                )
        except Exception:  # noqa: BLE001 - a broken loader must not lose the outcomes
            logger.exception("fallback after delivery %s failed", delivery.id)
            continue
        if nxt:
            out[o.delivery_id] = nxt
    return out


def _user_allowed(state: NoticeState, notice: Any, channel: str) -> bool:
    """The user of ``notice`` receives its type on ``channel`` (their preferences)."""
    return notice.user_id in preferences.allowed(
        state, channel, notice.notice_type, [notice.user_id]
    )


def _screen(
    state: NoticeState, pairs: Sequence[tuple[Any, Any]], now: datetime
) -> dict[int, store.Outcome]:
    """Outcomes decided before any send: escalations whose notice was read, poison
    rows, and deliveries the user's preferences refuse now.

    The preferences were checked when the rows were written, but a retry may come much
    later: a user who unsubscribed from a Comment email while it waited out an SMTP 451
    must not get it. One query per channel and notice type of the batch (the routing
    gate's), in a session of its own that is closed before any send; none for notices
    written less than :data:`RECHECK_AFTER` before ``now``.
    """
    decided: dict[int, store.Outcome] = {}
    most = state.settings.max_lease_expiries
    fresh = now - RECHECK_AFTER
    groups: dict[tuple[str, str], list[tuple[Any, Any]]] = defaultdict(list)
    for delivery, notice in pairs:
        if getattr(delivery, "unless_read", False) and notice.is_read:
            # escalation: read while the delivery waited. Decided under the claim, on
            # the notice as loaded after it: a cancel or a read racing the send either
            # comes first (skipped) or finds the row leased (sent), never both
            decided[delivery.id] = store.Outcome(
                delivery.id, notice.id, DeliveryStatus.SKIPPED, READ_BEFORE_SEND
            )
        elif delivery.lease_expiries >= most:
            error = f"lease expired {delivery.lease_expiries} times without an outcome: poison row"
            logger.error("delivery %s (%s): %s", delivery.id, delivery.channel, error)
            decided[delivery.id] = store.Outcome(delivery.id, notice.id, DeliveryStatus.DEAD, error)
        elif notice.create_at <= fresh:
            groups[(delivery.channel, notice.notice_type)].append((delivery, notice))
    if not groups:
        return decided
    # a fresh app context: a session of our own, removed (its connection returned) on
    # exit; the caller's session may hold a transaction of its own
    with state.app.app_context():
        for (channel, notice_type), group in groups.items():
            allowed = preferences.allowed(
                state, channel, notice_type, [n.user_id for _, n in group]
            )
            for delivery, notice in group:
                if notice.user_id not in allowed:
                    decided[delivery.id] = store.Outcome(
                        delivery.id, notice.id, DeliveryStatus.SKIPPED, TURNED_OFF
                    )
    return decided


def _give_back(state: NoticeState, token: str, ids: Sequence[int]) -> None:
    try:
        store.finish(
            state.engine,
            state.models.Delivery.__table__,
            state.models.Notice.__table__,
            token,
            [],
            now=utcnow(),
            released=ids,
        )
    except Exception:  # noqa: BLE001 - best effort: the lease frees them otherwise
        logger.debug("giving claimed deliveries back failed", exc_info=True)


def _only_channel(pairs: Sequence[tuple[Any, Any]]) -> str | None:
    """The channel of every delivery of ``pairs``, if they share one."""
    channels = set(map(_CHANNEL, map(_FIRST, pairs)))
    return channels.pop() if len(channels) == 1 else None


_FIRST, _CHANNEL = itemgetter(0), attrgetter("channel")


def _send_one(
    state: NoticeState, now: datetime, sender: Any, delivery: Any, notice: Any
) -> store.Outcome:
    # expiry against the send time, not the claim time: a long batch may cross it (the
    # clock read only for a notice that can expire: most never do)
    if notice.expires_at is not None and notice.is_expired(max(now, utcnow())):
        return store.Outcome(
            delivery.id,
            notice.id,
            DeliveryStatus.SKIPPED,
            "expired before it was sent",
            expired=True,
        )
    try:
        sender.send_to(notice, delivery.target)
    except SkipDelivery as exc:
        return store.Outcome(delivery.id, notice.id, DeliveryStatus.SKIPPED, _describe(exc))
    except BaseException as exc:  # noqa: BLE001 - recorded on the delivery and logged
        # BaseException too: SystemExit, KeyboardInterrupt, CancelledError or gevent's
        # Timeout from a sender would end its send thread and lose the outcome
        return _failure(state, delivery, notice, exc, now)
    return store.Outcome(delivery.id, notice.id, DeliveryStatus.SENT)


def _failure(
    state: NoticeState,
    delivery: Any,
    notice: Any,
    exc: BaseException,
    now: datetime,
    *,
    error: str | None = None,
) -> store.Outcome:
    """The outcome of a failed attempt: Dead on a permanent error or out of attempts,
    otherwise Error with the next attempt per the retry policy. ``error`` replaces the
    exception's text in ``last_error``."""
    error = error or _describe(exc)
    if isinstance(exc, PermanentError):
        logger.warning("delivery %s (%s) failed for good: %s", delivery.id, delivery.channel, error)
        return store.Outcome(delivery.id, notice.id, DeliveryStatus.DEAD, error)
    if not isinstance(exc, TransientError):
        logger.error("sender %r raised on delivery %s", delivery.channel, delivery.id, exc_info=exc)
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    when = state.retry_policy.next_attempt(delivery.attempts, now, retry_after=retry_after)
    if when is None:
        error = f"gave up after {delivery.attempts} attempts: {error}"
        return store.Outcome(delivery.id, notice.id, DeliveryStatus.DEAD, error[:MAX_ERROR])
    return store.Outcome(delivery.id, notice.id, DeliveryStatus.ERROR, error, when)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR]


def _announce(
    state: NoticeState, outcomes: Sequence[store.Outcome], sent: Sequence[tuple[Any, Any]]
) -> None:
    if not (notice_sent.receivers or notice_failed.receivers):
        return
    pairs = {d.id: (d, n) for d, n in sent}
    for o in outcomes:
        delivery, notice = pairs[o.delivery_id]
        if o.status is DeliveryStatus.SENT:
            send_observing(
                notice_sent,
                state.app,
                notice=notice,
                channel=delivery.channel,
                target=delivery.target,
            )
        elif o.status in (DeliveryStatus.ERROR, DeliveryStatus.DEAD):
            send_observing(
                notice_failed,
                state.app,
                notice=notice,
                channel=delivery.channel,
                target=delivery.target,
                error=o.error,
                final=o.status is DeliveryStatus.DEAD,
            )
