"""What every query module shares: one chunk size, one visibility rule, one write-lock
helper, one retrying short transaction, one in-order row lock, one dialect-switch
upsert."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger("notice")

T = TypeVar("T")

#: ids per statement where a list is split up (a fan-out's write and send stream their
#: recipients in chunks of this size); keeps expanded lists under every driver's limit
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _JSONList(TypeDecorator[Sequence[Any]]):
    """A list bound as one JSON text parameter (SQLite's side of :func:`in_list`)."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Any) -> str | None:
        return None if value is None else json.dumps(list(value))


def drop_least_used(session: Any, model: Any, user_id: Any, last_used: Any, *, keep: int) -> None:
    """Delete ``user_id``'s rows of ``model`` (push subscriptions, mobile devices)
    beyond the ``keep`` most recently used: ``last_used``, else ``created_at``."""
    ids = session.execute(
        sa.select(model.id)
        .where(model.user_id == user_id)
        .order_by(sa.func.coalesce(last_used, model.created_at).desc(), model.id.desc())
    ).scalars()
    stale = list(ids)[keep:]
    if stale:
        session.execute(sa.delete(model).where(model.id.in_(stale)))


def ids_by_user(
    session: Any, table: sa.Table, user_ids: Sequence[Any], *where: Any
) -> dict[Any, list[str]]:
    """Each user's row ids of ``table`` (matching ``where``) as strings, oldest first;
    users without one are left out. Runs in the caller's (publishing) transaction.

    Users are matched by ``str``: callers may hold ids as "7" where the database says 7;
    the result is keyed by the ids as given.
    """
    by_user: dict[str, list[str]] = {}
    for part in chunks(list(dict.fromkeys(user_ids))):
        rows = session.execute(
            sa.select(table.c.user_id, table.c.id)
            .where(table.c.user_id.in_(part), *where)
            .order_by(table.c.id)
        )
        for user_id, row_id in rows:
            by_user.setdefault(str(user_id), []).append(str(row_id))
    return {u: by_user[str(u)] for u in user_ids if str(u) in by_user}


def in_list(column: Any, name: str, dialect: str) -> sa.ColumnElement[bool]:
    """``column`` is one of the list bound as parameter ``name``: one parameter, however
    long the list (PostgreSQL ``column = ANY(:name)``, SQLite ``column IN (SELECT value
    FROM json_each(:name))``).

    Expanded ``IN (:p1, ..., :p500)`` lists made a statement per list length that the
    driver parsed again each time: about half of delivery's client CPU on PostgreSQL
    during a fan-out. The expression depends on ``dialect`` (its name), so statements
    using it are built per dialect (:func:`cached`).
    """
    if dialect == "postgresql":
        array = sa.bindparam(name, type_=postgresql.ARRAY(column.type))
        return column == sa.any_(array)  # type: ignore[no-any-return]
    values = sa.func.json_each(sa.bindparam(name, type_=_JSONList())).table_valued("value")
    return column.in_(sa.select(values.c.value))  # type: ignore[no-any-return]


#: ``table.info`` key of the statements :func:`cached` keeps
_STATEMENTS = "notice.statements"


def cached(table: sa.Table, key: str, dialect: str, build: Callable[[], T]) -> T:
    """The statement ``build()`` makes for ``table`` and ``dialect``, built once.

    Kept on the table, so it goes when the models go; building an UPDATE with its
    subqueries cost more than running it for one notice.
    """
    store: dict[tuple[str, str], Any] = table.info.setdefault(_STATEMENTS, {})
    try:
        return store[(key, dialect)]  # type: ignore[no-any-return]
    except KeyError:
        stmt = store[(key, dialect)] = build()  # None too: "no such statement"
        return stmt


class Prepared:
    """A statement compiled once for one dialect, run with ``exec_driver_sql``.

    For the few statements every emit runs: ``Session.execute`` of a cached statement
    still cost ~130 µs over the driver's own call per statement on SQLite (the ORM's
    execution layer, then the compiled-statement context), about a sixth of a sync emit.
    ``exec_driver_sql`` keeps what matters of the engine — its events (query recorders,
    tracing, the tests' statement counts), error wrapping and invalidating a dead
    connection — and skips the rest. The parameters go through the statement's own bind
    processors, so values bind as with ``execute``; result rows are the driver's (use
    it for ids and counts, not for typed columns).
    """

    __slots__ = ("sql", "_order", "_processors", "_fixed")

    def __init__(self, stmt: Any, dialect: Any) -> None:
        compiled = stmt.compile(dialect=dialect)
        if (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or compiled.post_compile_params
        ):
            # the execution context would fill these in per call
            raise ValueError("a statement with Python-side defaults or expanding binds")
        self.sql: str = compiled.string
        #: parameter names in the driver's positional order; None: named parameters
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        processors: dict[str, Callable[[Any], Any]] = {}
        #: binds that carry their own value (constants such as a column's default)
        fixed: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:
                value = bind.effective_value
                fixed[name] = value if process is None else process(value)
            elif process is not None:
                processors[name] = process
        self._processors = processors
        self._fixed = fixed

    def run(self, conn: Connection, values: dict[str, Any]) -> list[Any]:
        """Run with ``values`` (by bind name) on ``conn``; the rows it returned (the
        driver's tuples; empty for a statement without ``RETURNING``)."""
        processors = self._processors
        bound = {k: (processors[k](v) if k in processors else v) for k, v in values.items()}
        if self._fixed:
            bound.update(self._fixed)
        params: Any = bound if self._order is None else tuple([bound[k] for k in self._order])
        if conn._has_events or conn.engine._has_events:
            # a listener (query recorder, tracer, a test counting statements) sees it
            result = conn.exec_driver_sql(self.sql, params)
            return list(result.all()) if result.returns_rows else []
        return self._on_driver(conn, params)

    def _on_driver(self, conn: Connection, params: Any) -> list[Any]:
        """Straight on the driver's cursor: what ``exec_driver_sql`` does, less its
        execution context and result object (most of its cost for a one-row INSERT);
        a driver error comes out as SQLAlchemy's, the connection invalidated when it is
        gone, as ``execute`` would leave them."""
        if not conn.in_transaction():
            # as execute() would: begun, so conn.commit() commits what runs here (the
            # driver has begun its own transaction either way)
            conn.begin()
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        dialect = conn.dialect
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        except dialect.loaded_dbapi.Error as exc:
            gone = dialect.is_disconnect(exc, dbapi_conn, cursor)
            if gone:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                self.sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()


def prepared(
    table: sa.Table, key: str, dialect: Any, build: Callable[[], Any]
) -> Prepared | None:
    """:class:`Prepared` of the statement ``build()`` makes, once per table, ``key`` and
    dialect (with its driver: their parameter styles differ); None when ``build()``
    gives None ("no such statement here"). Kept as :func:`cached` keeps statements."""

    def compile_once() -> Prepared | None:
        stmt = build()
        return None if stmt is None else Prepared(stmt, dialect)

    return cached(table, "prepared:" + key, f"{dialect.name}+{dialect.driver}", compile_once)


def visible(notice: Any, now: datetime) -> sa.ColumnElement[bool]:
    """The one visibility rule of inboxes, counts and digests: shown by ``now`` (its
    ``visible_at`` came), not expired at ``now`` and not archived.

    ``notice`` is the model class or its table.
    """
    c = getattr(notice, "c", notice)
    return sa.and_(not_expired(c, now), c.archived_at.is_(None))


def not_expired(notice: Any, now: datetime) -> sa.ColumnElement[bool]:
    """:func:`visible` but for archiving, for a list that asks for archived notices
    too: shown by ``now`` and not expired."""
    c = getattr(notice, "c", notice)
    return sa.and_(shown(c, now), sa.or_(c.expires_at.is_(None), c.expires_at > now))


def shown(notice: Any, now: datetime) -> sa.ColumnElement[bool]:
    """A scheduled notice's time came (``notice_event(visible_at=...)``), whether the
    sweeper has announced it yet or not (it clears ``visible_at`` once it has); a list
    that includes expired notices still leaves out the ones not shown yet."""
    c = getattr(notice, "c", notice)
    return sa.or_(c.visible_at.is_(None), c.visible_at <= now)


def inline(value: str) -> sa.BindParameter[str]:
    """A reference type or id (:mod:`notice.references`) rendered into the statement
    text (quoted by SQLAlchemy) rather than bound: psycopg prepares a statement run
    five times, and PostgreSQL's generic plan for a prepared ``target_id = $1``
    guesses an average target's many rows, so it walked the user's newest-first index
    and filtered (25 ms instead of 3 for a user with 50,000 notices;
    bench/references.py). With the values in the text every plan sees them."""
    return sa.bindparam(None, value, type_=sa.String(), literal_execute=True)


def update_mine(
    session: Any, notice: Any, mine: Any, ids: Iterable[int] | None, values: dict[str, Any]
) -> int:
    """Set ``values`` on the rows matching ``mine`` (a user's own rows in some state),
    all of them or only ``ids``; return how many changed.

    On PostgreSQL the rows are locked in id order first (:func:`lock_ids`), then
    changed by id: an ``UPDATE`` alone locks them in the order its plan visits them,
    which deadlocked against delivery ``finish`` (id order) and against a second tab's
    "mark all read". The ``UPDATE`` re-checks ``mine`` on each locked row, so no update
    is lost; a row arriving between the two statements is left as it is.
    """
    table = notice.__table__
    c = table.c
    base = sa.update(table).where(mine).values(**values)
    dialect = session.get_bind(mapper=notice).dialect.name
    if dialect == "sqlite":
        # one writer at a time: no lock order to keep. A SELECT first would also make
        # this a read-then-write transaction, which SQLite fails at once ("database is
        # locked") when another writer commits in between
        if ids is None:
            return int(session.execute(base).rowcount)
        targets: Sequence[int] = sorted(set(ids))
    elif ids is None:
        targets = lock_ids(session, table, mine)
    else:
        targets = lock_ids(
            session,
            table,
            sa.and_(mine, in_list(c.id, "ids", dialect)),
            params={"ids": sorted(set(ids))},
        )
    if not targets:
        return 0
    # the ids as one array parameter (in_list): one statement however many there are
    stmt = base.where(in_list(c.id, "ids", dialect))
    return int(session.execute(stmt, {"ids": list(targets)}).rowcount)


def begin_write(conn: Connection) -> None:
    """Start ``conn``'s transaction holding the write lock on SQLite.

    Two read-then-write transactions that both start deferred would each read, then
    fail to upgrade ("database is locked"); ``BEGIN IMMEDIATE`` makes them queue on the
    busy timeout instead. PostgreSQL locks rows as it goes: nothing to do.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


#: SQLSTATEs of a transaction PostgreSQL rolled back to break a conflict between
#: transactions (serialization_failure, deadlock_detected): running it again is the cure
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
_SQLITE_BUSY = 5
#: base pause before running a conflicted transaction again, in seconds (jittered, and
#: longer each time, so the two sides of a deadlock do not meet again in step)
RETRY_PAUSE = 0.05


def lost_connection(exc: BaseException) -> bool:
    """``exc`` says the connection is gone (SQLAlchemy invalidated it and the pool)."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def conflict(exc: BaseException) -> bool:
    """``exc`` is a deadlock or serialization failure (PostgreSQL), or SQLite's write
    lock still taken when the busy timeout ran out ("database is locked")."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return sqlstate in _CONFLICT_SQLSTATES
    code = getattr(orig, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_BUSY  # SQLITE_BUSY and its extended codes
    return type(orig).__module__ == "sqlite3" and "database is locked" in str(orig)


def run_transaction(
    engine: Engine,
    work: Callable[[Connection], T],
    *,
    write: bool = False,
    attempts: int = 2,
    conflicts: bool = False,
    what: str = "a transaction",
    autocommit: bool = False,
) -> T:
    """Run ``work(conn)`` in a short transaction of its own, commit, return its result.

    When the connection turns out dead (a pooled connection whose server process was
    ended, a restarted server) the transaction runs again on a fresh one; with
    ``conflicts`` also after a deadlock, a serialization failure or SQLite's lock
    timeout, after a short pause. ``attempts`` runs in all; then the error propagates.

    Only for work that is safe to run twice: a failed run was rolled back whole, except
    when the connection died during COMMIT, which may have committed it.

    :param write: take SQLite's write lock first (:func:`begin_write`).
    :param autocommit: ``work`` runs one statement, its own transaction on the server:
        no ``BEGIN`` and ``COMMIT`` round trips around it (PostgreSQL).
    """
    attempt = 1
    while True:
        try:
            with engine.connect() as conn:
                if autocommit:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                if write:
                    begin_write(conn)
                result = work(conn)
                conn.commit()
            return result
        except DBAPIError as exc:
            lost = lost_connection(exc)
            if attempt >= attempts or not (lost or (conflicts and conflict(exc))):
                raise
            reason = "connection lost" if lost else type(exc.orig).__name__
            logger.warning(
                "%s failed (%s); running it again (attempt %d of %d)",
                what,
                reason,
                attempt + 1,
                attempts,
            )
            if not lost:  # a lost connection's pool is already refreshed: go at once
                time.sleep(RETRY_PAUSE * attempt * random.uniform(0.5, 1.5))
            attempt += 1


def lock_ids(
    conn: Any,
    table: sa.Table,
    cond: sa.ColumnElement[bool],
    *,
    limit: int | None = None,
    params: dict[str, Any] | None = None,
) -> list[int]:
    """Lock the rows of ``table`` matching ``cond`` in ascending id order and return
    their ids (``SELECT id ... ORDER BY id FOR UPDATE``); ``conn`` is a connection or
    a session.

    Every statement that locks notice rows takes them this way, then changes them by
    id: two transactions locking overlapping rows in different orders (an ``UPDATE``
    locks in whatever order its plan visits rows) deadlock, and PostgreSQL aborts one.
    On SQLite ``FOR UPDATE`` is left out (writers are serialised anyway). ``params``
    binds the parameters ``cond`` names (an :func:`in_list` list, say).
    """
    stmt = sa.select(table.c.id).where(cond).order_by(table.c.id).with_for_update()
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(conn.execute(stmt, params or {}).scalars())


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ``escape="\\"``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def dialect_insert(bind: Any, table: sa.Table) -> Any:
    """An INSERT of the bind's dialect (for ``ON CONFLICT``); PostgreSQL and SQLite."""
    name = bind.get_bind().dialect.name if hasattr(bind, "get_bind") else bind.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"notice needs PostgreSQL or SQLite for this, not {name}")


def upsert(
    bind: Any,
    table: sa.Table,
    values: dict[str, Any],
    *,
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert ``values`` or, when a row with the same ``keys`` exists, update the
    ``update`` columns: one race-free statement (``ON CONFLICT DO UPDATE``)."""
    stmt = dialect_insert(bind, table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in update}
    )
    bind.execute(stmt)


def tune_sqlite_connection(dbapi_conn: Any) -> None:
    """SQLite pragmas of every new connection: enforce foreign keys (cascades), WAL so
    readers don't block the writer, and a busy timeout so concurrent claimers wait
    instead of failing ("database is locked")."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    if cur.execute("PRAGMA journal_mode").fetchone()[0] != "memory":
        cur.execute("PRAGMA journal_mode=WAL")
    cur.close()
