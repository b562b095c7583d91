"""Issue 16, items 6 and 9 (digest half): a user's email mode per notice type,
immediate | daily | weekly | off, with an app default per type; digest-mode types write
no email of their own and the matching digest run carries them. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from notice import NoticeType, notice_event
from notice.errors import ConfigurationError
from notice.preferences.digest import run_digest
from notice.web.auth import SESSION_KEY
from tests.support.emailapp import deliveries, email_app
from tests.support.smtpserver import SMTPServer

TOKEN = "csrf-test-token"


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def _app(app_factory: Any, smtp: SMTPServer, **config: Any) -> Flask:
    app = email_app(app_factory, smtp, **config)
    app.notices.user_loader(lambda: request.headers.get("X-User", type=int))  # type: ignore[attr-defined]
    return app


def _client(app: Flask, user: int) -> Any:
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = TOKEN
    client.environ_base["HTTP_X_USER"] = str(user)
    return client


def _publish(user: int = 1) -> None:
    notice_event(user, NoticeType.LIKE, subject="a like", content="")
    notice_event(user, NoticeType.COMMENT, subject="a comment", content="")


def _digest_lines(smtp: SMTPServer) -> list[str]:
    texts = [m.message.get_body(("plain",)).get_content() for m in smtp.messages]
    return sorted(s for s in ("a like", "a comment") for t in texts if s in t)


def test_app_default_mode_daily_writes_no_email_and_the_daily_digest_carries_it(app_factory, smtp):
    app = _app(app_factory, smtp, NOTICE_EMAIL_MODES={"Like": "daily"})
    with app.app_context():
        state = app.notices.state()
        _publish()
        # the comment went out on its own at once; the like wrote no email delivery
        assert [d.notice.subject for d in deliveries(app, "email")] == ["a comment"]
        assert len(smtp.messages) == 1
        smtp.reset()
        # the user chose no digest ("off" by default): the weekly run has nothing
        assert run_digest(state, "weekly").sent == 0
        report = run_digest(state, "daily")
        assert (report.sent, report.notices) == (1, 1)
        assert _digest_lines(smtp) == ["a like"]
        assert run_digest(state, "daily").sent == 0  # listed once


def test_user_modes_weekly_and_off(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        prefs, state = app.notices.preferences, app.notices.state()
        prefs.set_email_mode(1, "Comment", "weekly")
        prefs.set_email_mode(1, "Like", "off")
        modes = prefs.email_modes(1)
        assert (modes["Comment"], modes["Like"], modes["Post"]) == ("weekly", "off", "immediate")
        # enabled() is "an email of its own": neither; get() shows which are on at all
        assert not prefs.enabled(1, "Like", "email") and not prefs.enabled(1, "Comment", "email")
        assert prefs.get(1)["Comment"]["email"] and not prefs.get(1)["Like"]["email"]
        _publish()
        _publish(user=2)  # user 2 chose nothing: both emailed at once
        assert sorted(str(d.notice.user_id) for d in deliveries(app, "email")) == ["2", "2"]
        smtp.reset()
        assert run_digest(state, "daily").sent == 0  # a weekly type waits for the weekly run
        report = run_digest(state, "weekly")
        assert (report.sent, report.notices) == (1, 1)
        assert _digest_lines(smtp) == ["a comment"]
        # an on/off switch resets the mode to the default
        prefs.set(1, "Comment", "email", True)
        assert prefs.email_modes(1)["Comment"] == "immediate"


def test_global_digest_still_lists_immediate_types_of_its_frequency(app_factory, smtp):
    # a digest-only app: "immediate" types have no email of their own, the user's
    # daily digest lists them; a weekly type waits for the weekly run
    app = _app(app_factory, smtp, NOTICE_SENDERS=["memory"], NOTICE_EMAIL_MODES={"Like": "weekly"})
    with app.app_context():
        prefs, state = app.notices.preferences, app.notices.state()
        prefs.set_digest(1, "daily")
        _publish()
        assert run_digest(state, "daily").notices == 1
        assert _digest_lines(smtp) == ["a comment"]
        smtp.reset()
        assert run_digest(state, "weekly").notices == 1
        assert _digest_lines(smtp) == ["a like"]


def test_required_types_are_always_immediate(app_factory, smtp):
    app = _app(app_factory, smtp, NOTICE_REQUIRED_TYPES=["System"])
    with app.app_context():
        prefs = app.notices.preferences
        with pytest.raises(ValueError, match="required"):
            prefs.set_email_mode(1, "System", "daily")
        with pytest.raises(ValueError, match="email mode"):
            prefs.set_email_mode(1, "Like", "hourly")
        assert prefs.email_modes(1)["System"] == "immediate"


@pytest.mark.parametrize(
    "modes", [{"Like": "hourly"}, {"Nope": "daily"}, ["daily"]], ids=["mode", "type", "shape"]
)
def test_bad_email_modes_config(app_factory, modes):
    with pytest.raises(ConfigurationError, match="NOTICE_EMAIL_MODES|Nope"):
        app_factory(NOTICE_EMAIL_MODES=modes)


def test_json_api_shows_and_edits_email_modes(app_factory, smtp):
    app = _app(
        app_factory, smtp, NOTICE_EMAIL_MODES={"*": "daily"}, NOTICE_REQUIRED_TYPES=["System"]
    )
    client = _client(app, 1)
    doc = client.get("/notices/preferences.json").get_json()
    assert doc["email_modes"]["Like"] == "daily" and doc["email_modes"]["System"] == "immediate"
    assert doc["email_mode_choices"] == ["immediate", "daily", "weekly", "off"]
    change = {"email_modes": {"Like": "weekly", "Comment": "immediate"}}
    assert client.post("/notices/preferences.json", json=change).status_code == 400  # no CSRF
    r = client.post("/notices/preferences.json", json=change, headers={"X-CSRFToken": TOKEN})
    assert r.status_code == 200
    assert r.get_json()["email_modes"]["Like"] == "weekly"
    for bad in ({"Like": "hourly"}, {"Nope": "daily"}, {"System": "off"}, ["x"]):
        r = client.post(
            "/notices/preferences.json", json={"email_modes": bad}, headers={"X-CSRFToken": TOKEN}
        )
        assert r.status_code == 400, bad
    with app.app_context():
        modes = app.notices.preferences.email_modes(1)
        assert (modes["Like"], modes["Comment"], modes["Post"]) == ("weekly", "immediate", "daily")
        # another user's choices are untouched
        assert app.notices.preferences.email_modes(2)["Like"] == "daily"


def test_preferences_page_shows_and_saves_email_modes(app_factory, smtp):
    app = _app(app_factory, smtp, NOTICE_EMAIL_MODES={"Like": "weekly"})
    client = _client(app, 3)
    html = client.get("/notices/preferences").get_data(as_text=True)
    assert 'name="mode:Like"' in html
    assert '<option value="weekly" selected>' in html
    form = {
        "on": ["Like:email"],  # Comment's email switch is off
        "mode:Like": "daily",
        "mode:Comment": "weekly",
        "csrf_token": TOKEN,
    }
    assert client.post("/notices/preferences", data=form).status_code == 303
    with app.app_context():
        modes = app.notices.preferences.email_modes(3)
        assert (modes["Like"], modes["Comment"]) == ("daily", "off")
    bad = dict(form, **{"mode:Like": "hourly"})
    assert client.post("/notices/preferences", data=bad).status_code == 400
