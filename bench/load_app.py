"""The app ``bench/load.py`` runs under gunicorn, Celery workers and sweepers.

Every process builds the same app from ``LOAD_*`` environment variables (set by
``bench/load.py``)::

    gunicorn -k gevent 'bench.load_app:app'
    celery -A bench.load_app:celery_app worker
    flask --app bench.load_app:app notice worker

It dispatches through Celery (Flask's ``celery_init_app`` pattern with a FlaskTask),
streams over Redis, and sends with :class:`FlakySender`, which fails a fraction of its
calls transiently and writes each successful send to ``load_send`` so the script can
count lost and duplicated deliveries across processes (``LOAD_SENDER=NoopSender``:
a sender that does nothing, for the CPU cost per delivery). The ``/load`` endpoints are
for the benchmark only: they trust an ``X-Load-User`` header and have no CSRF check.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa
from celery import Celery, Task
from flask import Flask, current_app, jsonify, request
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, Sender, TransientError, notice_event
from notice.config import DEFAULTS

SEND_LOG = sa.Table(
    "load_send",
    sa.MetaData(),
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("notice_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("target", sa.String(100), nullable=False),
    #: epoch seconds of the successful send
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
)


class FlakySender(Sender):
    """Fails ``LOAD_FAIL_RATE`` of its calls with TransientError; records the rest."""

    name = "flaky"

    def __init__(self) -> None:
        self.fail_rate = float(os.environ.get("LOAD_FAIL_RATE", "0.1"))

    def send_to(self, notice: Any, target: str) -> None:
        if random.random() < self.fail_rate:
            raise TransientError("bench: transient failure")
        engine = current_app.extensions["sqlalchemy"].engine
        with engine.begin() as conn:
            conn.execute(
                SEND_LOG.insert().values(
                    notice_id=notice.id, target=target, sent_at=time.time(), pid=os.getpid()
                )
            )

    def send(self, notice: Any) -> None:
        self.send_to(notice, "")


class NoopSender(Sender):
    """Sends nothing: what ``bench/load.py --celery-cpu`` measures is the library's own
    cost per delivery, not a sender's."""

    name = "noop"

    def send(self, notice: Any) -> None:
        pass


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented Celery pattern: tasks run inside an app context."""

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, set_as_current=False)
    celery_app.config_from_object(app.config["CELERY"])
    app.extensions["celery"] = celery_app
    return celery_app


def create_app(**overrides: Any) -> Flask:
    """The load app from ``LOAD_*`` variables; ``overrides`` win over them."""
    env = os.environ
    redis_url = env.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/14")
    app = Flask("load_app")
    app.config.update(
        SECRET_KEY="bench-only",
        SQLALCHEMY_DATABASE_URI=env["LOAD_DB_URL"],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_size": 10, "max_overflow": 20},
        NOTICE_SENDERS=[f"bench.load_app:{env.get('LOAD_SENDER', 'FlakySender')}"],
        NOTICE_DISPATCH="celery",
        NOTICE_CELERY_QUEUE=env.get("LOAD_QUEUE", "notice-load"),
        # retries soon, so the drain after the run is short
        NOTICE_RETRY_BASE=0.5,
        NOTICE_RETRY_CAP=2.0,
        # Celery has this long to deliver before the sweepers step in
        NOTICE_SWEEP_GRACE=5,
        NOTICE_CLAIM_TIMEOUT=60,
        CELERY={
            "broker_url": env.get("LOAD_CELERY_BROKER", redis_url),
            "broker_connection_timeout": 2,
            "task_ignore_result": True,
            "worker_hijack_root_logger": False,
            "worker_prefetch_multiplier": 8,
        },
    )
    if "NOTICE_BROKER_URL" in DEFAULTS:  # the live stream exists: fan out over Redis
        app.config.update(
            NOTICE_BROKER_URL=redis_url,
            NOTICE_BROKER_CHANNEL=env.get("LOAD_CHANNEL", "noticeload"),
            NOTICE_SSE_HEARTBEAT=1.0,
        )
    if "LOAD_CELERY_BATCH" in env and "NOTICE_CELERY_BATCH" in DEFAULTS:
        app.config["NOTICE_CELERY_BATCH"] = int(env["LOAD_CELERY_BATCH"])
    app.config.update(overrides)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    if app.config["NOTICE_DISPATCH"] == "celery":
        celery_init_app(app)

    @notices.user_loader
    def _load_user() -> Any:
        return request.headers.get("X-Load-User", type=int)

    app.add_url_rule("/load/event", view_func=_event, methods=["POST"])
    app.add_url_rule("/load/unread", view_func=_unread)
    app.add_url_rule("/load/list", view_func=_list)
    app.add_url_rule("/load/features", view_func=_features)
    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    return app


def _event() -> Any:
    body = request.get_json()
    users = body["users"]
    result = notice_event(
        users if len(users) > 1 else users[0],
        subject=body.get("subject", "load"),
        content="bench/load.py",
    )
    ids = result if isinstance(result, list) else [result.id]
    return jsonify(ids=ids)


def _user() -> int:
    return int(request.headers["X-Load-User"])


def _unread() -> Any:
    return jsonify(unread=current_app.extensions["notice"].unread_count(_user()))


def _list() -> Any:
    rows = current_app.extensions["notice"].list_notices(_user(), limit=20)
    return jsonify(ids=[n.id for n in rows])


def _features() -> Any:
    rules = {r.rule for r in current_app.url_map.iter_rules()}
    prefix = current_app.config["NOTICE_URL_PREFIX"]
    return jsonify(
        pid=os.getpid(),
        stream=f"{prefix}/stream" in rules,
        api_unread=f"{prefix}/api/unread-count" in rules,
        api_list=f"{prefix}/api/notices" in rules,
    )


def sweep_loop(interval: float) -> None:
    """Stand-in for ``flask notice worker`` where that command does not exist yet."""
    app = create_app()
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        with app.app_context():
            ext = app.notices  # type: ignore[attr-defined]
            report = ext.sweep() if hasattr(ext, "sweep") else ext.deliver_due()
        if not report.claimed:
            stop.wait(interval)


_built: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # built on first use, so importing this module (load.py does) needs no LOAD_* env
    if name in ("app", "celery_app"):
        if "app" not in _built:
            _built["app"] = create_app()
            _built["celery_app"] = _built["app"].extensions["celery"]
        return _built[name]
    raise AttributeError(name)


if __name__ == "__main__" and sys.argv[1:2] == ["sweep"]:
    sweep_loop(float(sys.argv[2]) if len(sys.argv) > 2 else 0.2)
