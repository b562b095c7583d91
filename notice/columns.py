"""The column kit every table of the library shares: aware UTC timestamps, ids that
fit each database, and the clock."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no time zones: we store naive UTC there and attach UTC on the way out.
    Naive datetimes are refused on the way in, so local times never sneak in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Alembic's autogenerate writes a type from outside SQLAlchemy as
        # f"{type_.__module__}.{type_!r}" and imports nothing for it: an app's
        # `flask db migrate` wrote `notice.columns.UTCDateTime()` and its upgrade failed
        # with "NameError: name 'notice' is not defined". Rendered as its impl instead,
        # `sa.DateTime(timezone=True)` (the same DDL), a migration needs only the
        # `import sqlalchemy as sa` every Alembic template has. The instance attribute
        # is what Alembic reads; the class keeps its real module (pickling, docs).
        self.__module__ = "sa"

    def __repr__(self) -> str:
        return repr(self.impl_instance)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: ``__table_args__`` entry of every table whose ids are referenced (a delivery's
#: ``target``) or shown to clients (``Last-Event-ID``, API ids). Without AUTOINCREMENT
#: SQLite hands the largest id out again once its row is deleted: a retry meant for a
#: removed push subscription then reached the next (another user's) device, and a
#: stream's ``Last-Event-ID`` skipped the notice that took a deleted notice's id.
#: PostgreSQL's sequences never reuse ids; this only changes SQLite's DDL.
NEVER_REUSE_IDS: dict[str, bool] = {"sqlite_autoincrement": True}
