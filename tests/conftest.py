"""Fixtures shared by every test module.

Storage tests take the ``db_url`` fixture, parametrized over SQLite (a file per test)
and PostgreSQL (a database of this test session, on 127.0.0.1:5432, created from the
``test`` database and dropped at the end). Under ``CI=true`` a test that needs an
unreachable PostgreSQL or Redis fails instead of skipping, and the session fails if
no PostgreSQL or Redis test ran at all.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices
from tests.support.browser import launch

PG_ADMIN_URL = os.environ.get(
    "NOTICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("NOTICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI") == "true"


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, available: bool) -> None:
    """Skip (locally) or fail (under CI=true) when a needed server is down."""
    if available:
        return
    message = f"{name} is not reachable on loopback"
    if IN_CI:
        pytest.fail(f"{message}; CI=true requires it (.ci/run starts it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A private PostgreSQL database for this pytest run, so parallel runs don't collide."""
    require_service("PostgreSQL", _port_open("127.0.0.1", 5432))
    name = f"notice_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    require_service("Redis", _port_open("127.0.0.1", 6379))
    return REDIS_URL


def _reset_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A clean database: SQLite file or the run's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'notice.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    _reset_pg(url)
    return url


AppFactory = Callable[..., Flask]


@pytest.fixture
def app_factory(db_url: str) -> Iterator[AppFactory]:
    """``app_factory(**config)`` builds an app with ``app.db`` and ``app.notices``
    (fresh SQLAlchemy and Notices objects) and creates the tables."""
    made: list[Flask] = []

    def make(
        notices_options: dict[str, Any] | None = None,
        setup: Callable[..., None] | None = None,
        **config: Any,
    ) -> Flask:
        app = Flask(f"test_{len(made)}")
        app.config.update(
            SQLALCHEMY_DATABASE_URI=db_url,
            SECRET_KEY="test-secret",
            TESTING=True,
            NOTICE_SENDERS=["memory"],
        )
        app.config.update(config)
        db = SQLAlchemy()
        if setup is not None:
            setup(db)
        notices = Notices(db=db, **(notices_options or {}))
        db.init_app(app)
        notices.init_app(app)
        app.db = db  # type: ignore[attr-defined]
        app.notices = notices  # type: ignore[attr-defined]
        with app.app_context():
            db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        state = app.notices.state(app)  # type: ignore[attr-defined]
        state.dispatcher.shutdown()
        with app.app_context():
            app.db.session.remove()  # type: ignore[attr-defined]
            for engine in app.db.engines.values():  # type: ignore[attr-defined]
                engine.dispose()


@pytest.fixture
def app(app_factory: AppFactory) -> Iterator[Flask]:
    """An app with the memory sender, inside an app context."""
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def notices(app: Flask) -> Notices:
    return app.notices  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def db(app: Flask) -> SQLAlchemy:
    return app.db  # type: ignore[attr-defined, no-any-return]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's headless chromium (tests/support/browser.py); skips if not installed."""
    with launch() as chromium:
        yield chromium


# --- CI guard: the service-backed tests must actually run ------------------------------

SERVICE_MARKERS = ("postgres", "redis")
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and any(m in report.keywords for m in SERVICE_MARKERS):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI=true a skipped PostgreSQL or Redis test fails the whole run."""
    if IN_CI and _skipped:
        print(
            f"\nCI=true but {len(_skipped)} PostgreSQL/Redis tests were skipped, e.g. "
            f"{_skipped[0]}: failing the run"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
