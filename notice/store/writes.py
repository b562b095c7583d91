"""Publishing's writes: notices and their deliveries in bulk, column-wise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .common import cached, in_list, prepared


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
    if dedupe and dialect not in ("postgresql", "sqlite"):
        raise NotImplementedError(f"dedupe_key needs PostgreSQL or SQLite, not {dialect}")
    fan_out = _fan_out(session, notice_table, rows, ("user_id", "send_status"), cols, dedupe=dedupe)
    if fan_out is not None:
        # ids grow in the SELECT's order (PostgreSQL's sequence, SQLite's rowid under its
        # write lock), so sorting by id restores the order of ``rows``
        return sorted((row[0], row[1]) for row in fan_out)
    if dedupe:

        def build_dedupe() -> Any:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            return _skip_duplicates(insert(notice_table), notice_table).returning(*cols)

        stmt = cached(notice_table, "insert:dedupe", dialect, build_dedupe)
        result = session.execute(stmt, rows)
    elif dialect == "sqlite":
        # SQLite has no sentinel for RETURNING in parameter order, so SQLAlchemy would
        # fall back to one INSERT per row; rowids grow in insertion order instead
        stmt = cached(
            notice_table, "insert", dialect, lambda: sa.insert(notice_table).returning(*cols)
        )
        return sorted((row[0], row[1]) for row in session.execute(stmt, rows).all())
    else:
        stmt = cached(
            notice_table,
            "insert",
            dialect,
            lambda: sa.insert(notice_table).returning(*cols, sort_by_parameter_order=True),
        )
        result = session.execute(stmt, rows)
    return [(row[0], row[1]) for row in result.all()]


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
    dialect = session.get_bind().dialect.name
    stmt = cached(
        delivery_table, "insert", dialect, lambda: sa.insert(delivery_table).returning(c.id)
    )
    # executemany with RETURNING gives the ids in the order of ``rows`` (SQLAlchemy's
    # sentinel, or one INSERT per row where the driver has none)
    return sorted(session.execute(stmt, rows).scalars().all())


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
    varying: dict[str, list[Any]] = {"user_id": user_ids, "send_status": send_statuses}
    fan_out = _fan_out_columns(session, notice_table, shared, varying, cols, dedupe=dedupe)
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
    :func:`insert_notice_columns`); the ids in the order of the columns."""
    varying: dict[str, list[Any]] = {
        "notice_id": notice_ids,
        "channel": channels,
        "target": targets,
    }
    fan_out = _fan_out_columns(session, delivery_table, shared, varying, (delivery_table.c.id,))
    if fan_out is not None:
        # ids grow in the SELECT's order (see insert_notices): sorted, they line up with
        # the columns, which a born-claimed send pairs them with
        return sorted(row[0] for row in fan_out)
    rows = [
        {**shared, "notice_id": n, "channel": c, "target": t}
        for n, c, t in zip(notice_ids, channels, targets, strict=True)
    ]
    return insert_deliveries(session, delivery_table, rows)


