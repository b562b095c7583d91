"""The library's Alembic history (notice/migrations) on SQLite and PostgreSQL: upgrade
from empty, downgrade to empty, the head revision agrees with the models, a 0.1
database stamped ``0001`` upgrades with its rows, the ``flask notice db`` commands, and
an app's own Flask-Migrate autogenerate with and without our ``include_object``."""

from __future__ import annotations

import logging
import textwrap
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, notice_event
from notice.migrations import TABLES, VERSION_TABLE, include_object, only_library_objects, runner

APP_TABLES = {"app_user"}


def _make_app(db_url: str) -> Flask:
    app = Flask("migrated")
    app.config.update(SQLALCHEMY_DATABASE_URI=db_url, SECRET_KEY="test", NOTICE_SENDERS=["memory"])
    db = SQLAlchemy()

    class User(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True)

    notices = Notices(db=db, user_table="app_user.id")
    db.init_app(app)
    notices.init_app(app)
    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    app.User = User  # type: ignore[attr-defined]
    with app.app_context():
        # the app's own table comes first: ours reference it
        User.__table__.create(db.engine)
    return app


@pytest.fixture
def app(db_url: str) -> Iterator[Flask]:
    app = _make_app(db_url)
    yield app
    app.notices.state(app).dispatcher.shutdown()  # type: ignore[attr-defined]
    with app.app_context():
        app.db.engine.dispose()  # type: ignore[attr-defined]


def _tables(app: Flask) -> set[str]:
    with app.app_context():
        return set(sa.inspect(app.db.engine).get_table_names())  # type: ignore[attr-defined]


def _columns(app: Flask, table: str) -> set[str]:
    with app.app_context():
        inspector = sa.inspect(app.db.engine)  # type: ignore[attr-defined]
        return {column["name"] for column in inspector.get_columns(table)}


def _differences(app: Flask) -> list[Any]:
    """What Alembic's autogenerate finds between the models and the database."""
    with app.app_context(), app.db.engine.connect() as conn:  # type: ignore[attr-defined]
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_object": only_library_objects,
            },
        )
        return compare_metadata(context, app.db.metadata)  # type: ignore[attr-defined]


def _clauses(sql: str) -> frozenset[str]:
    """The top-level parts of a ``CREATE`` statement's parentheses (columns and
    constraints), without quotes: a table rebuilt by a migration lists added columns
    last, which is no difference."""
    sql = " ".join(sql.replace('"', "").split())
    head, _, body = sql.partition("(")
    parts, depth, current = [head.strip()], 0, ""
    for char in body.rstrip(")").rstrip():
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current.strip())
    return frozenset(parts)


_PG_FACTS = (
    "SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,"
    " column_default FROM information_schema.columns WHERE table_name = ANY(:tables)",
    "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:tables)",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE conrelid::regclass::text = ANY(:tables)",
)


def _schema(app: Flask) -> set[Any]:
    """Every column, index and constraint of the library's tables as the database
    reports it, including what Alembic's comparison skips: CHECK constraints, the
    partial index's WHERE, ON DELETE, SQLite's AUTOINCREMENT."""
    with app.app_context(), app.db.engine.connect() as conn:  # type: ignore[attr-defined]
        if conn.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            )
            return {
                (kind, name, table, _clauses(sql) if kind == "table" else " ".join(sql.split()))
                for kind, name, table, sql in rows
                if table in TABLES
            }
        tables = {"tables": sorted(TABLES)}
        return {tuple(row) for query in _PG_FACTS for row in conn.execute(sa.text(query), tables)}


def _check_same_as_create_all(app: Flask) -> None:
    """The migrated schema is exactly what ``db.create_all()`` makes of the models."""
    migrated = _schema(app)
    assert all(any(table in fact for fact in migrated) for table in TABLES)
    runner.downgrade(app, "base")
    assert _schema(app) == set()
    with app.app_context():
        app.db.create_all()  # type: ignore[attr-defined]
    assert migrated == _schema(app)


def test_upgrade_from_empty_creates_the_models_tables(app: Flask) -> None:
    assert _tables(app) == APP_TABLES
    runner.upgrade(app)
    assert _tables(app) == APP_TABLES | TABLES | {VERSION_TABLE}
    assert runner.current(app) == (runner.head(),)
    assert _differences(app) == []
    _check_same_as_create_all(app)


def test_the_head_agrees_with_create_all(app: Flask) -> None:
    """A database made by ``db.create_all()`` needs no change either: the check above
    is not blind (it finds a difference as soon as one column is missing)."""
    with app.app_context():
        app.db.create_all()  # type: ignore[attr-defined]
    assert _differences(app) == []
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("ALTER TABLE notice_digest DROP COLUMN refused_error")
    (diff,) = _differences(app)
    assert diff[0] == "add_column" and diff[3].name == "refused_error"


