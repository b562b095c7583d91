"""Delivery leases: claim due rows, finish them under the claim token, roll up."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..types import PENDING_STATES, DeliveryStatus, SendStatus
from .common import chunks, lock_ids, run_transaction

#: runs of :func:`finish` in all when its transaction is a deadlock victim, fails a
#: serialization check, finds SQLite locked or loses its connection
FINISH_ATTEMPTS = 3


def new_token() -> str:
    return uuid.uuid4().hex


def due_condition(delivery: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    """Pending, due, and not held by a live lease."""
    c = delivery.c
    return sa.and_(
        c.status.in_(PENDING_STATES),
        c.next_attempt_at <= now,
        sa.or_(c.claimed_until.is_(None), c.claimed_until <= now),
    )


def count_due(engine: Engine, delivery: sa.Table, now: datetime) -> int:
    """How many deliveries :func:`claim` would take without ``ids`` or ``limit``."""
    stmt = sa.select(sa.func.count()).where(due_condition(delivery, now))
    return run_transaction(engine, lambda conn: int(conn.execute(stmt).scalar_one()))


def waiting(delivery: sa.Table) -> sa.ColumnElement[bool]:
    """Still ``Wait`` (no outcome recorded yet): a ``where`` for :func:`claim` that
    never takes a row for a second attempt."""
    return delivery.c.status == DeliveryStatus.WAIT.value


def _unleased(delivery: sa.Table, now: datetime, dialect: str) -> sa.ColumnElement[bool]:
    c = delivery.c
    # the caller's id list is the selective part; on SQLite "status || ''" keeps the
    # planner off ix_delivery_due, through which it would filter every pending row of the
    # table by id (quadratic over the batches of a large fan-out)
    status = c.status.concat("") if dialect == "sqlite" else c.status
    return sa.and_(
        status.in_(PENDING_STATES),
        sa.or_(c.claimed_until.is_(None), c.claimed_until <= now),
        # a failed row waits out its backoff even when asked for by id (a Celery task
        # the broker delivers again must not retry early)
        sa.or_(status == DeliveryStatus.WAIT.value, c.next_attempt_at <= now),
    )


def claim(
    engine: Engine,
    delivery: sa.Table,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    ids: Sequence[int] | None = None,
    where: sa.ColumnElement[bool] | None = None,
    skip: Collection[int] = (),
) -> tuple[str, list[int]]:
    """Atomically reserve up to ``limit`` deliveries; return ``(token, ids)``.

    With ``ids`` (the after-commit dispatcher) those rows are taken if nobody holds them,
    whatever their due time; without, the due rows oldest first (the sweeper). Rows in
    ``skip`` are never taken (this process still runs an abandoned send of theirs).
    Claiming bumps ``attempts`` and sets a lease; taking over a row whose lease ran out
    with no outcome also bumps ``lease_expiries``. On PostgreSQL rows locked by another
    claimer are skipped (``FOR UPDATE SKIP LOCKED``), on SQLite the claim runs under
    ``BEGIN IMMEDIATE`` so claimers take turns. A claim that finds its pooled connection
    dead runs once more on a fresh one (at worst a claim whose COMMIT was lost holds its
    rows until the lease ends; nothing is sent under it).
    """
    token = new_token()
    c = delivery.c
    cond = (
        _unleased(delivery, now, engine.dialect.name)
        if ids is not None
        else due_condition(delivery, now)
    )
    if ids is not None:
        if skip:
            ids = [i for i in ids if i not in skip]
        cond = sa.and_(cond, c.id.in_(ids))
    elif skip:
        cond = sa.and_(cond, c.id.not_in(list(skip)))
    if where is not None:
        cond = sa.and_(cond, where)
    pick = (
        sa.select(c.id)
        .where(cond)
        .order_by(c.next_attempt_at, c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(delivery)
        .where(c.id.in_(pick.scalar_subquery()))
        .values(
            claimed_until=now + lease,
            claim_token=token,
            attempts=c.attempts + 1,
            # a token still set means the last claim ended with neither an outcome nor a
            # release: its worker died or froze with the row in hand (finish and release
            # clear the token; the claim condition admits only an expired lease)
            lease_expiries=c.lease_expiries + sa.case((c.claim_token.is_(None), 0), else_=1),
            update_at=now,
        )
        .returning(c.id)
    )
    claimed = run_transaction(
        engine,
        lambda conn: [row[0] for row in conn.execute(stmt)],
        write=True,
        what="claiming deliveries",
    )
    return token, claimed


def load_claimed(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    ids: Sequence[int],
    notice_columns: Sequence[str],
) -> tuple[list[Any], list[Any]]:
    """The claimed deliveries (``id``, ``notice_id``, ``channel``, ``target``,
    ``attempts``, ``lease_expiries``, in id order) and the ``notice_columns`` of their
    notices, each notice once however many deliveries it has, read in one short
    connection (again on a fresh one if that turns out dead)."""
    d = delivery.c
    columns = [notice.c[name] for name in notice_columns]

    def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        rows: list[Any] = []
        notices: list[Any] = []
        for part in chunks(list(ids)):
            rows.extend(
                conn.execute(
                    sa.select(d.id, d.notice_id, d.channel, d.target, d.attempts, d.lease_expiries)
                    .where(d.id.in_(part))
                    .order_by(d.id)
                )
            )
        for part in chunks(sorted({row.notice_id for row in rows})):
            notices.extend(conn.execute(sa.select(*columns).where(notice.c.id.in_(part))))
        return rows, notices

    return run_transaction(engine, read, what="loading claimed deliveries")


@dataclass
class Outcome:
    """What happened to one claimed delivery."""

    delivery_id: int
    notice_id: int
    status: DeliveryStatus
    error: str | None = None
    next_attempt_at: datetime | None = None
    #: a skipped delivery because its notice expired (counted apart in reports)
    expired: bool = False


def finish(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    token: str,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    released: Sequence[int] = (),
) -> list[Outcome]:
    """Record outcomes for rows this claim still owns; return the ones recorded.

    A row whose lease was taken over (its ``claim_token`` changed) is left alone, so a
    slow worker never overwrites the new owner's result. The notices' ``send_status``
    roll-up is recomputed in the same transaction.

    ``released`` rows were claimed but never sent (the lease was running out, the worker
    is stopping): their claim is undone in the same transaction (``attempts`` back down,
    lease and token cleared), so they are due again at once and their next claim is not
    counted as a lost lease.

    The transaction runs again (:data:`FINISH_ATTEMPTS` runs in all, briefly apart) when
    it loses its connection, is a deadlock victim, fails a serialization check or finds
    SQLite locked: failing here left a whole batch of sent deliveries to be sent again
    once their lease ran out. Running it twice is safe: the token guard makes a second
    run record only what the first did not (after a COMMIT lost with its connection
    that can be nothing: those rows then count as lost, and are not sent again).
    """
    if not outcomes and not released:
        return []
    c = delivery.c
    by_id = {o.delivery_id: o for o in outcomes}
    # successes share every value, so they take one UPDATE per chunk, guarded by the
    # token; the rest differ row by row (error, next attempt) and go through executemany
    sent_ids = [o.delivery_id for o in outcomes if o.status is DeliveryStatus.SENT]
    rest = [i for i in by_id if by_id[i].status is not DeliveryStatus.SENT]

    def record(conn: Connection) -> list[Outcome]:
        _lock_notices(conn, notice, sorted({o.notice_id for o in outcomes}))
        owned: set[int] = set()
        for part in chunks(sent_ids):
            rows = conn.execute(
                sa.update(delivery)
                .where(c.id.in_(part), c.claim_token == token)
                .values(
                    status=DeliveryStatus.SENT.value,
                    last_error=None,
                    sent_at=now,
                    claimed_until=None,
                    claim_token=None,
                    update_at=now,
                )
                .returning(c.id)
            )
            owned.update(row[0] for row in rows)
        sent_owned = set(owned)
        for part in chunks(rest):
            rows = conn.execute(
                sa.select(c.id).where(c.id.in_(part), c.claim_token == token).with_for_update()
            )
            owned.update(row[0] for row in rows)
        recorded = [by_id[i] for i in by_id if i in owned]
        others = [o for o in recorded if o.delivery_id not in sent_owned]
        if others:
            stmt = (
                sa.update(delivery)
                .where(c.id == sa.bindparam("b_id"))
                .values(
                    status=sa.bindparam("b_status"),
                    last_error=sa.bindparam("b_error"),
                    next_attempt_at=sa.case(
                        (
                            sa.bindparam("b_next", type_=c.next_attempt_at.type).is_(None),
                            c.next_attempt_at,
                        ),
                        else_=sa.bindparam("b_next", type_=c.next_attempt_at.type),
                    ),
                    sent_at=sa.bindparam("b_sent", type_=c.sent_at.type),
                    claimed_until=None,
                    claim_token=None,
                    update_at=now,
                )
            )
            conn.execute(
                stmt,
                [
                    {
                        "b_id": o.delivery_id,
                        "b_status": o.status.value,
                        "b_error": o.error,
                        "b_next": o.next_attempt_at,
                        "b_sent": now if o.status is DeliveryStatus.SENT else None,
                    }
                    for o in others
                ],
            )
        if recorded:
            roll_up(conn, delivery, notice, sorted({o.notice_id for o in recorded}), now=now)
        for part in chunks(list(released)):
            conn.execute(
                sa.update(delivery)
                .where(c.id.in_(part), c.claim_token == token)
                .values(
                    attempts=c.attempts - 1,
                    claimed_until=None,
                    claim_token=None,
                    update_at=now,
                )
            )
        return recorded

    return run_transaction(
        engine,
        record,
        write=True,
        attempts=FINISH_ATTEMPTS,
        conflicts=True,
        what="recording delivery outcomes",
    )


def _lock_notices(conn: Connection, notice: sa.Table, notice_ids: Sequence[int]) -> None:
    """Make finishers of one notice's deliveries take turns (PostgreSQL).

    Without it two workers finishing different deliveries of one notice each compute
    the roll-up before the other commits, both see the other delivery still Wait, and
    the notice stays Wait for good. Locking in id order keeps finishers deadlock-free;
    SQLite's ``BEGIN IMMEDIATE`` already serialises them.
    """
    if conn.dialect.name == "sqlite":
        return
    for part in chunks(notice_ids):
        lock_ids(conn, notice, notice.c.id.in_(part))


def roll_up(
    conn: Connection,
    delivery: sa.Table,
    notice: sa.Table,
    notice_ids: Sequence[int],
    *,
    now: datetime,
) -> None:
    """Recompute ``send_status`` of ``notice_ids`` (each with deliveries) from their
    deliveries.

    One aggregate over just these notices' deliveries (``notice_id`` index), joined in
    with ``UPDATE ... FROM``: per-notice ``EXISTS`` tests let PostgreSQL hash every
    pending delivery of the table once per batch instead.
    """
    stmt = _roll_up_statement(delivery, notice)
    for part in chunks(notice_ids):
        conn.execute(stmt, {"roll_ids": list(part), "roll_now": now})


def _roll_up_statement(delivery: sa.Table, notice: sa.Table) -> Any:
    # built once per table pair and kept on the table (it goes when the models go):
    # constructing the aggregate subquery and its column proxies cost more than running
    # it for a single notice
    cached = delivery.info.get("notice_roll_up")
    if cached is not None and cached[0] is notice:
        return cached[1]
    c = delivery.c
    rank = sa.case(
        (c.status.in_((DeliveryStatus.ERROR.value, DeliveryStatus.DEAD.value)), 2),
        (c.status == DeliveryStatus.WAIT.value, 1),
        else_=0,
    )
    worst = (
        sa.select(c.notice_id, sa.func.max(rank).label("worst"))
        .where(c.notice_id.in_(sa.bindparam("roll_ids", expanding=True)))
        .group_by(c.notice_id)
        .subquery("worst")
    )
    status = sa.case(
        (worst.c.worst == 2, SendStatus.ERROR.value),
        (worst.c.worst == 1, SendStatus.WAIT.value),
        else_=SendStatus.SENT.value,
    )
    stmt = (
        sa.update(notice)
        .where(notice.c.id == worst.c.notice_id)
        .values(
            send_status=status,
            update_at=sa.bindparam("roll_now", type_=notice.c.update_at.type),
        )
    )
    delivery.info["notice_roll_up"] = (notice, stmt)
    return stmt
