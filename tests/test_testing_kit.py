"""The test kit (notice.testing): capturing senders with rendered payloads, the
assertions and their messages, sync and thread dispatch, commit=False, and the pytest
plugin itself (through pytester), on SQLite and PostgreSQL."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, Sender, notice_event
from notice.signals import notice_sent
from notice.testing import CapturingSender, capture_notices
from notice.testing import plugin as kit_plugin
from tests.support.emailapp import FROM, address, email_app
from tests.support.pushapp import add_device, push_config, vapid_keys
from tests.support.pushservice import PushService
from tests.support.smtpserver import SMTPServer
from tests.support.webhookserver import WebhookServer

pytest_plugins = ["pytester"]

SECRET = "webhook-secret-0123456789"


def statuses(app: Any) -> list[tuple[str, str]]:
    """``(channel, status)`` of every delivery, by id."""
    Delivery = app.notices.Delivery
    with app.app_context():
        rows = app.db.session.execute(
            sa.select(Delivery.channel, Delivery.status).order_by(Delivery.id)
        )
        return [tuple(r) for r in rows]


def publish(app: Any, user_id: Any, **fields: Any) -> Any:
    fields.setdefault("subject", "Ana commented")
    fields.setdefault("content", "Looks great")
    """Publish one notice (sending as configured); return its id."""
    with app.app_context():
        notice = notice_event(user_id, fields.pop("notice_type", NoticeType.COMMENT), **fields)
        return notice.id


# --- capturing: what would have been sent, nothing transmitted -----------------------


def test_email_is_rendered_not_mailed_and_the_inbox_behaves_as_in_production(app_factory):
    with SMTPServer() as smtp:
        app = email_app(app_factory, smtp, NOTICE_SENDERS=["memory", "email"])
        heard: list[str] = []

        def on_sent(sender: Any, **kw: Any) -> None:
            heard.append(kw["channel"])

        notice_sent.connect(on_sent, sender=app)
        try:
            with capture_notices(app) as outbox:
                nid = publish(app, 7, subject="Ana <b>commented</b>", url="/posts/1")
                outbox.assert_sent(to=7, type="Comment", channel="email")
                [sent] = outbox.sent(channel="email")
                email = sent.email
                assert email.to == address(7) and email.subject == "Ana <b>commented</b>"
                assert "Looks great" in email.text and "https://app.example/posts/1" in email.text
                assert "Ana &lt;b&gt;commented&lt;/b&gt;" in email.html  # escaped
                assert email.message["From"] == FROM and email.message["List-Unsubscribe"]
                assert sent.notice.id == nid and sent.payload is email.message
                [memory] = outbox.sent(channel="memory")
                assert memory.payload is None and memory.notice.id == nid
                with pytest.raises(TypeError, match="on 'memory', not by email"):
                    memory.email  # noqa: B018 - the property raises
            assert smtp.messages == []  # nothing left the process
            assert statuses(app) == [("memory", "Sent"), ("email", "Sent")]
            assert sorted(heard) == ["email", "memory"]  # signals as in production
            with app.app_context():
                assert app.notices.unread_count(7) == 1
            # restored on exit: the next notice is mailed for real
            publish(app, 8)
            assert [m.rcpt_tos for m in smtp.messages] == [[address(8)]]
            assert [n.user_id for n in app.notices.state(app).sender("memory").outbox] == [8]
        finally:
            notice_sent.disconnect(on_sent, sender=app)


def test_a_user_without_address_is_skipped_as_the_real_sender_would(app_factory):
    with SMTPServer() as smtp:
        app = email_app(app_factory, smtp, NOTICE_SENDERS=["memory", "email"])
        app.notices.email_loader(lambda uid: None if uid == 9 else address(uid))
        with capture_notices(app) as outbox:
            publish(app, 9)
            outbox.assert_not_sent(channel="email")
            outbox.assert_sent(to=9, channel="memory", count=1)
        assert statuses(app) == [("memory", "Sent"), ("email", "Skipped")]


def test_webpush_payload_is_captured_and_nothing_is_pushed(app_factory):
    with PushService(vapid_keys().public_key) as service:
        app = app_factory(**push_config(service))
        browser = service.new_subscription("ana-laptop")
        sub_id = add_device(app, 3, browser)
        with capture_notices(app) as outbox:
            nid = publish(
                app, 3, subject="Hi", content="x" * 5000, data={"webpush": {"icon": "/i.png"}}
            )
            [push] = outbox.assert_sent(to=3, channel="webpush", count=1)
        assert push.target == str(sub_id)
        assert push.payload["title"] == "Hi" and push.payload["id"] == nid
        assert push.payload["icon"] == "/i.png" and push.payload["type"] == "Comment"
        assert push.payload["body"].endswith("…")  # trimmed to fit, as the real push
        assert service.received_for(PushService.token_of(browser)) == []
        assert statuses(app) == [("webpush", "Sent")]


def test_webhook_body_is_captured_and_nothing_is_posted(app_factory):
    with WebhookServer() as hook:
        url = f"{hook.url}?token=s3cret"  # receivers often put a secret in the URL
        app = app_factory(
            NOTICE_SENDERS=["webhook"], NOTICE_WEBHOOK_URLS=[url], NOTICE_WEBHOOK_SECRET=SECRET
        )
        with capture_notices(app) as outbox:
            nid = publish(app, 4, subject="Deploy done")
            [call] = outbox.sent(channel="webhook")
            with pytest.raises(AssertionError) as failed:
                outbox.assert_sent(to=5)
        assert call.target == url
        assert call.payload["event"] == "notice"
        assert call.payload["notice"]["id"] == nid
        assert call.payload["notice"]["subject"] == "Deploy done"
        assert "send_status" not in call.payload["notice"]  # the real body's fields
        assert hook.requests == []
        # failure messages name the host only: test output lands in CI logs
        assert "webhook -> 127.0.0.1 to user 4" in str(failed.value)
        assert "s3cret" not in str(failed.value)


class SmsSender(Sender):
    """An app's own sender: its preview is what a capture records."""

    name = "sms"

    def __init__(self) -> None:
        self.texted: list[int] = []

    def preview(self, notice: Any, target: str) -> Any:
        return {"to": f"+4470000000{notice.user_id}", "text": notice.subject[:160]}

    def send(self, notice: Any) -> None:
        self.texted.append(notice.id)


