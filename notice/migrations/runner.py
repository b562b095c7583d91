"""Run the library's Alembic history on an app's database (``flask notice db``).

Needs Alembic (``pip install notice[migrations]``). Every command takes the app whose
``db.engine`` it runs on; the app's ``notice.user_id`` column tells the revisions the
user id type and foreign key the app chose (:mod:`notice.migrations.app_columns`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from ..state import state_of
from ..store.schema import foreign_keys_off, migration_lock
from . import HISTORY, TABLES, VERSION_TABLE
from .app_columns import USER_COLUMN


def alembic_config(app: Flask | None = None, stdout: TextIO | None = None) -> Config:
    """An Alembic ``Config`` for our history (and ``app``'s models, when given)."""
    config = Config(stdout=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", str(HISTORY))
    if app is not None:
        state = state_of(app)
        config.attributes["metadata"] = state.db.metadata
        config.attributes[USER_COLUMN] = state.models.Notice.__table__.c.user_id
    return config


@contextmanager
def connected(app: Flask, config: Config) -> Iterator[Any]:
    """A connection to ``app``'s database for ``config``'s run: one transaction under
    the migration lock, committed at the end."""
    engine = state_of(app).db.engine
    with engine.connect() as connection, foreign_keys_off(connection):
        migration_lock(connection)
        config.attributes["connection"] = connection
        yield connection
        connection.commit()


def _run(app: Flask, stdout: TextIO | None, fn: Callable[[Config], None]) -> None:
    config = alembic_config(app, stdout)
    with app.app_context(), connected(app, config):
        fn(config)


def upgrade(app: Flask, revision: str = "head", stdout: TextIO | None = None) -> None:
    """Bring ``app``'s library tables up to ``revision`` (default: the newest)."""
    _run(app, stdout, lambda config: command.upgrade(config, revision))


def downgrade(app: Flask, revision: str, stdout: TextIO | None = None) -> None:
    """Take ``app``'s library tables back to ``revision`` (``base``: drop them all)."""
    _run(app, stdout, lambda config: command.downgrade(config, revision))


def stamp(app: Flask, revision: str, stdout: TextIO | None = None) -> None:
    """Record ``revision`` as applied without running anything (a 0.1 database made
    by ``db.create_all()`` is ``0001``)."""
    _run(app, stdout, lambda config: command.stamp(config, revision))


def current(app: Flask) -> tuple[str, ...]:
    """The revisions ``app``'s database is at (empty: none applied or stamped)."""
    with app.app_context(), state_of(app).db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return tuple(context.get_current_heads())


def head() -> str:
    """The newest revision of the library's history."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def history() -> list[tuple[str, str]]:
    """``(revision, summary)`` of every revision, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [(rev.revision, rev.doc) for rev in reversed(list(script.walk_revisions()))]


def unrecorded_revision(app: Flask) -> str | None:
    """For library tables made by ``db.create_all()`` (they exist, no revision is
    recorded): the revision they look like, to ``stamp`` before upgrading. None when a
    revision is recorded or there are no library tables.

    Upgrading such a database would fail on its first ``CREATE TABLE`` ("already
    exists"); the CLI says what to stamp instead.
    """
    if current(app):
        return None
    with app.app_context():
        inspector = sa.inspect(state_of(app).db.engine)
        if not TABLES & set(inspector.get_table_names()):
            return None
        delivery = {c["name"] for c in inspector.get_columns("notice_delivery")}
        notice = {c["name"] for c in inspector.get_columns("notice")}
        tables = set(inspector.get_table_names())
        delivery_indexes = {ix["name"] for ix in inspector.get_indexes("notice_delivery")}
    # each revision's first new column (or table) tells it apart from the one before;
    # 0008 added none: it dropped ix_notice_delivery_notice_id
    if "group_key" in notice and "ix_notice_delivery_notice_id" not in delivery_indexes:
        return "0008"
    if "group_key" in notice:
        return "0007"
    if "visible_at" in notice:
        return "0006"
    if "actor_type" in notice:
        return "0005"
    if "notice_device" in tables:
        return "0004"
    if "seen_at" in notice:
        return "0003"
    return "0002" if "lease_expiries" in delivery else "0001"
