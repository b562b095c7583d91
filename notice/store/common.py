"""What every query module shares: one chunk size, one visibility rule, one write-lock
helper, one dialect-switch upsert."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

#: ids per ``IN (...)`` list; keeps statements well under every driver's parameter limit
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def visible(notice: Any, now: datetime) -> sa.ColumnElement[bool]:
    """The one visibility rule of inboxes, counts and digests: not expired at ``now``.

    ``notice`` is the model class or its table.
    """
    c = getattr(notice, "c", notice)
    return sa.or_(c.expires_at.is_(None), c.expires_at > now)


def begin_write(conn: Connection) -> None:
    """Start ``conn``'s transaction holding the write lock on SQLite.

    Two read-then-write transactions that both start deferred would each read, then
    fail to upgrade ("database is locked"); ``BEGIN IMMEDIATE`` makes them queue on the
    busy timeout instead. PostgreSQL locks rows as it goes: nothing to do.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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