def test_an_apps_own_sender_is_captured_with_its_preview(app_factory):
    app = app_factory()
    sms = app.notices.register_sender(SmsSender())
    with capture_notices(app) as outbox:
        publish(app, 5, subject="Your table is ready")
    [text] = outbox.sent(channel="sms")
    assert text.payload == {"to": "+44700000005", "text": "Your table is ready"}
    assert sms.texted == []  # its send() never ran
    assert outbox.sent(channel="memory")[0].payload is None  # the default preview


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
def test_a_capture_may_begin_before_the_tables_exist(app_factory, dispatch):
    app = app_factory(NOTICE_DISPATCH=dispatch)
    with app.app_context():
        app.db.drop_all()  # as a fixture that creates them inside its capture
    with capture_notices(app) as outbox:
        with app.app_context():
            app.db.create_all()
        publish(app, 1)
        outbox.assert_sent(to=1, count=1)


# --- dispatch modes and transactions -------------------------------------------------


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
def test_commit_false_is_captured_after_the_commit_and_never_after_a_rollback(
    app_factory, dispatch
):
    app = app_factory(NOTICE_DISPATCH=dispatch, NOTICE_THREADS=2)
    db = app.db
    with capture_notices(app) as outbox, app.app_context():
        notice_event(1, NoticeType.LIKE, subject="kept", content="", commit=False)
        outbox.assert_nothing_sent()  # written in the caller's transaction only
        db.session.commit()
        outbox.assert_sent(to=1, type=NoticeType.LIKE, count=1)
        notice_event(2, NoticeType.LIKE, subject="dropped", content="", commit=False)
        db.session.rollback()
        outbox.assert_not_sent(to=2)
        outbox.assert_count(1)


