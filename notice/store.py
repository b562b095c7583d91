"""Every query the library runs: bulk inserts, counts, listings and delivery claims.

Views, the CLI, the sweeper and the dispatcher share these, so each query is written
once and tuned once (see the indexes in :mod:`notice.models`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from .models import utcnow
from .types import PENDING_STATES, DeliveryStatus, ReadStatus, SendStatus

#: ids per ``IN (...)`` list; keeps statements well under every driver's parameter limit
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- writing notices -----------------------------------------------------------------


def insert_notices(
    session: Session, notice_table: sa.Table, rows: list[dict[str, Any]], *, dedupe: bool
) -> list[tuple[int, Any]]:
    """Insert ``rows`` in bulk and return ``(id, user_id)`` of the rows written.

    Without ``dedupe`` the result is in the order of ``rows``. With ``dedupe`` a row whose
    ``(user_id, dedupe_key)`` exists is skipped (``ON CONFLICT DO NOTHING``), so racing
    callers never fail and never write twice; only new rows are returned.
    """
    if not rows:
        return []
    cols = (notice_table.c.id, notice_table.c.user_id)
    dialect = session.get_bind().dialect.name
    conflict = ["user_id", "dedupe_key"]
    if dedupe and dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"dedupe_key needs PostgreSQL or SQLite, not {dialect}")
    fan_out = _fan_out(
        session, notice_table, rows, ("user_id", "send_status"), cols, conflict if dedupe else None
    )
    if fan_out is not None:
        # ids grow in the SELECT's order (PostgreSQL's sequence, SQLite's rowid under its
        # write lock), so sorting by id restores the order of ``rows``
        return sorted((row[0], row[1]) for row in fan_out)
    if dedupe:
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(notice_table).on_conflict_do_nothing(index_elements=conflict)
        else:
            stmt = sqlite.insert(notice_table).on_conflict_do_nothing(index_elements=conflict)
        result = session.execute(stmt.returning(*cols), rows)
    elif dialect == "sqlite":
        # SQLite has no sentinel for RETURNING in parameter order, so SQLAlchemy would
        # fall back to one INSERT per row; rowids grow in insertion order instead
        result = session.execute(sa.insert(notice_table).returning(*cols), rows)
        return sorted((row[0], row[1]) for row in result)
    else:
        result = session.execute(
            sa.insert(notice_table).returning(*cols, sort_by_parameter_order=True), rows
        )
    return [(row[0], row[1]) for row in result]


def insert_deliveries(
    session: Session, delivery_table: sa.Table, rows: list[dict[str, Any]]
) -> list[int]:
    """Insert delivery rows in bulk; return their ids."""
    if not rows:
        return []
    c = delivery_table.c
    fan_out = _fan_out(session, delivery_table, rows, ("notice_id", "channel", "target"), (c.id,))
    if fan_out is not None:
        return [row[0] for row in fan_out]
    stmt = sa.insert(delivery_table).returning(c.id)
    return [row[0] for row in session.execute(stmt, rows)]


def insert_notice_columns(
    session: Session,
    notice_table: sa.Table,
    shared: dict[str, Any],
    user_ids: list[Any],
    send_statuses: list[str],
    *,
    dedupe: bool,
) -> list[tuple[int, Any]]:
    """:func:`insert_notices` for rows given column-wise: ``shared`` values common to
    every row plus parallel ``user_ids`` / ``send_statuses``; ``(id, user_id)`` as there.

    A fan-out builds its columns directly instead of one dict per recipient that
    :func:`_fan_out` would take apart again.
    """
    cols = (notice_table.c.id, notice_table.c.user_id)
    conflict = ["user_id", "dedupe_key"] if dedupe else None
    varying: dict[str, list[Any]] = {"user_id": user_ids, "send_status": send_statuses}
    fan_out = _fan_out_columns(session, notice_table, shared, varying, cols, conflict)
    if fan_out is not None:
        # ids grow in the SELECT's order (see insert_notices)
        return sorted((row[0], row[1]) for row in fan_out)
    rows = [
        {**shared, "user_id": u, "send_status": status}
        for u, status in zip(user_ids, send_statuses, strict=True)
    ]
    return insert_notices(session, notice_table, rows, dedupe=dedupe)


def insert_delivery_columns(
    session: Session,
    delivery_table: sa.Table,
    shared: dict[str, Any],
    notice_ids: list[int],
    channels: list[str],
    targets: list[str],
) -> list[int]:
    """:func:`insert_deliveries` for rows given column-wise (see
    :func:`insert_notice_columns`)."""
    varying: dict[str, list[Any]] = {
        "notice_id": notice_ids,
        "channel": channels,
        "target": targets,
    }
    fan_out = _fan_out_columns(session, delivery_table, shared, varying, (delivery_table.c.id,))
    if fan_out is not None:
        return [row[0] for row in fan_out]
    rows = [
        {**shared, "notice_id": n, "channel": c, "target": t}
        for n, c, t in zip(notice_ids, channels, targets, strict=True)
    ]
    return insert_deliveries(session, delivery_table, rows)


#: rows per ``INSERT ... SELECT`` of the fan-out path
FAN_OUT_CHUNK = 10_000


def _fan_out(
    session: Session,
    table: sa.Table,
    rows: list[dict[str, Any]],
    varying: tuple[str, ...],
    returning: tuple[sa.ColumnElement[Any], ...],
    conflict: list[str] | None = None,
) -> list[Any] | None:
    """Insert rows that differ only in ``varying`` columns as ``INSERT ... SELECT`` over
    arrays of those columns (``unnest`` on PostgreSQL, ``json_each`` on SQLite).

    The shared values are bound once per statement instead of once per row, which makes
    a large fan-out several times faster than ``executemany``. Returns the RETURNING
    rows, or None (nothing written) when the rows don't fit that shape: another dialect,
    a single row, rows differing elsewhere, or varying values other than int / str.
    """
    dialect = session.get_bind().dialect.name
    if len(rows) < 2 or dialect not in ("postgresql", "sqlite"):
        return None
    first = rows[0]
    shared = {k: v for k, v in first.items() if k not in varying}
    if set(first) != set(shared) | set(varying):
        return None
    columns: list[list[Any]] = [[] for _ in varying]
    for row in rows:
        if len(row) != len(first):
            return None
        for key, value in shared.items():
            other = row.get(key, _MISSING)
            if other is not value and other != value:
                return None
        for values, key in zip(columns, varying, strict=True):
            values.append(row[key])
    return _fan_out_columns(
        session, table, shared, dict(zip(varying, columns, strict=True)), returning, conflict
    )


def _fan_out_columns(
    session: Session,
    table: sa.Table,
    shared: dict[str, Any],
    varying: dict[str, list[Any]],
    returning: tuple[sa.ColumnElement[Any], ...],
    conflict: list[str] | None = None,
) -> list[Any] | None:
    """:func:`_fan_out` for rows already split into ``shared`` values and ``varying``
    parallel columns; None (nothing written) when they don't fit."""
    dialect = session.get_bind().dialect.name
    columns = list(varying.values())
    if dialect not in ("postgresql", "sqlite") or len(columns[0]) < 2:
        return None
    # a "varying" column that holds one value throughout (every notice Wait, every
    # delivery on one channel) is bound once like the shared ones: fewer arrays to
    # encode and unpack per row
    for name, values in list(varying.items()):
        if len(varying) > 1 and values.count(values[0]) == len(values):
            shared = {**shared, name: values[0]}
            varying = {k: v for k, v in varying.items() if k != name}
    columns = list(varying.values())
    for values in columns:
        kind = type(values[0])
        if kind not in (int, str) or any(type(v) is not kind for v in values):
            return None
    names = list(varying) + list(shared)
    constants = [
        sa.cast(sa.null(), table.c[k].type) if v is None else sa.literal(v, type_=table.c[k].type)
        for k, v in shared.items()
    ]
    out: list[Any] = []
    for start in range(0, len(columns[0]), FAN_OUT_CHUNK):
        part = [values[start : start + FAN_OUT_CHUNK] for values in columns]
        source, picked, order = _array_source(dialect, table, tuple(varying), part)
        select = sa.select(*picked, *constants).select_from(source).order_by(order)
        stmt: Any
        if dialect == "postgresql":
            stmt = postgresql.insert(table)
        else:
            stmt = sqlite.insert(table)
            # SQLite parses "INSERT ... SELECT ... ON CONFLICT" only after a WHERE
            select = select.where(sa.true())
        stmt = stmt.from_select(names, select)
        if conflict is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=conflict)
        out.extend(session.execute(stmt.returning(*returning)))
    return out