def insert_one(
    session: Session,
    notice_table: sa.Table,
    delivery_table: sa.Table,
    notice_values: dict[str, Any],
    delivery_shared: dict[str, Any],
    pairs: Sequence[tuple[str, str]],
    *,
    autocommit: bool = False,
) -> tuple[int, list[int]]:
    """Insert one notice (``notice_values``, no dedupe) and a delivery per ``(channel,
    target)`` of ``pairs`` (``delivery_shared`` values besides); return the notice id and
    the delivery ids in the order of ``pairs``.

    On PostgreSQL it is one statement, a CTE inserting the notice and, from its
    ``RETURNING``, the deliveries: a single emit's write is one round trip. Elsewhere one
    INSERT each. The statements are compiled once per set of columns and run as
    :class:`~notice.store.common.Prepared` ones.

    ``autocommit``: the session's transaction holds nothing else and is committed right
    after (``notice_event(commit=True)`` alone in it). When the write is that one
    statement, it then runs in autocommit mode, its own transaction: no ``BEGIN`` and
    ``COMMIT`` round trips (two of a write-only emit's three on PostgreSQL).
    """
    dialect = session.get_bind().dialect
    n_keys = tuple(notice_values)
    params = {"n_" + k: v for k, v in notice_values.items()}
    d_keys = tuple(delivery_shared)
    columns = f"{','.join(n_keys)}:{','.join(d_keys)}"
    if pairs and dialect.name == "postgresql":
        both = prepared(
            notice_table,
            "insert_one:" + columns,
            dialect,
            lambda: _insert_one_statement(notice_table, delivery_table, n_keys, d_keys),
        )
        if both is not None:
            conn = session.connection(execution_options=_AUTOCOMMIT if autocommit else None)
            params.update({"d_" + k: v for k, v in delivery_shared.items()})
            params["channels"] = [c for c, _ in pairs]
            params["targets"] = [t for _, t in pairs]
            rows = both.run(conn, params)
            # ids grow in the SELECT's order (see insert_notices)
            return rows[0][1], sorted(row[0] for row in rows)
    insert_notice = prepared(
        notice_table,
        "insert_notice:" + ",".join(n_keys),
        dialect,
        lambda: _insert_statement(notice_table, "n_", n_keys, set(n_keys)),
    )
    # without deliveries the notice's INSERT is the whole write
    alone = autocommit and not pairs and insert_notice is not None
    conn = session.connection(
        execution_options=_AUTOCOMMIT if alone and dialect.name == "postgresql" else None
    )
    if insert_notice is None:  # a column with a callable default: let SQLAlchemy fill it
        insert_notice_ = cached(
            notice_table,
            "insert_one:" + ",".join(n_keys),
            dialect.name,
            lambda: _insert_statement(notice_table, "n_", n_keys, None),
        )
        notice_id: int = session.execute(insert_notice_, params).scalar_one()
    else:
        notice_id = insert_notice.run(conn, params)[0][0]
    if not pairs:
        return notice_id, []
    if len(pairs) == 1:
        # one delivery (the common single emit): the same compiled INSERT each time
        given = ("notice_id", "channel", "target", *d_keys)
        insert_delivery = prepared(
            delivery_table,
            "insert_one:" + ",".join(d_keys),
            dialect,
            lambda: _insert_statement(delivery_table, "", given, set(given)),
        )
        if insert_delivery is not None:
            channel, target = pairs[0]
            values = {**delivery_shared, "notice_id": notice_id, "channel": channel}
            values["target"] = target
            return notice_id, [insert_delivery.run(conn, values)[0][0]]
    rows_ = [
        {**delivery_shared, "notice_id": notice_id, "channel": c, "target": t} for c, t in pairs
    ]
    return notice_id, insert_deliveries(session, delivery_table, rows_)


#: the session's connection for a write that is one statement (see insert_one)
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


def _insert_statement(
    table: sa.Table, prefix: str, keys: tuple[str, ...], given: set[str] | None
) -> Any:
    """``INSERT INTO table (keys...) VALUES (:<prefix>key...) RETURNING id``; with
    ``given``, the scalar Python defaults of the other columns written in as constants
    (None when one is callable: only SQLAlchemy's execution can fill that in)."""
    c = table.c
    defaults = {} if given is None else _scalar_defaults(table, {"id", *given})
    if defaults is None:
        return None
    values = {k: sa.bindparam(prefix + k, type_=c[k].type) for k in keys}
    return sa.insert(table).values({**values, **defaults}).returning(c.id)


