"""Scheduling's queries: cancelling pending deliveries, announcing notices whose
``visible_at`` came, and users' quiet hours."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from ..types import PENDING_STATES, DeliveryStatus
from .claims import roll_up
from .common import cached, in_list, lock_ids, run_transaction, upsert

#: ``last_error`` of a delivery ended by ``notices.cancel``
CANCELLED = "cancelled"


def cancel(
    session: Session,
    notice_table: sa.Table,
    delivery_table: sa.Table,
    *,
    now: datetime,
    notice_id: int | None = None,
    user_id: Any = None,
    dedupe_key: str | None = None,
    group_key: str | None = None,
    remove: bool = False,
) -> tuple[list[int], int, int, int]:
    """Cancel the pending deliveries of the notices matched (by id; by ``dedupe_key``
    or ``group_key``, of ``user_id`` or of every user); with ``remove`` delete those
    notices too. Runs in the caller's session. Returns ``(notice ids, cancelled,
    in_flight, removed)``.

    A pending delivery no worker holds ends Skipped, ``last_error`` "cancelled"; one
    under a live lease is *in flight*: its worker sends it and records that (the
    cancel came too late for it). The notices' ``send_status`` is rolled up.

    The ``UPDATE`` and a claim exclude each other on the row: a claim's ``FOR UPDATE
    SKIP LOCKED`` passes over a row this transaction changed, and this ``UPDATE``,
    waiting on a row a claim locked, re-checks it after the claim commits and finds it
    leased. So a delivery is either cancelled or sent, never both recorded.
    """
    n = notice_table.c
    conds: list[sa.ColumnElement[bool]] = []
    if notice_id is not None:
        conds.append(n.id == notice_id)
    if dedupe_key is not None:
        conds.append(n.dedupe_key == dedupe_key)
    if group_key is not None:
        conds.append(n.group_key == group_key)
    if user_id is not None:
        conds.append(n.user_id == user_id)
    cond = sa.and_(*conds)
    c = delivery_table.c
    free = sa.and_(
        c.status.in_(PENDING_STATES),
        sa.or_(c.claimed_until.is_(None), c.claimed_until <= now),
    )
    values = {
        "status": DeliveryStatus.SKIPPED.value,
        "last_error": CANCELLED,
        "claimed_until": None,
        "claim_token": None,
        "update_at": now,
    }
    if session.get_bind().dialect.name == "sqlite":
        # write first: a transaction that reads first and writes after another writer
        # committed fails at once on SQLite ("database is locked"); writing first waits
        # on the busy timeout instead, then holds the write lock for the rest
        matched = sa.select(n.id).where(cond).scalar_subquery()
        cancelled = _rowcount(
            session.execute(
                sa.update(delivery_table).where(c.notice_id.in_(matched), free).values(**values)
            )
        )
        ids = list(session.execute(sa.select(n.id).where(cond).order_by(n.id)).scalars())
    else:
        # notices locked in id order first, as finish locks them: a cancel and a finish
        # of the same notice take turns instead of deadlocking
        ids = lock_ids(session, notice_table, cond)
        cancelled = 0
        if ids:
            cancelled = _rowcount(
                session.execute(
                    sa.update(delivery_table).where(c.notice_id.in_(ids), free).values(**values)
                )
            )
    if not ids:
        return [], 0, 0, 0
    in_flight = int(
        session.execute(
            sa.select(sa.func.count()).where(c.notice_id.in_(ids), c.status.in_(PENDING_STATES))
        ).scalar_one()
    )
    removed = 0
    if remove:
        session.execute(sa.delete(delivery_table).where(c.notice_id.in_(ids)))
        removed = _rowcount(session.execute(sa.delete(notice_table).where(n.id.in_(ids))))
    elif cancelled:
        roll_up(session.connection(), delivery_table, notice_table, ids, now=now)
    return ids, cancelled, in_flight, removed


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def take_visible(engine: Engine, notice_table: sa.Table, now: datetime, limit: int) -> list[int]:
    """Announce up to ``limit`` notices whose ``visible_at`` came: clear it (they are
    visible either way, see :func:`~notice.store.common.shown`) and return their ids
    for the live stream. Concurrent sweepers take different rows (``SKIP LOCKED``)."""
    c = notice_table.c
    dialect = engine.dialect.name

    def build() -> Any:
        now_ = sa.bindparam("now", type_=c.visible_at.type)
        pick = (
            sa.select(c.id)
            .where(c.visible_at.is_not(None), c.visible_at <= now_)
            .order_by(c.visible_at, c.id)
            .limit(sa.bindparam("limit", type_=sa.Integer))
            .with_for_update(skip_locked=True)
        )
        return (
            sa.update(notice_table)
            .where(c.id.in_(pick.scalar_subquery()))
            .values(visible_at=None)
            .returning(c.id)
        )

    stmt = cached(notice_table, "take_visible", dialect, build)

    def work(conn: Connection) -> list[int]:
        return sorted(row[0] for row in conn.execute(stmt, {"now": now, "limit": limit}))

    return run_transaction(engine, work, write=True, what="announcing scheduled notices")


# --- quiet hours ------------------------------------------------------------------

#: seconds a "no quiet hours stored" answer of :func:`any_quiet_hours` is trusted (as
#: the preference gate's, :data:`notice.store.preferences.NONE_STORED_TTL`)
NONE_STORED_TTL = 1.0

_stored: weakref.WeakKeyDictionary[Any, bool | float] = weakref.WeakKeyDictionary()
_stored_lock = threading.Lock()


def any_quiet_hours(session: Session, model: Any) -> bool:
    """Whether any user stored quiet hours: while none did, a publish asks nothing.
    Asked of the database at most once per :data:`NONE_STORED_TTL` while the answer is
    no; never again once it is yes."""
    engine = session.get_bind()
    known = _stored.get(engine)
    if known is True:
        return True
    if known is not None and time.monotonic() - known < NONE_STORED_TTL:
        return False
    found = session.execute(sa.select(sa.literal(1)).select_from(model).limit(1)).first()
    with _stored_lock:
        if _stored.get(engine) is not True:
            _stored[engine] = True if found is not None else time.monotonic()
    return found is not None


def quiet_hours_of(
    session: Session, model: Any, user_ids: Sequence[Any]
) -> dict[str, tuple[str, int, int]]:
    """``{str(user_id): (timezone, start_minute, end_minute)}`` of the users of
    ``user_ids`` who stored quiet hours, in one query."""
    table = model.__table__
    c = table.c
    dialect = session.get_bind().dialect.name
    stmt = cached(
        table,
        "quiet_of",
        dialect,
        lambda: sa.select(c.user_id, c.timezone, c.start_minute, c.end_minute).where(
            in_list(c.user_id, "users", dialect)
        ),
    )
    rows = session.execute(stmt, {"users": list(dict.fromkeys(user_ids))})
    return {str(u): (tz, int(s), int(e)) for u, tz, s, e in rows}


def set_quiet_hours(
    session: Session,
    model: Any,
    user_id: Any,
    timezone: str,
    start: int,
    end: int,
    *,
    now: datetime,
) -> None:
    """Store ``user_id``'s quiet hours (one upsert)."""
    with _stored_lock:
        _stored[session.get_bind()] = True
    upsert(
        session,
        model.__table__,
        {
            "user_id": user_id,
            "timezone": timezone,
            "start_minute": start,
            "end_minute": end,
            "update_at": now,
        },
        keys=("user_id",),
        update=("timezone", "start_minute", "end_minute", "update_at"),
    )


def clear_quiet_hours(session: Session, model: Any, user_id: Any) -> None:
    """Remove ``user_id``'s quiet hours."""
    session.execute(sa.delete(model.__table__).where(model.__table__.c.user_id == user_id))