_MISSING = object()


def _array_source(
    dialect: str, table: sa.Table, varying: tuple[str, ...], columns: list[list[Any]]
) -> tuple[Any, list[sa.ColumnElement[Any]], sa.ColumnElement[Any]]:
    """A row source over parallel arrays: ``(from clause, column expressions, order)``."""
    if dialect == "postgresql":
        arrays = [
            sa.bindparam(None, values, type_=postgresql.ARRAY(table.c[name].type))
            for name, values in zip(varying, columns, strict=True)
        ]
        labels = [f"c{i}" for i in range(len(varying))]
        source = (
            sa.func.unnest(*arrays)
            .table_valued(*labels, with_ordinality="ord")
            .render_derived(name="v")
        )
        return source, [source.c[label] for label in labels], source.c.ord
    # SQLite: one JSON array of rows (or of values, for one column); json_each keeps
    # the array index as "key"
    single = len(columns) == 1
    packed = json.dumps(columns[0] if single else list(zip(*columns, strict=True)))
    source = sa.func.json_each(sa.bindparam(None, packed, type_=sa.String)).table_valued(
        "key", "value", name="v"
    )
    picked: list[sa.ColumnElement[Any]] = (
        [source.c.value]
        if single
        else [sa.func.json_extract(source.c.value, f"$[{i}]") for i in range(len(varying))]
    )
    return source, picked, source.c.key