def _insert_one_statement(
    notice_table: sa.Table,
    delivery_table: sa.Table,
    n_keys: tuple[str, ...],
    d_keys: tuple[str, ...],
) -> Any:
    """``WITH n AS (INSERT INTO notice ... RETURNING id) INSERT INTO notice_delivery
    SELECT ... FROM n, unnest(:channels, :targets) ... RETURNING id, notice_id``."""
    n, d = notice_table.c, delivery_table.c
    # SQLAlchemy cannot fill in the Python-side defaults of an INSERT inside a CTE, nor
    # of the outer INSERT ... SELECT beside it: the scalar ones are written in as
    # constants; a table with a callable one the caller left out takes the other path
    n_defaults = _scalar_defaults(notice_table, {"id", *n_keys})
    d_defaults = _scalar_defaults(delivery_table, {"id", "notice_id", "channel", "target", *d_keys})
    if n_defaults is None or d_defaults is None:
        return None
    written = (
        sa.insert(notice_table)
        .values(
            {
                **{k: sa.bindparam("n_" + k, type_=n[k].type) for k in n_keys},
                **n_defaults,
            }
        )
        .returning(n.id)
        .cte("n")
    )
    source = (
        sa.func.unnest(
            sa.bindparam("channels", type_=postgresql.ARRAY(d.channel.type)),
            sa.bindparam("targets", type_=postgresql.ARRAY(d.target.type)),
        )
        .table_valued("channel", "target", with_ordinality="ord")
        .render_derived(name="v")
    )
    constants = [sa.bindparam("d_" + k, type_=d[k].type) for k in d_keys]
    constants += list(d_defaults.values())
    select = (
        sa.select(written.c.id, source.c.channel, source.c.target, *constants)
        .select_from(written)
        .join(source, sa.true())
        .order_by(source.c.ord)
    )
    return (
        postgresql.insert(delivery_table)
        .from_select(["notice_id", "channel", "target", *d_keys, *d_defaults], select)
        .returning(d.id, d.notice_id)
    )


def _scalar_defaults(table: sa.Table, given: set[str]) -> dict[str, Any] | None:
    """Constants for the columns outside ``given`` that have a scalar Python default;
    None when one has a callable default (or a sequence)."""
    out: dict[str, Any] = {}
    for column in table.c:
        default = column.default
        if column.name in given or default is None:
            continue
        if not default.is_scalar:
            return None
        out[column.name] = sa.literal(default.arg, type_=column.type)  # type: ignore[attr-defined]
    return out


#: rows per ``INSERT ... SELECT`` of the fan-out path
FAN_OUT_CHUNK = 10_000


