"""notice/extension.py: set-up, config validation, senders added late, and two apps in
one process. Every test that builds an app runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import ConfigurationError, Notices, Sender, notice_event
from notice.signals import notice_created, notice_sent

CORE = {"NOTICE_STREAM": False}


@pytest.mark.parametrize(
    "config, message",
    [
        ({"NOTICE_DISPATCH": "carrier-pigeon"}, "NOTICE_DISPATCH must be one of sync, thread"),
        ({"NOTICE_SENDERS": ["fax"]}, "unknown sender 'fax'.*email, .*memory, .*sms, .*webhook"),
        ({"NOTICE_SENDERS": ["nowhere.to:Go"]}, "cannot load sender.*built-in names are"),
        ({"NOTICE_SENDERS": ["notice.errors:NoticeError"]}, "not a notice.Sender subclass"),
        ({"NOTICE_SENDERS": "memory"}, "NOTICE_SENDERS must be a list"),
        ({"NOTICE_THREADS": 0}, "NOTICE_THREADS must be a positive number"),
        ({"NOTICE_DISPATCH_LINGER": -0.1}, "NOTICE_DISPATCH_LINGER must be a number of seconds"),
        ({"NOTICE_DISPATCH_LINGER": 5}, "NOTICE_DISPATCH_LINGER must be a number of seconds"),
        ({"NOTICE_DISPATCH_LINGER": "0.01"}, "NOTICE_DISPATCH_LINGER must be a number"),
        ({"NOTICE_BATCH_SIZE": 1.5}, "NOTICE_BATCH_SIZE must be a whole number"),
        ({"NOTICE_CLAIM_TIMEOUT": True}, "NOTICE_CLAIM_TIMEOUT must be a positive number"),
        ({"NOTICE_SEND_TIMEOUT": 0}, "NOTICE_SEND_TIMEOUT must be a positive number"),
        ({"NOTICE_SEND_TIMEOUT": "30"}, "NOTICE_SEND_TIMEOUT must be a positive number"),
        ({"NOTICE_MAX_LEASE_EXPIRIES": 0}, "NOTICE_MAX_LEASE_EXPIRIES must be a positive"),
        ({"NOTICE_MAX_LEASE_EXPIRIES": 2.5}, "NOTICE_MAX_LEASE_EXPIRIES must be a whole number"),
        (
            {"NOTICE_CLAIM_TIMEOUT": 30},
            r"NOTICE_CLAIM_TIMEOUT \(30 s\) must be longer than NOTICE_SEND_TIMEOUT \(30 s\)",
        ),
        (
            {"NOTICE_CLAIM_TIMEOUT": 2, "NOTICE_SEND_TIMEOUT": 4.5},
            r"NOTICE_CLAIM_TIMEOUT \(2 s\) must be longer than NOTICE_SEND_TIMEOUT \(4.5 s\)",
        ),
        ({"NOTICE_SWEEP_GRACE": -1}, "NOTICE_SWEEP_GRACE must be a number >= 0"),
        ({"NOTICE_SWEEP_GRACE": "30"}, "NOTICE_SWEEP_GRACE must be a number >= 0"),
        ({"NOTICE_RETRY_BASE": 60, "NOTICE_RETRY_CAP": 30}, "must not exceed NOTICE_RETRY_CAP"),
        ({"NOTICE_RETRY_JITTER": 1.5}, r"NOTICE_RETRY_JITTER must be a fraction in \[0, 1\)"),
        ({"NOTICE_SENDERS": ["memory", "memory"]}, "already registered"),
        ({"NOTICE_MAX_CONTENT": 0}, "NOTICE_MAX_CONTENT must be a positive number"),
        ({"NOTICE_MAX_DATA": "16k"}, "NOTICE_MAX_DATA must be a positive number"),
        ({"NOTICE_MAX_REQUEST": 1.5}, "NOTICE_MAX_REQUEST must be a whole number"),
        ({"NOTICE_STREAM_MAX": 0}, "NOTICE_STREAM_MAX must be a positive number"),
        (
            {"NOTICE_STREAM_MAX": 3, "NOTICE_STREAM_MAX_PER_USER": 5},
            "NOTICE_STREAM_MAX_PER_USER must not exceed NOTICE_STREAM_MAX",
        ),
    ],
)
def test_bad_config_fails_at_startup(app_factory, config, message):
    with pytest.raises(ConfigurationError, match=message):
        app_factory(**config)


def test_init_app_twice_is_refused(app_factory):
    app = app_factory(**CORE)
    with pytest.raises(RuntimeError, match="already initialised on this app"):
        app.notices.init_app(app)
    other = Notices(db=SQLAlchemy())
    with pytest.raises(RuntimeError, match="already initialised"):
        other.init_app(app)


def test_init_app_needs_db_first():
    db = SQLAlchemy()
    notices = Notices(db=db)
    app = Flask("no_db")
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    with pytest.raises(ConfigurationError, match="db.init_app"):
        notices.init_app(app)
    with pytest.raises(TypeError, match="Notices"):
        Notices(db=None)


def test_publishing_without_init_app_says_how_to_fix():
    app = Flask("bare")
    with app.app_context(), pytest.raises(RuntimeError, match="init_app"):
        notice_event(1, subject="s", content="")


class Counting(Sender):
    name = "counting"

    def __init__(self):
        self.got = []

    def send(self, notice):
        self.got.append(notice.subject)


def test_register_sender_after_init_app(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notice_event(1, subject="before", content="")
    late = app.notices.register_sender(Counting())
    with app.app_context():
        notice_event(1, subject="after", content="")
        assert late.got == ["after"]
        assert app.notices.sender("counting") is late
        assert [n.subject for n in app.notices.sender("memory").outbox] == ["before", "after"]
    with pytest.raises(TypeError, match="not a notice.Sender"):
        app.notices.register_sender(object())
    with pytest.raises(ConfigurationError, match="already registered"):
        app.notices.register_sender(Counting())


def test_unknown_sender_name_lists_this_apps_senders(app):
    with pytest.raises(KeyError, match="no sender named 'sms'.*memory"):
        app.notices.sender("sms")


def test_two_apps_in_one_process_stay_apart(app_factory):
    first = app_factory(**CORE)
    second = app_factory(**CORE)
    heard: dict[str, list[object]] = {"created": [], "sent": []}

    def on_created(sender, **kw):
        heard["created"].append((sender, kw["notice_ids"]))

    def on_sent(sender, **kw):
        heard["sent"].append((sender, kw["notice"].subject))

    notice_created.connect(on_created, sender=second)
    notice_sent.connect(on_sent, sender=second)
    try:
        with first.app_context():
            notice_event(1, subject="first", content="")
        assert heard == {"created": [], "sent": []}
        with second.app_context():
            n = notice_event(1, subject="second", content="")
        assert heard == {"created": [(second, [n.id])], "sent": [(second, "second")]}
    finally:
        notice_created.disconnect(on_created, sender=second)
        notice_sent.disconnect(on_sent, sender=second)
    with first.app_context():
        assert [o.subject for o in first.notices.sender("memory").outbox] == ["first"]
    with second.app_context():
        assert [o.subject for o in second.notices.sender("memory").outbox] == ["second"]
    # one extension object serving two apps keeps one state per app
    assert first.notices.state(first).app is first
    assert second.notices.state(second).app is second


def test_one_notices_object_serves_two_apps(db_url, tmp_path):
    db = SQLAlchemy()
    notices = Notices(db=db)
    apps = []
    for name, dispatch in (("one", "sync"), ("two", "none")):
        app = Flask(name)
        app.config.update(
            SQLALCHEMY_DATABASE_URI=db_url, NOTICE_SENDERS=["memory"], NOTICE_DISPATCH=dispatch
        )
        app.config.update(CORE)
        db.init_app(app)
        notices.init_app(app)
        apps.append(app)
    try:
        with apps[0].app_context():
            db.create_all()
            notice_event(1, subject="s", content="")
            assert len(notices.sender("memory").outbox) == 1
        with apps[1].app_context():
            notice_event(1, subject="s", content="")
            assert notices.sender("memory").outbox == []  # "none": left to the sweeper
            assert notices.state().dispatch_mode == "none"
    finally:
        for app in apps:
            notices.state(app).dispatcher.shutdown()
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def test_the_notification_signal_reaches_app_receivers(app):
    from notice import NoticeEvent
    from notice.signals import notification

    events = []

    def audit(sender, event, **kw):
        events.append(event)

    notification.connect(audit, sender=app)
    try:
        notice_event([1, 2], "Like", subject="s", content="c", sender_id=9)
    finally:
        notification.disconnect(audit, sender=app)
    assert len(events) == 1 and isinstance(events[0], NoticeEvent)
    assert (events[0].user_ids, events[0].notice_type, events[0].sender_id) == ((1, 2), "Like", 9)
    assert app.notices.Notice.query.count() == 2
