"""The library's own Alembic migration history, and the hooks an app's migrations need.

``flask notice db upgrade`` runs the revisions in ``history/versions`` on the app's
``db.engine``, recording them in :data:`VERSION_TABLE` (never the app's
``alembic_version``, so the two histories never collide). An app that also runs its own
Alembic or Flask-Migrate history passes :func:`include_object` to
``context.configure`` in its ``migrations/env.py``, so its autogenerate leaves our
tables to us. Nothing here imports Alembic: the ``migrations`` extra is only needed
to run the commands.

Changing a model means adding a revision (``tests/test_migrations.py`` fails until the
head agrees with the models): upgrade a database to head, then inside
``runner.connected(app, config)`` call
``alembic.command.revision(config, "what changed", autogenerate=True, rev_id="000N")``
with ``config = runner.alembic_config(app)``. Review what it wrote: user id columns
become ``user_id(...)`` / ``user_id_type()`` (the app's choice, not this database's),
types stay plain SQLAlchemy, and SQLite-only DDL (``AUTOINCREMENT``, CHECK, a partial
index) is not detected; write ``downgrade()`` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the tables the library creates (every wing's, whichever senders an app uses)
TABLES: frozenset[str] = frozenset(
    {
        "notice",
        "notice_delivery",
        "notice_push_subscription",
        "notice_device",
        "notice_topic",
        "notice_topic_subscription",
        "notice_topic_message",
        "notice_preference",
        "notice_digest",
        "notice_quiet_hours",
    }
)

#: the table recording which of our revisions a database is at
VERSION_TABLE = "notice_alembic_version"

#: the Alembic script directory (``env.py``, ``script.py.mako``, ``versions/``); not a
#: Python package, so nothing imports ``env.py`` outside an Alembic run
HISTORY = Path(__file__).resolve().parent / "history"


def is_library_table(name: str | None) -> bool:
    """Whether ``name`` is one of our tables or our version table."""
    return name in TABLES or name == VERSION_TABLE


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """``include_object`` hook for an app's own ``env.py``: skip the library's tables
    (and their columns, indexes and constraints) so the app's autogenerate neither
    creates nor drops them; ``flask notice db upgrade`` owns them.

    ::

        from notice.migrations import include_object
        context.configure(..., include_object=include_object)
    """
    if type_ == "table":
        return not is_library_table(name)
    table = getattr(obj, "table", None)
    return table is None or not is_library_table(table.name)


def only_library_objects(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """The opposite filter, used by our own ``env.py``: look at our tables only, so our
    autogenerate and comparisons never touch the app's tables."""
    if type_ == "table":
        return name in TABLES
    table = getattr(obj, "table", None)
    return table is None or table.name in TABLES
