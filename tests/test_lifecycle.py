"""An app's life with notice: dropped apps are collected, and a process that serves no
pages still publishes live events."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices, notice_event
from notice.state import state_of


def _make_app(db_url: str, **config: Any) -> Flask:
    app = Flask("lifecycle")
    app.config.update(SQLALCHEMY_DATABASE_URI=db_url, SECRET_KEY="test")
    app.config.setdefault("NOTICE_SENDERS", ["memory"])
    app.config.update(config)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    with app.app_context():
        db.create_all()
    return app


@pytest.mark.parametrize(
    ("dispatch", "senders"), [("sync", ["memory"]), ("none", ["memory", "email", "webhook"])]
)
def test_an_app_created_used_and_dropped_is_garbage_collected(db_url, dispatch, senders):
    app = _make_app(
        db_url,
        NOTICE_DISPATCH=dispatch,
        NOTICE_SENDERS=senders,
        NOTICE_MAIL_SENDER="noreply@example.com",
        NOTICE_BASE_URL="http://127.0.0.1",
        NOTICE_WEBHOOK_URLS=["http://127.0.0.1:9/hook"],
        NOTICE_WEBHOOK_SECRET="s" * 32,
    )
    with app.app_context():
        notice_event([1, 2], subject="hello", content="")
        assert app.extensions["notice"].unread_count(1) == 1
    client = app.test_client()
    assert client.get("/notices/api/unread-count").status_code == 401  # the web layer ran too
    with app.app_context():
        app.extensions["sqlalchemy"].session.remove()
        for engine in app.extensions["sqlalchemy"].engines.values():
            engine.dispose()
    gone = weakref.ref(app)
    state = weakref.ref(state_of(app))
    del app, client
    # two passes: the first frees the app, whose weak-dict callbacks then let go of
    # its state
    gc.collect()
    gc.collect()
    assert gone() is None, [type(r) for r in gc.get_referrers(gone())]
    assert state() is None


def test_live_events_flow_without_the_web_layer(db_url, redis_url):
    """A worker-like app (NOTICE_WEB = False) publishes; a web app streams them."""
    channel = f"lifecycle{id(object())}"
    common = {"NOTICE_BROKER_URL": redis_url, "NOTICE_BROKER_CHANNEL": channel}
    web = _make_app(db_url, **common)
    worker = _make_app(db_url, NOTICE_WEB=False, **common)
    assert "notice.stream" not in {r.endpoint for r in worker.url_map.iter_rules()}
    broker = state_of(web).broker
    assert broker is not None
    with broker.subscribe(5) as sub:
        with worker.app_context():
            notice_id = notice_event(5, subject="from the worker", content="").id
        messages = []
        for _ in range(10):
            message = sub.get(timeout=5.0)
            if message is None:
                break
            messages.append(message)
            if message["event"] == "count":
                break
    notices = [m for m in messages if m["event"] == "notice"]
    assert [m["id"] for m in notices] == [notice_id]
    assert notices[0]["data"]["subject"] == "from the worker"
    assert {"event": "count", "data": {"unread": 1, "unseen": 1}} in messages
    for app in (web, worker):
        state_of(app).broker.close()  # type: ignore[union-attr]