# --- reading -------------------------------------------------------------------------


def _visible(notice: Any, now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(notice.expires_at.is_(None), notice.expires_at > now)


def unread_count(session: Session, notice: Any, user_id: Any, now: datetime | None = None) -> int:
    """Unread, unexpired notices of one user (index-only on ``ix_notice_user_read``)."""
    stmt = (
        sa.select(sa.func.count())
        .select_from(notice.__table__)
        .where(
            notice.user_id == user_id,
            notice.read_status == ReadStatus.UNREAD.value,
            _visible(notice, now or utcnow()),
        )
    )
    return int(session.execute(stmt).scalar_one())


@dataclass(frozen=True)
class NoticeQuery:
    """Filters for :func:`list_notices`; every field is optional.

    :param read: True for read only, False for unread only, None for both.
    :param types: notice type values to keep.
    :param text: case-insensitive substring of subject or content.
    :param before / after: ``create_at`` bounds (exclusive).
    :param before_id: cursor: only notices with a smaller id (the next page).
    :param limit: page size.
    """

    read: bool | None = None
    types: tuple[str, ...] = ()
    text: str | None = None
    before: datetime | None = None
    after: datetime | None = None
    before_id: int | None = None
    limit: int = 50
    include_expired: bool = False


def list_notices(session: Session, notice: Any, user_id: Any, query: NoticeQuery) -> list[Any]:
    """One user's notices, newest first (by id, walking ``ix_notice_user_id``)."""
    stmt = sa.select(notice).where(notice.user_id == user_id)
    if query.read is not None:
        status = ReadStatus.READ if query.read else ReadStatus.UNREAD
        stmt = stmt.where(notice.read_status == status.value)
    if query.types:
        stmt = stmt.where(notice.notice_type.in_(query.types))
    if query.text:
        pattern = "%" + _escape_like(query.text.lower()) + "%"
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(notice.subject).like(pattern, escape="\\"),
                sa.func.lower(notice.content).like(pattern, escape="\\"),
            )
        )
    if query.before is not None:
        stmt = stmt.where(notice.create_at < query.before)
    if query.after is not None:
        stmt = stmt.where(notice.create_at > query.after)
    if query.before_id is not None:
        stmt = stmt.where(notice.id < query.before_id)
    if not query.include_expired:
        stmt = stmt.where(_visible(notice, utcnow()))
    stmt = stmt.order_by(notice.id.desc()).limit(query.limit)
    return list(session.execute(stmt).scalars())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def set_read(
    session: Session, notice: Any, user_id: Any, ids: Iterable[int] | None, *, read: bool
) -> int:
    """Mark the user's notices (``ids``, or all when None) read or unread; rows changed.

    Only the user's own rows are touched, whatever ids are passed.
    """
    now = utcnow()
    target, source = (
        (ReadStatus.READ, ReadStatus.UNREAD) if read else (ReadStatus.UNREAD, ReadStatus.READ)
    )
    values = {"read_status": target.value, "read_at": now if read else None, "update_at": now}
    base = sa.update(notice.__table__).where(
        notice.__table__.c.user_id == user_id,
        notice.__table__.c.read_status == source.value,
    )
    if ids is None:
        return int(session.execute(base.values(**values)).rowcount)  # type: ignore[attr-defined]
    changed = 0
    for part in chunks(sorted(set(ids))):
        stmt = base.where(notice.__table__.c.id.in_(part)).values(**values)
        changed += int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    return changed