def test_downgrade_to_base_leaves_no_library_table(app: Flask) -> None:
    runner.upgrade(app)
    runner.downgrade(app, "base")
    assert _tables(app) - {VERSION_TABLE} == APP_TABLES
    assert runner.current(app) == ()
    runner.upgrade(app)  # and back: every downgrade left a state upgrade accepts
    assert _differences(app) == []


def _insert_01_rows(app: Flask) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5)
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("INSERT INTO app_user (id) VALUES (7)"))
        conn.execute(
            sa.text(
                "INSERT INTO notice (user_id, subject, content, notice_type, read_status,"
                " send_status, create_at, update_at) VALUES"
                " (7, 'hello', 'body', 'Comment', 'Unread', 'Wait', :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO notice_delivery (notice_id, channel, target, status, attempts,"
                " next_attempt_at, create_at, update_at) VALUES"
                " (1, 'memory', '', 'Wait', 2, :now, :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO notice_digest (user_id, frequency, update_at)"
                " VALUES (7, 'daily', :now)"
            ),
            {"now": now},
        )


def test_a_01_database_stamped_0001_upgrades_with_its_rows(app: Flask) -> None:
    # a database as 0.1's create_all() left it: the 0001 tables, no version table
    runner.upgrade(app, "0001")
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    _insert_01_rows(app)
    assert "lease_expiries" not in _columns(app, "notice_delivery")
    runner.stamp(app, "0001")
    runner.upgrade(app)
    assert runner.current(app) == (runner.head(),)
    assert _differences(app) == []
    with app.app_context():
        notices = app.notices  # type: ignore[attr-defined]
        (notice,) = notices.list_notices(7)
        assert (notice.subject, notice.content) == ("hello", "body")
        assert notice.create_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        # the table rebuild kept the notice's delivery (no cascade on the copy's drop)
        (delivery,) = notices.Delivery.query.all()
        assert (delivery.notice_id, delivery.attempts, delivery.lease_expiries) == (1, 2, 0)
        digest = notices.preference_models.DigestSetting.query.one()
        assert (digest.frequency, digest.refused_address) == ("daily", None)
        # a new notice gets a new id, and deleting the newest never hands its id out again
        notices.Notice.query.filter_by(id=1).delete()
        app.db.session.commit()  # type: ignore[attr-defined]

    with app.app_context():
        notice_event(user_id=7, subject="after", content="", notice_type="Comment")
        app.db.session.commit()  # type: ignore[attr-defined]
        (after,) = app.notices.list_notices(7)  # type: ignore[attr-defined]
        assert after.id == 2
    _check_same_as_create_all(app)


