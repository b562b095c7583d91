"""Schema-level statements: SQLite's foreign-key switch around a migration, and the
one place that recognises "this table does not exist" (:class:`TablesMissing`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Connection, ExceptionContext

from ..errors import TablesMissing
from ..migrations import TABLES
from .common import begin_write

# SQLite: "no such table: notice"; PostgreSQL (UndefinedTable, SQLSTATE 42P01):
# 'relation "notice" does not exist'
_MISSING = re.compile(
    r'no such table: (?:main\.)?"?(\w+)"?|relation "(?:\w+\.)?(\w+)" does not exist'
)


def missing_table(exc: BaseException) -> str | None:
    """The table a database error says does not exist, or None for any other error."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    text = str(exc)
    if code not in (None, "42P01"):
        return None
    match = _MISSING.search(text)
    if match is None:
        return None
    return match.group(1) or match.group(2)


@contextmanager
def foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: switch foreign keys off while the block runs. A migration rebuilding a
    table (copy, drop, rename) would otherwise fire ``ON DELETE CASCADE`` when the old
    table is dropped and delete every row referencing it (each notice's deliveries).
    No-op elsewhere. The pragma works only outside a transaction: it is committed."""
    if connection.dialect.name != "sqlite":
        yield
        return
    _pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if connection.in_transaction():
            connection.rollback()
        _pragma(connection, "PRAGMA foreign_keys=ON")


#: the PostgreSQL advisory lock key of a migration run ("notice" in ASCII)
MIGRATION_LOCK = 0x6E6F74696365


def migration_lock(connection: Connection) -> None:
    """Start the migration's transaction holding a lock no other migration run can
    take. Several app instances that each run ``flask notice db upgrade`` as they
    deploy would otherwise race: both see revision N, both run N+1, and the second
    fails on "already exists" halfway. With the lock the second waits, then finds
    the database at head. PostgreSQL: a transaction-level advisory lock (released by
    the commit); SQLite: the write lock (``BEGIN IMMEDIATE``, waiting on the busy
    timeout)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
    else:
        begin_write(connection)


def _pragma(connection: Connection, statement: str) -> Any:
    connection.exec_driver_sql(statement)
    connection.commit()


def watch_for_missing_tables(db: Any, app: Flask) -> None:
    """Make a missing library table a :class:`TablesMissing` on every engine of ``app``:
    one listener at the boundary instead of a check at each call site. Errors about
    any other table (the app's own) pass through unchanged."""
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        if not sa.event.contains(engine, "handle_error", _tables_missing):
            sa.event.listen(engine, "handle_error", _tables_missing)


def _tables_missing(context: ExceptionContext) -> None:
    table = missing_table(context.original_exception)
    if table in TABLES:
        raise TablesMissing(table) from context.sqlalchemy_exception
