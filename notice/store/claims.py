"""Delivery leases: claim due rows, finish them under the claim token, roll up."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..types import PENDING_STATES, DeliveryStatus, SendStatus
from .common import cached, in_list, prepared, run_transaction

#: runs of :func:`finish` in all when its transaction is a deadlock victim, fails a
#: serialization check, finds SQLite locked or loses its connection
FINISH_ATTEMPTS = 3


def new_token() -> str:
    return uuid.uuid4().hex


_process_token: tuple[int, str] = (0, "")


def process_token() -> str:
    """The claim token deliveries are born with in this process (a new one after a fork).

    One token per process rather than per emit lets the thread dispatcher finish the
    rows of many emits in one guarded statement. It guards as a fresh one does: a claim
    that takes a row over after its lease ran out writes a token of its own, so our late
    finish matches nothing; and no other process writes this one.
    """
    global _process_token
    pid = os.getpid()
    if _process_token[0] != pid:
        _process_token = (pid, new_token())
    return _process_token[1]


def due_condition(delivery: sa.Table, now: datetime | Any) -> sa.ColumnElement[bool]:
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


def _unleased(delivery: sa.Table, now: Any, dialect: str) -> sa.ColumnElement[bool]:
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
    dialect = engine.dialect.name
    by_ids = ids is not None
    params: dict[str, Any] = {
        "c_now": now,
        "c_until": now + lease,
        "c_token": token,
        "c_limit": limit,
    }
    if ids is not None:
        params["c_ids"] = [i for i in ids if i not in skip] if skip else list(ids)
    if skip:
        params["c_skip"] = list(skip)
    if where is None:
        key = f"claim:{'ids' if by_ids else 'due'}:{'skip' if skip else ''}"
        stmt = cached(
            delivery, key, dialect, lambda: _claim_statement(delivery, dialect, by_ids, skip, None)
        )
    else:  # an ad-hoc condition (the CLI's retry): built for this call
        stmt = _claim_statement(delivery, dialect, by_ids, skip, where)
    claimed = run_transaction(
        engine,
        lambda conn: list(conn.execute(stmt, params).scalars().all()),
        write=True,
        what="claiming deliveries",
    )
    return token, claimed


def _claim_statement(
    delivery: sa.Table,
    dialect: str,
    by_ids: bool,
    skip: Collection[int],
    where: sa.ColumnElement[bool] | None,
) -> Any:
    c = delivery.c
    now = sa.bindparam("c_now", type_=c.next_attempt_at.type)
    cond = _unleased(delivery, now, dialect) if by_ids else due_condition(delivery, now)
    if by_ids:
        cond = sa.and_(cond, in_list(c.id, "c_ids", dialect))
    if skip:
        cond = sa.and_(cond, sa.not_(in_list(c.id, "c_skip", dialect)))
    if where is not None:
        cond = sa.and_(cond, where)
    pick = (
        sa.select(c.id)
        .where(cond)
        .order_by(c.next_attempt_at, c.id)
        .limit(sa.bindparam("c_limit", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        sa.update(delivery)
        .where(c.id.in_(pick.scalar_subquery()))
        .values(
            claimed_until=sa.bindparam("c_until", type_=c.claimed_until.type),
            claim_token=sa.bindparam("c_token", type_=c.claim_token.type),
            attempts=c.attempts + 1,
            # a token still set means the last claim ended with neither an outcome nor a
            # release: its worker died or froze with the row in hand (finish and release
            # clear the token; the claim condition admits only an expired lease)
            lease_expiries=c.lease_expiries + sa.case((c.claim_token.is_(None), 0), else_=1),
            update_at=now,
        )
        .returning(c.id)
    )


def load_claimed(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    ids: Sequence[int],
    notice_columns: Sequence[str],
) -> tuple[list[Any], list[Any]]:
    """The claimed deliveries (``id``, ``notice_id``, ``channel``, ``target``,
    ``attempts``, ``lease_expiries``, ``unless_read``, in id order) and the
    ``notice_columns`` of their notices, each notice once however many deliveries it
    has, read in one short connection (again on a fresh one if that turns out dead)."""
    dialect = engine.dialect.name

    def build_deliveries() -> Any:
        d = delivery.c
        return (
            sa.select(
                d.id,
                d.notice_id,
                d.channel,
                d.target,
                d.attempts,
                d.lease_expiries,
                d.unless_read,
            )
            .where(in_list(d.id, "ids", dialect))
            .order_by(d.id)
        )

    def build_notices() -> Any:
        columns = [notice.c[name] for name in notice_columns]
        return sa.select(*columns).where(in_list(notice.c.id, "ids", dialect))

    rows_stmt = cached(delivery, "load", dialect, build_deliveries)
    notices_stmt = cached(notice, "load:" + ",".join(notice_columns), dialect, build_notices)

    def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        rows = list(conn.execute(rows_stmt, {"ids": list(ids)}).all())
        notice_ids = sorted({row.notice_id for row in rows})
        return rows, list(conn.execute(notices_stmt, {"ids": notice_ids}).all())

    return run_transaction(engine, read, what="loading claimed deliveries")


@dataclass(slots=True)
class Outcome:
    """What happened to one claimed delivery (slotted: a fan-out makes one per
    delivery, and each was an instance and a ``__dict__`` for the garbage collector to
    walk)."""

    delivery_id: int
    notice_id: int
    status: DeliveryStatus
    error: str | None = None
    next_attempt_at: datetime | None = None
    #: a skipped delivery because its notice expired (counted apart in reports)
    expired: bool = False
    #: set by :func:`finish`: the notice's ``send_status`` after its roll-up
    send_status: str | None = None


def finish(
    engine: Engine,
    delivery: sa.Table,
    notice: sa.Table,
    token: str,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    released: Sequence[int] = (),
    follow_ups: Mapping[int, Sequence[tuple[str, str]]] | None = None,
    complete: Collection[int] = (),
) -> list[Outcome]:
    """Record outcomes for rows this claim still owns; return the ones recorded.

    ``follow_ups`` maps a delivery id to the ``(channel, target)`` deliveries a fallback
    chain writes when that delivery ends Dead: inserted in the same transaction, for
    recorded Dead outcomes only, due at once (:mod:`notice.fallback`).

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

    ``complete``: notices whose every delivery is among ``outcomes`` (a born-claimed
    batch knows: it wrote them). When every outcome is Sent and every notice complete,
    no other finisher can hold a delivery of these notices, so once all of them are
    ours each notice is Sent with no aggregate to compute: PostgreSQL records the batch
    in one statement (``all_sent`` in :func:`_finish_statements`), SQLite in two.
    """
    if not outcomes and not released:
        return []
    dialect = engine.dialect.name
    by_id = {o.delivery_id: o for o in outcomes}
    # successes share every value: one UPDATE for all of them, guarded by the token; the
    # rest differ row by row (error, next attempt): locked in one SELECT, then one
    # executemany
    sent_ids = [o.delivery_id for o in outcomes if o.status is DeliveryStatus.SENT]
    rest = [i for i in by_id if by_id[i].status is not DeliveryStatus.SENT]
    notice_ids = sorted({o.notice_id for o in outcomes})
    stmts = _finish_statements(delivery, notice, dialect)

    def _prepared(dialect_: Any, name: str) -> Any:
        # every emit of a sync or thread dispatch runs one of these (common.Prepared)
        return prepared(delivery, "finish:" + name, dialect_, lambda: stmts[name])

    all_sent = (
        bool(sent_ids) and not rest and not released and all(n in complete for n in notice_ids)
    )

    def record_all_sent(conn: Connection) -> list[Outcome]:
        """SQLite's all-Sent path, inside :func:`record`'s transaction."""
        params = {"ids": sent_ids, "tok": token, "now": now, "nids": notice_ids}
        # no UPDATE inside a WITH, but the notices' UPDATE by id still spares the
        # roll-up's aggregate over their deliveries
        owned = {row[0] for row in _prepared(conn.dialect, "sent").run(conn, params)}
        if len(owned) == len(sent_ids):
            _prepared(conn.dialect, "mark_sent").run(conn, params)
        return settle(conn, [by_id[i] for i in sent_ids if i in owned], len(owned))

    def settle(conn: Connection | None, recorded: list[Outcome], owned: int) -> list[Outcome]:
        """Fill in the recorded outcomes' ``send_status``: Sent when every delivery was
        still ours (the notices were marked so), else rolled up in ``conn``."""
        if owned == len(sent_ids):
            sent = SendStatus.SENT.value
            for o in recorded:
                o.send_status = sent
            return recorded
        # a lease was taken over: its notice has a finisher besides us. The notices are
        # locked (SQLite: the write lock), so this roll-up reads what committed before us
        if recorded:
            assert conn is not None
            rolled_ids = sorted({o.notice_id for o in recorded})
            if dialect != "sqlite":
                conn.execute(stmts["lock"], {"ids": rolled_ids})
            result = conn.execute(stmts["roll_up"], {"ids": rolled_ids, "now": now})
            settled = {row[0]: row[1] for row in result.all()}
            for o in recorded:
                o.send_status = settled.get(o.notice_id)
        return recorded

    if all_sent and dialect == "postgresql":
        # one statement, its own transaction (no BEGIN, no COMMIT round trip): the
        # notices locked, the deliveries Sent and, when every one was still ours, the
        # notices Sent; atomic as a statement is. Run again it records only what the
        # first run did not (the token guard), like the transaction below
        params = {"ids": sent_ids, "tok": token, "now": now, "nids": notice_ids}
        params["n"] = len(sent_ids)
        rows = run_transaction(
            engine,
            lambda conn: _prepared(conn.dialect, "all_sent").run(conn, params),
            autocommit=True,
            attempts=FINISH_ATTEMPTS,
            conflicts=True,
            what="recording delivery outcomes",
        )
        owned = {i for i, rolled in rows if not rolled}
        recorded = [by_id[i] for i in sent_ids if i in owned]
        if len(owned) == len(sent_ids) or not recorded:
            return settle(None, recorded, len(owned))
        # the statement's lock ended with it: the roll-up takes it again, in a
        # transaction of its own, and then sees every finisher's committed outcome
        return run_transaction(
            engine,
            lambda conn: settle(conn, recorded, len(owned)),
            write=True,
            attempts=FINISH_ATTEMPTS,
            conflicts=True,
            what="rolling up delivery outcomes",
        )

    def record(conn: Connection) -> list[Outcome]:
        if all_sent:
            return record_all_sent(conn)
        # finishers of one notice's deliveries take turns (see _finish_statements); on
        # PostgreSQL the lock rides in the successes' UPDATE when there are any (one
        # round trip less per batch)
        lock = dialect != "sqlite" and bool(notice_ids)
        owned: set[int] = set()
        if sent_ids:
            params = {"ids": sent_ids, "tok": token, "now": now}
            if lock:
                params["nids"] = notice_ids
            rows = conn.execute(stmts["locked_sent" if lock else "sent"], params)
            owned.update(rows.scalars().all())
        elif lock:
            conn.execute(stmts["lock"], {"ids": notice_ids})
        sent_owned = set(owned)
        if rest:
            rows = conn.execute(stmts["owned"], {"ids": rest, "tok": token})
            owned.update(rows.scalars().all())
        recorded = [by_id[i] for i in by_id if i in owned]
        others = [o for o in recorded if o.delivery_id not in sent_owned]
        if others:
            conn.execute(
                stmts["other"],
                [
                    {
                        "b_id": o.delivery_id,
                        "b_status": o.status.value,
                        "b_error": o.error,
                        "b_next": o.next_attempt_at,
                        "b_sent": now if o.status is DeliveryStatus.SENT else None,
                        "now": now,
                    }
                    for o in others
                ],
            )
        if follow_ups:
            new_rows: list[dict[str, Any]] = [
                {
                    "notice_id": o.notice_id,
                    "channel": channel,
                    "target": target,
                    "status": DeliveryStatus.WAIT.value,
                    "attempts": 0,
                    "lease_expiries": 0,
                    "next_attempt_at": now,
                    "create_at": now,
                    "update_at": now,
                }
                for o in recorded
                if o.status is DeliveryStatus.DEAD
                for channel, target in follow_ups.get(o.delivery_id, ())
            ]
            if new_rows:
                conn.execute(delivery.insert(), new_rows)
        if recorded:
            rolled = sorted({o.notice_id for o in recorded})
            settled = {
                row[0]: row[1]
                for row in conn.execute(stmts["roll_up"], {"ids": rolled, "now": now}).all()
            }
            for o in recorded:
                o.send_status = settled.get(o.notice_id)
        if released:
            conn.execute(stmts["release"], {"ids": list(released), "tok": token, "now": now})
        return recorded

    return run_transaction(
        engine,
        record,
        write=True,
        attempts=FINISH_ATTEMPTS,
        conflicts=True,
        what="recording delivery outcomes",
    )


def _finish_statements(delivery: sa.Table, notice: sa.Table, dialect: str) -> dict[str, Any]:
    """The statements of :func:`finish`, built once per table and dialect.

    ``lock`` makes finishers of one notice's deliveries take turns (PostgreSQL): without
    it two workers finishing different deliveries of one notice each compute the roll-up
    before the other commits, both see the other delivery still Wait, and the notice
    stays Wait for good. Locking in id order keeps finishers deadlock-free; SQLite's
    ``BEGIN IMMEDIATE`` already serialises them.
    """

    def build() -> dict[str, Any]:
        c = delivery.c
        now = sa.bindparam("now", type_=c.update_at.type)
        mine = sa.and_(in_list(c.id, "ids", dialect), c.claim_token == sa.bindparam("tok"))
        next_at = sa.bindparam("b_next", type_=c.next_attempt_at.type)
        sent = (
            sa.update(delivery)
            .where(mine)
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
        locked = (
            sa.select(notice.c.id)
            .where(in_list(notice.c.id, "nids", dialect))
            .order_by(notice.c.id)
            .with_for_update()
            .cte("locked")
        )
        # all_sent: "locked_sent", then every notice Sent, but only when the UPDATE got
        # every delivery asked for (else nothing: the caller rolls up as usual); the
        # rows of both UPDATEs come back, flagged
        sent_cte = sent.where(
            sa.select(sa.func.count()).select_from(locked).scalar_subquery() >= 0
        ).cte("sent")
        rolled = (
            sa.update(notice)
            .where(
                in_list(notice.c.id, "nids", dialect),
                sa.select(sa.func.count()).select_from(sent_cte).scalar_subquery()
                == sa.bindparam("n", type_=sa.Integer),
            )
            .values(send_status=SendStatus.SENT.value, update_at=now)
            .returning(notice.c.id)
            .cte("rolled")
        )
        all_sent = sa.union_all(
            sa.select(sent_cte.c.id, sa.false().label("rolled")),
            sa.select(rolled.c.id, sa.true().label("rolled")),
        )
        return {
            "all_sent": all_sent,
            "mark_sent": sa.update(notice)
            .where(in_list(notice.c.id, "nids", dialect))
            .values(send_status=SendStatus.SENT.value, update_at=now),
            "lock": sa.select(notice.c.id)
            .where(in_list(notice.c.id, "ids", dialect))
            .order_by(notice.c.id)
            .with_for_update(),
            "sent": sent,
            # "lock" and "sent" in one statement: the count over the CTE has no outer
            # reference, so PostgreSQL runs it first, as a one-time filter, and the
            # notices are locked (in id order) before any delivery row is
            "locked_sent": sent.where(
                sa.select(sa.func.count()).select_from(locked).scalar_subquery() >= 0
            ),
            "owned": sa.select(c.id).where(mine).with_for_update(),
            "other": sa.update(delivery)
            .where(c.id == sa.bindparam("b_id"))
            .values(
                status=sa.bindparam("b_status"),
                last_error=sa.bindparam("b_error"),
                next_attempt_at=sa.case((next_at.is_(None), c.next_attempt_at), else_=next_at),
                sent_at=sa.bindparam("b_sent", type_=c.sent_at.type),
                claimed_until=None,
                claim_token=None,
                update_at=now,
            ),
            "roll_up": _roll_up_statement(delivery, notice, dialect),
            "release": sa.update(delivery)
            .where(mine)
            .values(
                attempts=c.attempts - 1,
                claimed_until=None,
                claim_token=None,
                update_at=now,
            ),
        }

    return cached(delivery, "finish", dialect, build)


def roll_up(
    conn: Connection,
    delivery: sa.Table,
    notice: sa.Table,
    notice_ids: Sequence[int],
    *,
    now: datetime,
) -> None:
    """Recompute ``send_status`` of ``notice_ids`` (each with deliveries) from their
    deliveries, in one statement (the ids bound as one array)."""
    dialect = conn.dialect.name
    stmt = cached(
        delivery, "roll_up", dialect, lambda: _roll_up_statement(delivery, notice, dialect)
    )
    conn.execute(stmt, {"ids": list(notice_ids), "now": now})


def _roll_up_statement(delivery: sa.Table, notice: sa.Table, dialect: str) -> Any:
    """``UPDATE notice ... FROM (aggregate of their deliveries) RETURNING id, send_status``.

    One aggregate over just these notices' deliveries (``notice_id`` index), joined in
    with ``UPDATE ... FROM``: per-notice ``EXISTS`` tests let PostgreSQL hash every
    pending delivery of the table once per batch instead.
    """
    c = delivery.c
    rank = sa.case(
        (c.status.in_((DeliveryStatus.ERROR.value, DeliveryStatus.DEAD.value)), 2),
        (c.status == DeliveryStatus.WAIT.value, 1),
        else_=0,
    )
    worst = (
        sa.select(c.notice_id, sa.func.max(rank).label("worst"))
        .where(in_list(c.notice_id, "ids", dialect))
        .group_by(c.notice_id)
        .subquery("worst")
    )
    status = sa.case(
        (worst.c.worst == 2, SendStatus.ERROR.value),
        (worst.c.worst == 1, SendStatus.WAIT.value),
        else_=SendStatus.SENT.value,
    )
    return (
        sa.update(notice)
        .where(notice.c.id == worst.c.notice_id)
        .values(send_status=status, update_at=sa.bindparam("now", type_=notice.c.update_at.type))
        .returning(notice.c.id, notice.c.send_status)
    )