# --- claiming deliveries -------------------------------------------------------------


def new_token() -> str:
    return uuid.uuid4().hex


def _begin_claim(conn: Connection) -> None:
    # SQLite: take the write lock up front so two claimers queue on the busy timeout
    # instead of both reading and then failing to upgrade ("database is locked").
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def due_condition(delivery: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    """Pending, due, and not held by a live lease."""
    c = delivery.c
    return sa.and_(
        c.status.in_(PENDING_STATES),
        c.next_attempt_at <= now,
        sa.or_(c.claimed_until.is_(None), c.claimed_until <= now),
    )


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
) -> tuple[str, list[int]]:
    """Atomically reserve up to ``limit`` deliveries; return ``(token, ids)``.

    With ``ids`` (the after-commit dispatcher) those rows are taken if nobody holds them,
    whatever their due time; without, the due rows oldest first (the sweeper). Claiming
    bumps ``attempts`` and sets a lease; on PostgreSQL rows locked by another claimer are
    skipped (``FOR UPDATE SKIP LOCKED``), on SQLite the claim runs under
    ``BEGIN IMMEDIATE`` so claimers take turns.
    """
    token = new_token()
    c = delivery.c
    cond = (
        _unleased(delivery, now, engine.dialect.name)
        if ids is not None
        else due_condition(delivery, now)
    )
    if ids is not None:
        cond = sa.and_(cond, c.id.in_(ids))
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
            update_at=now,
        )
        .returning(c.id)
    )
    with engine.connect() as conn:
        _begin_claim(conn)
        claimed = [row[0] for row in conn.execute(stmt)]
        conn.commit()
    return token, claimed


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
) -> list[Outcome]:
    """Record outcomes for rows this claim still owns; return the ones recorded.

    A row whose lease was taken over (its ``claim_token`` changed) is left alone, so a
    slow worker never overwrites the new owner's result. The notices' ``send_status``
    roll-up is recomputed in the same transaction.
    """
    if not outcomes:
        return []
    c = delivery.c
    by_id = {o.delivery_id: o for o in outcomes}
    # successes share every value, so they take one UPDATE per chunk, guarded by the
    # token; the rest differ row by row (error, next attempt) and go through executemany
    sent_ids = [o.delivery_id for o in outcomes if o.status is DeliveryStatus.SENT]
    rest = [i for i in by_id if by_id[i].status is not DeliveryStatus.SENT]
    with engine.connect() as conn:
        _begin_claim(conn)
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
        conn.commit()
    return recorded


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
        conn.execute(
            sa.select(notice.c.id)
            .where(notice.c.id.in_(part))
            .order_by(notice.c.id)
            .with_for_update()
        ).all()


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