def test_cli_group(app: Flask) -> None:
    cli = app.test_cli_runner()
    head = runner.head()
    result = cli.invoke(args=["notice", "db", "current"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"base (upgrade to {head}")
    result = cli.invoke(args=["notice", "db", "upgrade", "0001"])
    assert result.exit_code == 0, result.output
    assert "notice tables: base -> 0001" in result.output
    result = cli.invoke(args=["notice", "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"notice tables: 0001 -> {head}" in result.output
    assert cli.invoke(args=["notice", "db", "current"]).output == f"{head} (up to date)\n"
    history = cli.invoke(args=["notice", "db", "history"]).output.splitlines()
    assert [line.split()[0] for line in history][:2] == ["0001", "0002"]
    assert history[-1].split()[0] == head
    result = cli.invoke(args=["notice", "db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert _tables(app) - {VERSION_TABLE} == APP_TABLES
    result = cli.invoke(args=["notice", "db", "stamp", "0001"])
    assert result.exit_code == 0 and runner.current(app) == ("0001",)
    result = cli.invoke(args=["notice", "db", "upgrade", "nonesuch"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: ") and "nonesuch" in result.output


def test_include_object_names_our_tables_only(app: Flask) -> None:
    """TABLES is the set of tables the models declare (it cannot drift from them)."""
    tables = app.db.metadata.tables  # type: ignore[attr-defined]
    assert {name for name in tables if name not in APP_TABLES} == TABLES
    for name, table in tables.items():
        assert include_object(table, name, "table", False, None) == (name in APP_TABLES)
        for column in table.columns:
            assert include_object(column, column.name, "column", False, None) == (
                name in APP_TABLES
            )
    assert not include_object(None, VERSION_TABLE, "table", True, None)


# --- an app's own Flask-Migrate history -----------------------------------------------


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """Flask-Migrate's env.py calls logging.config.fileConfig, which disables every
    existing logger (notice's too) and replaces the root handlers: later tests that read
    caplog would see nothing. Put the logging setup back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = [
        logger for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    disabled = {logger.name: logger.disabled for logger in loggers}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for logger in logging.root.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = disabled.get(logger.name, False)


APP_MODULE = """
import sqlalchemy as sa
from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from notice import Notices, notice_event

db = SQLAlchemy()
notices = Notices(db=db, user_table="app_user.id")


class User(db.Model):
    __tablename__ = "app_user"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(80))


def create_app(url):
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI=url, NOTICE_SENDERS=["memory"])
    db.init_app(app)
    notices.init_app(app)
    Migrate(app, db, directory={directory!r})
    app.db, app.notices = db, notices
    return app
"""


def _migrate_app(db_url: str, tmp_path: Path, name: str) -> tuple[Flask, Path]:
    """An app module of its own (its own ``db`` and models) with Flask-Migrate."""
    import importlib.util

    directory = tmp_path / f"{name}_migrations"
    source = tmp_path / f"{name}.py"
    source.write_text(textwrap.dedent(APP_MODULE.format(directory=str(directory))))
    spec = importlib.util.spec_from_file_location(name, source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.create_app(db_url), directory


def _migration_texts(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((directory / "versions").glob("*.py")))


def _flask_migrate(app: Flask, directory: Path, message: str) -> None:
    import flask_migrate

    with app.app_context():
        flask_migrate.migrate(directory=str(directory), message=message)
        flask_migrate.upgrade(directory=str(directory))


@pytest.mark.parametrize("with_filter", [True, False], ids=["include_object", "no_filter"])
def test_app_autogenerate_and_upgrade(db_url: str, tmp_path: Path, with_filter: bool) -> None:
    import flask_migrate

    app, directory = _migrate_app(db_url, tmp_path, f"app_{with_filter}")
    try:
        with app.app_context():
            flask_migrate.init(directory=str(directory))
        if with_filter:
            env = directory / "env.py"
            text = env.read_text()
            text = text.replace(
                "    conf_args = current_app.extensions['migrate'].configure_args",
                "    conf_args = current_app.extensions['migrate'].configure_args\n"
                "    from notice.migrations import include_object\n"
                "    conf_args['include_object'] = include_object",
            )
            assert "include_object" in text
            env.write_text(text)
        _flask_migrate(app, directory, "first")
        first = _migration_texts(directory)
        assert "create_table('app_user'" in first
        if with_filter:
            # the app's migration leaves our tables to flask notice db
            assert "notice_delivery" not in first
            assert _tables(app) == APP_TABLES | {"alembic_version"}
            runner.upgrade(app)
        else:
            # the app's migration creates them, with types it can import
            assert "create_table('notice_delivery'" in first
            assert "notice.columns" not in first
            assert "sa.DateTime(timezone=True)" in first
        assert _tables(app) >= APP_TABLES | TABLES
        assert _differences(app) == []
        with app.app_context():
            app.extensions["notice"].Notice.query.count()
        # a second autogenerate finds nothing to do (and never drops our version
        # table): Flask-Migrate then writes no revision at all
        _flask_migrate(app, directory, "second")
        assert [p.name for p in (directory / "versions").glob("*second*.py")] == []
    finally:
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()
        app.extensions["notice"].state(app).dispatcher.shutdown()


def test_upgrade_of_tables_made_by_create_all_says_what_to_stamp(app: Flask) -> None:
    cli = app.test_cli_runner()
    # 0.1's create_all: the 0001 tables and no record
    runner.upgrade(app, "0001")
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    result = cli.invoke(args=["notice", "db", "upgrade"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert 'run "flask notice db stamp 0001", then upgrade' in result.output
    # 0.2's create_all
    runner.stamp(app, "0001")
    runner.downgrade(app, "base")
    with app.app_context():
        app.db.create_all()  # type: ignore[attr-defined]
    head = runner.head()
    result = cli.invoke(args=["notice", "db", "upgrade"])
    assert result.exit_code == 1 and f'run "flask notice db stamp {head}"' in result.output
    assert cli.invoke(args=["notice", "db", "stamp", head]).exit_code == 0
    result = cli.invoke(args=["notice", "db", "upgrade"])
    assert result.exit_code == 0 and f"notice tables: {head} -> {head}" in result.output


def test_two_upgrades_at_once_end_at_head(app: Flask) -> None:
    """Two instances deploying at the same moment: the migration lock makes the second
    wait and find the database upgraded, instead of failing on "already exists"."""
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            runner.upgrade(app)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upgrade) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert runner.current(app) == (runner.head(),)
    assert _differences(app) == []