def _fan_out(
    session: Session,
    table: sa.Table,
    rows: list[dict[str, Any]],
    varying: tuple[str, ...],
    returning: tuple[sa.ColumnElement[Any], ...],
    *,
    dedupe: bool = False,
) -> list[Any] | None:
    """Insert rows that differ only in ``varying`` columns as ``INSERT ... SELECT`` over
    arrays of those columns (``unnest`` on PostgreSQL, ``json_each`` on SQLite); with
    ``dedupe`` (notices) skip the rows whose ``(user_id, dedupe_key)`` exists.

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
        session, table, shared, dict(zip(varying, columns, strict=True)), returning, dedupe=dedupe
    )


def _fan_out_columns(
    session: Session,
    table: sa.Table,
    shared: dict[str, Any],
    varying: dict[str, list[Any]],
    returning: tuple[sa.ColumnElement[Any], ...],
    *,
    dedupe: bool = False,
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
        # the types counted in C: a generator over 10,000 values was a tenth of a
        # write-only fan-out's client time
        kinds = set(map(type, values))
        if len(kinds) != 1 or kinds.pop() not in (int, str):
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
        if dedupe:
            stmt = _skip_duplicates(stmt, table)
        # all() fetches the RETURNING rows in one call, not one fetchone() per row
        out.extend(session.execute(stmt.returning(*returning)).all())
    return out


_MISSING = object()


def _skip_duplicates(stmt: Any, notice_table: sa.Table) -> Any:
    """``stmt`` (a dialect INSERT into ``notice``) skipping a row whose ``(user_id,
    dedupe_key)`` exists: ``ON CONFLICT DO NOTHING`` on ``uq_notice_user_dedupe``.

    The index is partial (``dedupe_key IS NOT NULL``), so the target names its
    predicate: without it PostgreSQL infers no index and SQLite matches none ("ON
    CONFLICT clause does not match any PRIMARY KEY or UNIQUE constraint")."""
    return stmt.on_conflict_do_nothing(
        index_elements=["user_id", "dedupe_key"],
        index_where=notice_table.c.dedupe_key.isnot(None),
    )


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


def delete_notices(
    session: Session, notice_table: sa.Table, delivery_table: sa.Table, ids: Sequence[int]
) -> None:
    """Delete notices and their deliveries (explicitly: SQLite cascades only with
    ``foreign_keys=ON``); undoes a publish whose ``notification`` receiver raised."""
    dialect = session.get_bind().dialect.name

    def build() -> tuple[Any, Any]:
        return (
            sa.delete(delivery_table).where(in_list(delivery_table.c.notice_id, "ids", dialect)),
            sa.delete(notice_table).where(in_list(notice_table.c.id, "ids", dialect)),
        )

    deliveries, notices = cached(notice_table, "delete", dialect, build)
    session.execute(deliveries, {"ids": list(ids)})
    session.execute(notices, {"ids": list(ids)})


def deduplicated_ids(
    session: Session, notice_table: sa.Table, user_ids: Sequence[Any], dedupe_key: str
) -> list[int]:
    """Ids of the notices ``user_ids`` already have under ``dedupe_key`` (the ones a
    deduplicated insert skipped)."""
    c = notice_table.c
    dialect = session.get_bind().dialect.name
    stmt = cached(
        notice_table,
        "deduplicated",
        dialect,
        lambda: sa.select(c.id).where(
            in_list(c.user_id, "users", dialect), c.dedupe_key == sa.bindparam("key")
        ),
    )
    return list(session.execute(stmt, {"users": list(user_ids), "key": dedupe_key}).scalars())


def release_dedupe_key(
    session: Session,
    notice_table: sa.Table,
    user_ids: Sequence[Any],
    dedupe_key: str,
    now: datetime,
    *,
    created_before: datetime | None = None,
) -> int:
    """Free ``dedupe_key`` on the expired notices of ``user_ids`` (their key becomes
    NULL), so an expired notice never deduplicates a new one; with ``created_before``
    (a ``dedupe_for`` window) also on the ones created before it. Returns the rows freed.

    Runs in the publishing transaction before the deduplicated insert: two publishers
    racing on the same key wait on the same row lock, and the second then sees the key
    already freed and the first one's new row as the live one.
    """
    c = notice_table.c
    dialect = session.get_bind().dialect.name
    stmt = cached(
        notice_table,
        "release_dedupe",
        dialect,
        lambda: (
            sa.update(notice_table)
            .where(
                in_list(c.user_id, "users", dialect),
                c.dedupe_key == sa.bindparam("key"),
                c.expires_at.is_not(None),
                c.expires_at <= sa.bindparam("now"),
            )
            .values(dedupe_key=None)
        ),
    )
    params = {"users": list(user_ids), "key": dedupe_key, "now": now}
    if created_before is not None:
        stmt = cached(
            notice_table,
            "release_dedupe_window",
            dialect,
            lambda: (
                sa.update(notice_table)
                .where(
                    in_list(c.user_id, "users", dialect),
                    c.dedupe_key == sa.bindparam("key"),
                    sa.or_(
                        sa.and_(c.expires_at.is_not(None), c.expires_at <= sa.bindparam("now")),
                        c.create_at < sa.bindparam("before"),
                    ),
                )
                .values(dedupe_key=None)
            ),
        )
        params["before"] = created_before
    result = session.execute(stmt, params)
    return int(getattr(result, "rowcount", 0) or 0)
