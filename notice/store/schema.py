"""Schema-level statements: SQLite's foreign-key switch around a migration, and the
one place that recognises "this table does not exist"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection

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


def _pragma(connection: Connection, statement: str) -> Any:
    connection.exec_driver_sql(statement)
    connection.commit()