def test_thread_dispatch_is_waited_for_before_asserting(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=2, NOTICE_BATCH_SIZE=5)
    with capture_notices(app) as outbox:
        for user in range(1, 41):
            publish(app, user, subject=f"n{user}")
        # no sleep and no polling here: the outbox waits for the pool's deliveries
        outbox.assert_count(40, channel="memory")
        assert sorted(c.user_id for c in outbox) == list(range(1, 41))
    assert {s for _, s in statuses(app)} == {"Sent"}


def test_thread_dispatch_that_never_runs_fails_with_a_clear_message(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1)
    app.notices.state(app).dispatcher.shutdown()  # takes no more work: rows stay Wait
    with pytest.raises(AssertionError, match="1 deliveries .* no outcome after 0.2 s"):
        with capture_notices(app, timeout=0.2) as outbox:
            publish(app, 1)
            outbox.assert_sent(to=1)


def test_celery_dispatch_in_eager_mode_is_captured(app_factory):
    from celery import Celery

    celery_app = Celery("kit", set_as_current=False)
    celery_app.conf.task_always_eager = True  # as apps run Celery in their own tests
    app = app_factory(NOTICE_DISPATCH="celery", NOTICE_CELERY_APP=celery_app)
    with capture_notices(app) as outbox:
        publish(app, 6, subject="via celery")
        outbox.assert_sent(to=6, channel="memory", count=1)
    assert statuses(app) == [("memory", "Sent")]


def test_none_dispatch_captures_what_the_sweeper_sends(app_factory):
    app = app_factory(NOTICE_DISPATCH="none")
    with capture_notices(app) as outbox, app.app_context():
        notice_event(5, NoticeType.SYSTEM, subject="later", content="")
        outbox.assert_nothing_sent()  # nothing waits in the background
        app.notices.sweep()
        outbox.assert_sent(to=5, type="System")


# --- the assertions ------------------------------------------------------------------


class User:
    def __init__(self, uid: int) -> None:
        self.uid = uid

    def get_id(self) -> str:  # flask-login's shape: ids as text
        return str(self.uid)


def test_assertions_match_on_every_criterion_and_say_what_was_sent(app_factory):
    app = app_factory(NOTICE_SENDERS=["memory", "log"])
    with capture_notices(app) as outbox:
        publish(app, 1, subject="for one")
        publish(app, 2, notice_type=NoticeType.FOLLOW, subject="for two")
        outbox.assert_sent(to=User(1), type=NoticeType.COMMENT, channel="log")
        outbox.assert_sent(to="2", type="Follow", count=2)  # on memory and log
        outbox.assert_count(4)
        outbox.assert_count(1, where=lambda c: c.subject == "for two" and c.channel == "log")
        outbox.assert_not_sent(to=1, type="Follow")
        with pytest.raises(AssertionError) as failed:
            outbox.assert_sent(to=3, type="Comment", channel="memory")
        message = str(failed.value)
        assert message.startswith(
            "expected a notice to user 3 of type 'Comment' on channel 'memory'; found 0."
        )
        assert "Sent while capturing (4):" in message
        assert "memory to user 2: [Follow] 'for two'" in message
        assert "Looks great" not in message  # content stays out, as in logs
        with pytest.raises(AssertionError, match="expected 0 notices to user 1; found 2"):
            outbox.assert_not_sent(to=1)
        with pytest.raises(AssertionError, match="expected 3 notices of type 'Follow'"):
            outbox.assert_sent(type="Follow", count=3)
        with pytest.raises(ValueError, match="unknown notice type 'Coment'"):
            outbox.assert_not_sent(type="Coment")  # a typo must not pass silently
        outbox.clear()
        outbox.assert_nothing_sent()
        publish(app, 1)
        with pytest.raises(AssertionError, match=r"expected 0 notices; found 2"):
            outbox.assert_nothing_sent()


def test_senders_are_restored_after_an_error_and_captures_do_not_nest(app_factory):
    app = app_factory(NOTICE_SENDERS=["memory", "log"])
    state = app.notices.state(app)
    originals = dict(state.senders_by_name)
    with pytest.raises(RuntimeError, match="boom"):
        with capture_notices(app):
            assert all(isinstance(s, CapturingSender) for s in state.senders_by_name.values())
            assert state.sender("memory").name == "memory"
            raise RuntimeError("boom")
    assert state.senders_by_name == originals
    with capture_notices(app) as outbox:
        with pytest.raises(RuntimeError, match="already being captured"):
            with capture_notices(app):
                pass
        publish(app, 1)
    assert state.senders_by_name == originals
    outbox.assert_count(2)  # still readable after the block, like Flask-Mail's outbox


