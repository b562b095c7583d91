"""A Flask app dispatching through Celery, for tests/test_celery.py and its workers.

The test process and the ``celery worker`` subprocess build the same app with
:func:`build`; the worker gets its arguments from the environment (see
``tests/support/celery_worker.py``). The Celery app is handed over with
``notices.init_celery`` and has no FlaskTask, so the delivery task finds its Flask app
itself. :class:`RecordingSender` writes every successful send to ``celery_send`` in the
app's database, with the sending process id, so tests count sends across processes.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from celery import Celery
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, Sender

SEND_LOG = sa.Table(
    "celery_send",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("notice_id", sa.Integer, nullable=False),
    sa.Column("target", sa.String(100), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


class RecordingSender(Sender):
    """Records each send in ``celery_send`` (one row per successful call)."""

    name = "recording"

    def send_to(self, notice: Any, target: str) -> None:
        engine = current_app.extensions["sqlalchemy"].engine
        with engine.begin() as conn:
            conn.execute(
                SEND_LOG.insert().values(notice_id=notice.id, target=target, pid=os.getpid())
            )

    def send(self, notice: Any) -> None:
        self.send_to(notice, "")


def build(db_url: str, broker_url: str, queue: str, **config: Any) -> Flask:
    """The app, its ``celery_app`` attribute and tables (created if missing)."""
    app = Flask("celery_test_app")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        SECRET_KEY="test-secret",
        NOTICE_SENDERS=["tests.support.celery_app:RecordingSender"],
        NOTICE_DISPATCH="celery",
        NOTICE_CELERY_QUEUE=queue,
    )
    app.config.update(config)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    celery_app = Celery(
        "celery_test_app",
        broker=broker_url,
        # results only where a test reads them (Redis); Celery 5 has no AMQP backend
        backend=broker_url if broker_url.startswith("redis") else None,
        set_as_current=False,
    )
    celery_app.conf.update(broker_connection_timeout=2, worker_hijack_root_logger=False)
    if app.config["NOTICE_DISPATCH"] == "celery":
        notices.init_celery(celery_app, app=app)
    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    app.celery_app = celery_app  # type: ignore[attr-defined]
    with app.app_context():
        db.create_all()
        SEND_LOG.create(db.engine, checkfirst=True)
    return app
