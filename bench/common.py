"""What the benchmark scripts share: a throw-away database, a free loopback port,
percentiles and an app that mails through a loopback SMTP server.

The scripts put the repository root on ``sys.path`` and import this as
``bench.common``. PostgreSQL databases are created in the ``test`` cluster on
127.0.0.1 (``NOTICE_TEST_PG_URL`` overrides the admin URL) and dropped on exit.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "NOTICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextmanager
def pg_database(admin_url: str = PG_ADMIN_URL, name: str | None = None) -> Iterator[str]:
    """The URL of a new database beside ``admin_url``'s (``notice_bench_<random>`` unless
    ``name`` is given), dropped on exit even if connections to it are still open."""
    name = name or f"notice_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh database URL: a file in a temporary directory for ``"sqlite"``, else a
    private PostgreSQL database (:func:`pg_database`)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
    else:
        with pg_database() as url:
            yield url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100): the sample at rank ``int(p / 100 * n)`` of the
    sorted values, capped at the largest; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def mail_app(name: str, url: str, smtp: Any, *, senders: list[str], dispatch: str) -> Any:
    """A Flask app on ``url`` with ``Notices`` (``app.db``, ``app.notices``), mailing
    ``user<id>@example.com`` through ``smtp`` (a tests.support SMTPServer), its tables
    created."""
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from notice import Notices

    app = Flask(name)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="bench",
        NOTICE_SENDERS=senders,
        NOTICE_DISPATCH=dispatch,
        NOTICE_STREAM=False,
        NOTICE_MAIL_HOST=smtp.host,
        NOTICE_MAIL_PORT=smtp.port,
        NOTICE_MAIL_SENDER="Bench <bench@example.com>",
        NOTICE_BASE_URL="https://bench.example",
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    notices.email_loader(lambda user_id: f"user{user_id}@example.com")
    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    with app.app_context():
        db.create_all()
    return app