# --- the pytest plugin ---------------------------------------------------------------


def test_the_plugin_is_registered_and_only_defines_fixtures(pytestconfig):
    assert pytestconfig.pluginmanager.get_plugin("notice") is kit_plugin
    hooks = [name for name in vars(kit_plugin) if name.startswith("pytest_")]
    assert hooks == []  # no hooks: loading it changes nothing in a project's runs


CONFTEST = """
import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from notice import Notices

@pytest.fixture
def app():
    app = Flask("kit_user")
    app.config.update(
        SQLALCHEMY_DATABASE_URI={db_url!r}, SECRET_KEY="s", NOTICE_DISPATCH={dispatch!r},
        NOTICE_SENDERS=["memory", "email"], NOTICE_MAIL_SENDER="App <app@example.org>",
        NOTICE_BASE_URL="http://127.0.0.1:5000",
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    notices.email_loader(lambda uid: f"user{{uid}}@example.org")
    app.db, app.notices = db, notices
    with app.app_context():
        db.drop_all()
        db.create_all()
    yield app
    notices.state(app).dispatcher.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
"""

USER_TESTS = """
import pytest
from notice import NoticeType, Sender, notice_event

def test_sent_and_rendered(app, notice_outbox):
    with app.app_context():
        notice_event(7, NoticeType.COMMENT, subject="Hi Ben", content="Nice post")
        assert app.notices.unread_count(7) == 1
    notice_outbox.assert_sent(to=7, type="Comment", channel="email")
    [email] = notice_outbox.sent(channel="email")
    assert email.email.to == "user7@example.org" and "Nice post" in email.email.text
    notice_outbox.assert_count(2)

def test_commit_false(app, notice_outbox):
    with app.app_context():
        notice_event(7, NoticeType.LIKE, subject="kept", content="", commit=False)
        notice_outbox.assert_nothing_sent()
        app.db.session.commit()
        notice_event(8, NoticeType.LIKE, subject="dropped", content="", commit=False)
        app.db.session.rollback()
    notice_outbox.assert_count(2, type="Like", to=7)
    notice_outbox.assert_not_sent(to=8)

def test_without_the_fixture_the_real_senders_send(app):
    with app.app_context():
        notice_event(7, NoticeType.LIKE, subject="real", content="")
    if app.config["NOTICE_DISPATCH"] == "thread":
        import time
        for _ in range(500):
            if app.notices.state(app).sender("memory").outbox:
                break
            time.sleep(0.01)
    assert [n.subject for n in app.notices.state(app).sender("memory").outbox] == ["real"]

def test_failure_lists_what_was_sent(app, notice_outbox):
    with app.app_context():
        notice_event(7, NoticeType.COMMENT, subject="to seven", content="")
    notice_outbox.assert_sent(to=8)
"""


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
def test_plugin_fixture_in_a_users_project(pytester, db_url, dispatch):
    pytester.makeconftest(CONFTEST.format(db_url=db_url, dispatch=dispatch))
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: expected a notice to user 8; found 0. Sent while capturing (2):",
            "*- memory to user 7: [[]Comment[]] 'to seven' (notice 1)",
            "*- email to user 7: [[]Comment[]] 'to seven' (notice 1)",
        ]
    )


def test_plugin_fixture_without_an_app_fixture_says_what_to_define(pytester):
    pytester.makepyfile("def test_it(notice_outbox):\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*notice_outbox fixture needs an 'app' fixture*conftest.py*"])


def test_plugin_loads_nothing_of_the_kit_until_a_fixture_is_used(pytester):
    pytester.makepyfile(
        textwrap.dedent(
            """
            import sys

            def test_untouched(pytestconfig):
                assert pytestconfig.pluginmanager.get_plugin("notice") is not None
                assert "notice.testing.capture" not in sys.modules
            """
        )
    )
    # a subprocess: this process has imported the kit already
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
