"""Running claimed deliveries: load, send through the right sender, record outcomes.

The after-commit dispatcher and the retry sweeper both come through
:func:`deliver`, so a delivery is sent the same way whoever picked it up.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import store
from .columns import utcnow
from .errors import PermanentError, SkipDelivery, TransientError
from .models import VIEW_COLUMNS, NoticeView
from .signals import notice_failed, notice_sent, send_observing
from .types import DeliveryStatus

if TYPE_CHECKING:
    from .state import NoticeState

logger = logging.getLogger("notice")

#: stored error text is cut to this many characters
MAX_ERROR = 1000


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
    #: not sent because our lease was running out, or sent but finished by someone else
    #: after it ran out (our result was dropped); either way the row is another's now
    lost_lease: int = 0

    def add(self, other: Report) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def deliver(
    state: NoticeState,
    *,
    ids: Sequence[int] | None = None,
    now: datetime | None = None,
    limit: int | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> Report:
    """Claim deliveries (``ids``, or whatever is due), send them, record the outcomes.

    Without ``ids``: one batch of ``limit`` rows when ``limit`` is given, otherwise
    batches of ``NOTICE_BATCH_SIZE`` until nothing due is left.

    Must run inside the app's context. Holds no database connection while senders run.
    """
    report = Report()
    engine = state.engine
    delivery_table = state.models.Delivery.__table__
    notice_table = state.models.Notice.__table__
    batch = limit or state.batch_size
    pending = list(ids) if ids is not None else None
    while True:
        now_ = now or utcnow()
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
            )
        else:
            token, claimed = store.claim(
                engine, delivery_table, now=now_, lease=state.lease, limit=batch, where=where
            )
        report.claimed += len(claimed)
        if claimed:
            outcomes, pairs = _send_all(state, claimed, now_)
            recorded = store.finish(
                engine, delivery_table, notice_table, token, outcomes, now=utcnow()
            )
            # not recorded (the lease was taken over) or not sent (it was running out)
            report.lost_lease += len(pairs) - len(recorded)
            _count(report, recorded)
            _announce(state, recorded, pairs)
        if pending is None:
            # with a limit: one batch of that size; without: drain what is due now
            if limit is not None or len(claimed) < batch:
                break
    return report


def deliver_in_app(state: NoticeState, ids: Sequence[int]) -> Report:
    """:func:`deliver` ``ids`` inside a fresh app context: what dispatchers run (after the
    caller's commit, or on a pool thread, or in a Celery worker), so senders and hooks
    get a ``db.session`` of their own, removed again at the end."""
    with state.app.app_context():
        report = deliver(state, ids=ids)
    logger.debug("delivered: %s", report.as_dict())
    return report


def _count(report: Report, recorded: Sequence[store.Outcome]) -> None:
    for o in recorded:
        if o.status is DeliveryStatus.SENT:
            report.sent += 1
        elif o.status is DeliveryStatus.ERROR:
            report.failed += 1
        elif o.status is DeliveryStatus.DEAD:
            report.gave_up += 1
        elif o.expired:
            report.expired += 1
        else:
            report.skipped += 1


def _load(state: NoticeState, ids: Sequence[int]) -> list[tuple[Any, NoticeView]]:
    """``(delivery, notice)`` pairs in delivery id order; the session is closed before
    sending.

    A delivery is a plain row (``id``, ``notice_id``, ``channel``, ``target``,
    ``attempts``) and each notice a :class:`NoticeView`, loaded once however many
    deliveries it has: building ORM objects (identity map, instance state) for every
    notice of a large fan-out took half of the delivery time.
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


def _send_all(
    state: NoticeState, ids: Sequence[int], now: datetime
) -> tuple[list[store.Outcome], dict[int, tuple[Any, Any]]]:
    """Send every claimed delivery, grouped per channel so senders can batch."""
    pairs_by_id = {d.id: (d, n) for d, n in _load(state, ids)}
    by_channel: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for delivery, notice in pairs_by_id.values():
        by_channel[delivery.channel].append((delivery, notice))
    outcomes: list[store.Outcome] = []
    # stop sending a little before our lease runs out: after it another worker may claim
    # the rest of the batch, and both would send. What is left stays claimed until the
    # lease expires, then the sweeper takes it.
    stop_at = max(now, utcnow()) + state.lease * 0.9
    for channel, pairs in by_channel.items():
        sender = state.senders_by_name.get(channel)
        if sender is None:
            err = TransientError(f"no sender named {channel!r} is registered")
            outcomes.extend(_failure(state, d, n, err, now) for d, n in pairs)
            continue
        opened = False
        try:
            sender.open()
            opened = True
        except Exception as exc:  # noqa: BLE001 - a sender's failure is recorded, not raised
            logger.exception("sender %r failed to open a batch", channel)
            outcomes.extend(_failure(state, d, n, exc, now) for d, n in pairs)
        if not opened:
            continue
        try:
            for delivery, notice in pairs:
                if utcnow() >= stop_at:
                    logger.warning(
                        "lease nearly over: leaving the rest of a %r batch to the sweeper "
                        "(NOTICE_CLAIM_TIMEOUT is short for this sender)",
                        channel,
                    )
                    break
                outcomes.append(_send_one(state, sender, delivery, notice, now))
        finally:
            try:
                sender.close()
            except Exception:  # noqa: BLE001
                logger.exception("sender %r failed to close its batch", channel)
    return outcomes, pairs_by_id


def _send_one(
    state: NoticeState, sender: Any, delivery: Any, notice: Any, now: datetime
) -> store.Outcome:
    # expiry against the send time, not the claim time: a long batch may cross it
    if notice.is_expired(max(now, utcnow())):
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
    except Exception as exc:  # noqa: BLE001 - recorded on the delivery and logged
        return _failure(state, delivery, notice, exc, now)
    return store.Outcome(delivery.id, notice.id, DeliveryStatus.SENT)


def _failure(
    state: NoticeState, delivery: Any, notice: Any, exc: BaseException, now: datetime
) -> store.Outcome:
    error = _describe(exc)
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
    state: NoticeState, outcomes: Sequence[store.Outcome], pairs: dict[int, tuple[Any, Any]]
) -> None:
    if not (notice_sent.receivers or notice_failed.receivers):
        return
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
