"""Operator queries behind ``flask notice``: re-queue failed deliveries, stats, purge,
``send-test``'s deliveries.

Each write runs in short transactions over bounded chunks, so a large table is never
locked for long and an interrupted run leaves consistent rows behind (every chunk is
committed whole or not at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..types import PENDING_STATES, DeliveryStatus, ReadStatus
from .claims import due_condition
from .common import begin_write, cached, in_list, lock_ids

#: failed states an operator may re-queue
FAILED_STATES = (DeliveryStatus.ERROR.value, DeliveryStatus.DEAD.value)

#: ``(label, upper bound)`` of the pending-age buckets in :func:`stats`
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("<1m", timedelta(minutes=1)),
    ("1m-1h", timedelta(hours=1)),
    ("1h-1d", timedelta(days=1)),
    (">=1d", None),
)


# --- retry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryFilter:
    """Which failed deliveries to re-queue; empty fields match everything.

    :param ids: delivery ids.
    :param types: notice types.
    :param channels: sender names.
    :param users: recipients' user ids.
    :param since: only deliveries that failed (were last updated) at or after this.
    :param statuses: ``Error``, ``Dead`` or both.
    """

    ids: tuple[int, ...] = ()
    types: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    users: tuple[Any, ...] = ()
    since: datetime | None = None
    statuses: tuple[str, ...] = FAILED_STATES


def _requeueable(delivery: sa.Table, statuses: Sequence[str], now: datetime) -> Any:
    c = delivery.c
    # a row under a live lease is being retried right now; its worker owns the result
    return sa.and_(
        c.status.in_(statuses), sa.or_(c.claimed_until.is_(None), c.claimed_until <= now)
    )


def find_failed(
    engine: Engine, delivery: sa.Table, notice: sa.Table, flt: RetryFilter, *, now: datetime
) -> list[Any]:
    """The failed deliveries matching ``flt``, by id: rows of ``id, notice_id, user_id,
    notice_type, channel, target, status, attempts, last_error, update_at``."""
    d, n = delivery.c, notice.c
    stmt = (
        sa.select(
            d.id,
            d.notice_id,
            n.user_id,
            n.notice_type,
            d.channel,
            d.target,
            d.status,
            d.attempts,
            d.last_error,
            d.update_at,
        )
        .join(notice, n.id == d.notice_id)
        .where(_requeueable(delivery, flt.statuses, now))
        .order_by(d.id)
    )
    params: dict[str, Any] = {}
    if flt.ids:
        stmt = stmt.where(in_list(d.id, "ids", engine.dialect.name))
        params["ids"] = list(flt.ids)
    if flt.types:
        stmt = stmt.where(n.notice_type.in_(flt.types))
    if flt.channels:
        stmt = stmt.where(d.channel.in_(flt.channels))
    if flt.users:
        stmt = stmt.where(n.user_id.in_(flt.users))
    if flt.since is not None:
        stmt = stmt.where(d.update_at >= flt.since)
    with engine.connect() as conn:
        return list(conn.execute(stmt, params))


def requeue(
    engine: Engine,
    delivery: sa.Table,
    ids: Sequence[int],
    *,
    now: datetime,
    statuses: Sequence[str] = FAILED_STATES,
) -> int:
    """Make failed deliveries ``ids`` due now with a fresh attempt budget; return how
    many changed.

    They become ``Error`` with ``attempts`` and ``lease_expiries`` 0 and
    ``next_attempt_at`` ``now``, keeping ``last_error`` until the next attempt replaces
    it. The state is checked again in the update, so a row sent or claimed since it was
    listed is left alone.
    """
    dialect = engine.dialect.name

    def build() -> Any:
        c = delivery.c
        now_ = sa.bindparam("now", type_=c.update_at.type)
        return (
            sa.update(delivery)
            .where(
                in_list(c.id, "ids", dialect),
                c.status.in_(sa.bindparam("statuses", expanding=True)),
                # a row under a live lease is being retried right now; its worker owns
                # the result
                sa.or_(c.claimed_until.is_(None), c.claimed_until <= now_),
            )
            .values(
                status=DeliveryStatus.ERROR.value,
                attempts=0,
                # a poison row gets its full budget of lost leases again
                lease_expiries=0,
                next_attempt_at=now_,
                claimed_until=None,
                claim_token=None,
                update_at=now_,
            )
        )

    # the ids as one array parameter (in_list): one statement however many there are
    stmt = cached(delivery, "requeue", dialect, build)
    with engine.connect() as conn:
        # the same write-lock-first transaction the claims use, so SQLite never fails to
        # upgrade a read lock while a sweeper writes
        begin_write(conn)
        result = conn.execute(stmt, {"ids": list(ids), "statuses": list(statuses), "now": now})
        changed = int(result.rowcount)
        conn.commit()
    return changed


# --- stats ---------------------------------------------------------------------------


def stats(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    *,
    now: datetime,
    max_lease_expiries: int = 3,
) -> dict[str, Any]:
    """Counts for operators: deliveries by status, by channel and status, pending
    deliveries by age, the oldest pending one, poison rows (Dead after
    ``max_lease_expiries`` lost leases) and notice totals. JSON-ready."""
    d, n = delivery.c, notice.c
    pending = d.status.in_(PENDING_STATES)
    age_case = sa.case(
        *[(d.create_at > now - bound, label) for label, bound in AGE_BUCKETS if bound is not None],
        else_=AGE_BUCKETS[-1][0],
    )
    with engine.connect() as conn:
        by_channel: dict[str, dict[str, int]] = {}
        by_status: dict[str, int] = {s.value: 0 for s in DeliveryStatus}
        for channel, status, count in conn.execute(
            sa.select(d.channel, d.status, sa.func.count()).group_by(d.channel, d.status)
        ):
            by_channel.setdefault(channel, {})[status] = int(count)
            by_status[status] = by_status.get(status, 0) + int(count)
        ages = {label: 0 for label, _ in AGE_BUCKETS}
        age_col = age_case.label("age")
        for label, count in conn.execute(
            sa.select(age_col, sa.func.count()).where(pending).group_by(age_col)
        ):
            ages[label] = int(count)
        oldest = conn.execute(
            sa.select(d.id, d.create_at, d.channel).where(pending).order_by(d.create_at, d.id)
        ).first()
        due = conn.execute(
            sa.select(sa.func.count()).where(due_condition(delivery, now))
        ).scalar_one()
        leased = conn.execute(
            sa.select(sa.func.count()).where(pending, d.claimed_until > now)
        ).scalar_one()
        poisoned = conn.execute(
            sa.select(sa.func.count()).where(
                d.status == DeliveryStatus.DEAD.value, d.lease_expiries >= max_lease_expiries
            )
        ).scalar_one()
        total, unread = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(
                    sa.func.sum(sa.case((n.read_status == ReadStatus.UNREAD.value, 1), else_=0)),
                    0,
                ),
            ).select_from(notice)
        ).one()
    oldest_info = None
    if oldest is not None:
        created = oldest.create_at
        oldest_info = {
            "id": oldest.id,
            "channel": oldest.channel,
            "create_at": created.isoformat(),
            "age_seconds": round((now - created).total_seconds(), 1),
        }
    return {
        "deliveries": {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_channel": {k: by_channel[k] for k in sorted(by_channel)},
            "pending_by_age": ages,
            "due_now": int(due),
            "in_flight": int(leased),
            "poisoned": int(poisoned),
            "oldest_pending": oldest_info,
        },
        "notices": {"total": int(total), "unread": int(unread)},
        "at": now.isoformat(),
    }


# --- purge ---------------------------------------------------------------------------


def _purgeable(notice: sa.Table, read_before: datetime, unread_before: datetime | None) -> Any:
    n = notice.c
    cond = sa.or_(
        sa.and_(n.read_status == ReadStatus.READ.value, n.create_at < read_before),
        # archived counts as read for the purge, by the time it was archived
        n.archived_at < read_before,
    )
    if unread_before is not None:
        cond = sa.or_(
            cond, sa.and_(n.read_status == ReadStatus.UNREAD.value, n.create_at < unread_before)
        )
    return cond


def count_purgeable(
    engine: Engine, notice: sa.Table, read_before: datetime, unread_before: datetime | None
) -> int:
    """How many notices :func:`purge` would delete."""
    with engine.connect() as conn:
        stmt = sa.select(sa.func.count()).select_from(notice)
        return int(
            conn.execute(stmt.where(_purgeable(notice, read_before, unread_before))).scalar_one()
        )


def purge(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    read_before: datetime,
    unread_before: datetime | None = None,
    *,
    batch: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete read notices created before ``read_before`` (and unread ones before
    ``unread_before``) with their deliveries, ``batch`` notices per transaction;
    return how many notices were deleted.

    Deliveries are deleted explicitly rather than left to ``ON DELETE CASCADE``, so the
    purge is complete even on a SQLite connection without ``foreign_keys=ON``.
    """
    cond = _purgeable(notice, read_before, unread_before)
    dialect = engine.dialect.name
    # the ids as one array parameter (in_list): one statement each however many
    delete_deliveries, delete_notices = cached(
        notice,
        "purge",
        dialect,
        lambda: (
            sa.delete(delivery).where(in_list(delivery.c.notice_id, "ids", dialect)),
            sa.delete(notice).where(in_list(notice.c.id, "ids", dialect)),
        ),
    )
    deleted = 0
    while True:
        with engine.connect() as conn:
            begin_write(conn)  # write lock first, as in requeue()
            # lock the notices first, in id order, as finish() does: deleting their
            # deliveries first could deadlock with a worker finishing them
            ids = lock_ids(conn, notice, cond, limit=batch)
            if ids:
                conn.execute(delete_deliveries, {"ids": ids})
                conn.execute(delete_notices, {"ids": ids})
            conn.commit()
        if not ids:
            return deleted
        deleted += len(ids)
        if progress is not None:
            progress(len(ids))


# --- send-test -----------------------------------------------------------------------


def deliveries_of(engine: Engine, delivery: sa.Table, notice_id: int) -> list[Any]:
    """The deliveries of notice ``notice_id`` by id: rows of ``id, channel, target,
    status, last_error``."""
    d = delivery.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(d.id, d.channel, d.target, d.status, d.last_error)
                .where(d.notice_id == notice_id)
                .order_by(d.id)
            )
        )
