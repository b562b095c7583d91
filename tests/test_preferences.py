"""Preferences: routing gate, defaults, required types, the page and JSON endpoint, and
the signed one-click unsubscribe link."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from itsdangerous import TimestampSigner

from notice import Notices, NoticeType, notice_event
from notice.links import DIGEST, unsubscribe_url
from notice.web.auth import SESSION_KEY
from tests.support.emailapp import deliveries

TOKEN = "csrf-test-token"


def _app(app_factory: Any, **config: Any) -> Flask:
    app: Flask = app_factory(NOTICE_BASE_URL="https://app.example", **config)
    app.notices.user_loader(lambda: request.headers.get("X-User", type=int))  # type: ignore[attr-defined]
    return app


def _client(app: Flask, user: int | None = None) -> Any:
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = TOKEN
    if user is not None:
        client.environ_base["HTTP_X_USER"] = str(user)
    return client


def _delivered_users(app: Flask) -> list[int]:
    return sorted(d.notice.user_id for d in deliveries(app))


def test_off_means_no_delivery_row_but_the_notice_stays(app_factory):
    app = _app(app_factory)
    with app.app_context():
        prefs = app.notices.preferences
        prefs.set(1, "Like", "memory", False)
        assert not prefs.enabled(1, "Like", "memory") and prefs.enabled(2, "Like", "memory")
        ids = notice_event([1, 2], NoticeType.LIKE, subject="liked", content="")
        assert len(ids) == 2  # both inboxes get the notice
        assert _delivered_users(app) == [2]
        assert [n.user_id for n in app.notices.sender("memory").outbox] == [2]
        assert app.notices.unread_count(1) == 1
        notice_event(1, NoticeType.COMMENT, subject="other type", content="")
        assert _delivered_users(app) == [1, 2]
        prefs.set(1, "Like", "memory", True)  # back on
        notice_event(1, NoticeType.LIKE, subject="again", content="")
        assert _delivered_users(app) == [1, 1, 2]


def test_defaults_from_config(app_factory):
    app = _app(
        app_factory,
        NOTICE_PREFERENCE_DEFAULTS={"*": {"memory": False}, "System": {"memory": True}},
    )
    with app.app_context():
        prefs = app.notices.preferences
        prefs.set(3, "Like", "memory", True)
        assert prefs.get(1)["Like"] == {"memory": False}
        assert prefs.get(1)["System"] == {"memory": True}
        assert prefs.get(3)["Like"] == {"memory": True}
        notice_event([1, 3], NoticeType.LIKE, subject="liked", content="")
        assert _delivered_users(app) == [3]
        notice_event([1, 3], NoticeType.SYSTEM, subject="maintenance", content="")
        assert _delivered_users(app) == [1, 3, 3]


def test_required_types_ignore_opt_out(app_factory):
    app = _app(app_factory, NOTICE_REQUIRED_TYPES=["System"])
    with app.app_context():
        prefs = app.notices.preferences
        with pytest.raises(ValueError, match="required"):
            prefs.set(1, "System", "memory", False)
        # a row stored before the type became required is ignored
        app.db.session.execute(
            sa.insert(prefs.Preference.__table__).values(
                user_id=1, notice_type="System", channel="memory", enabled=False
            )
        )
        app.db.session.commit()
        assert prefs.get(1)["System"] == {"memory": True}
        notice_event(1, NoticeType.SYSTEM, subject="security notice", content="")
        assert _delivered_users(app) == [1]


def test_gate_is_one_query_for_the_whole_fan_out(app_factory):
    app = _app(app_factory)
    with app.app_context():
        prefs = app.notices.preferences
        for user in (5, 500, 1999):
            prefs.set(user, "Like", "memory", False)
        prefs.set(7, "Like", "memory", True)
        statements: list[str] = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        engine = app.db.engine
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            allowed = prefs.allowed("memory", "Like", list(range(2000)))
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(statements) == 1
        assert allowed == set(range(2000)) - {5, 500, 1999}


def test_bad_choices_are_refused(app_factory):
    app = _app(app_factory)
    with app.app_context():
        prefs = app.notices.preferences
        with pytest.raises(ValueError, match="unknown notice type"):
            prefs.set(1, "Nope", "memory", True)
        with pytest.raises(ValueError, match="unknown channel"):
            prefs.set(1, "Like", "fax", False)
        with pytest.raises(ValueError, match="digest frequency"):
            prefs.set_digest(1, "hourly")
        prefs.set_digest(1, "weekly")
        assert prefs.get_digest(1) == "weekly" and prefs.get_digest(2) == "off"


def test_json_endpoint_needs_login_and_csrf(app_factory):
    app = _app(app_factory, NOTICE_REQUIRED_TYPES=["System"])
    anonymous = _client(app)
    assert anonymous.get("/notices/preferences.json").status_code == 401
    client = _client(app, user=4)
    doc = client.get("/notices/preferences.json").get_json()
    assert doc["preferences"]["Like"] == {"memory": True}
    assert doc["channels"] == ["memory"] and doc["required"] == ["System"]
    assert doc["digest"] == "off"

    change = {"preferences": {"Like": {"memory": False}}, "digest": "daily"}
    assert client.post("/notices/preferences.json", json=change).status_code == 400  # no CSRF
    response = client.post("/notices/preferences.json", json=change, headers={"X-CSRFToken": TOKEN})
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["preferences"]["Like"] == {"memory": False} and doc["digest"] == "daily"

    # one bad entry: a 400 and nothing written
    bad = {"preferences": {"Comment": {"memory": False}, "System": {"memory": False}}}
    response = client.post("/notices/preferences.json", json=bad, headers={"X-CSRFToken": TOKEN})
    assert response.status_code == 400 and "required" in response.get_json()["message"]
    for body in (
        {"preferences": {"Like": {"fax": False}}},
        {"preferences": {"Like": {"memory": "no"}}},
        {"digest": "hourly"},
        {"other": 1},
        [],
    ):
        r = client.post("/notices/preferences.json", json=body, headers={"X-CSRFToken": TOKEN})
        assert r.status_code == 400, body
    with app.app_context():
        assert app.notices.preferences.get(4)["Comment"] == {"memory": True}
        assert app.notices.preferences.get(1)["Like"] == {"memory": True}  # other users untouched


def test_preferences_page_and_form(app_factory):
    app = _app(app_factory, NOTICE_REQUIRED_TYPES=["System"])
    client = _client(app, user=2)
    page = client.get("/notices/preferences")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="Like:memory"' in html and 'name="csrf_token"' in html
    assert html.count("disabled") >= 1  # the required type's switch
    assert client.post("/notices/preferences", data={"on": ["Comment:memory"]}).status_code == 400
    response = client.post(
        "/notices/preferences",
        data={"on": ["Comment:memory"], "digest": "weekly", "csrf_token": TOKEN},
    )
    assert response.status_code == 303
    assert "Your preferences are saved" in client.get(response.location).get_data(as_text=True)
    with app.app_context():
        prefs = app.notices.preferences.get(2)
        assert prefs["Comment"] == {"memory": True}
        assert prefs["Like"] == {"memory": False} and prefs["Post"] == {"memory": False}
        assert prefs["System"] == {"memory": True}  # required: not switchable
        assert app.notices.preferences.get_digest(2) == "weekly"


def _link_path(app: Flask, user: int, notice_type: str | None, channel: str) -> str:
    with app.app_context():
        return unsubscribe_url(app, user, notice_type, channel).removeprefix("https://app.example")


def test_unsubscribe_round_trip_without_login(app_factory):
    app = _app(app_factory)
    path = _link_path(app, 9, "Like", "memory")
    assert path.startswith("/notices/unsubscribe/")
    client = app.test_client()  # no session, no user, no CSRF token
    page = client.get(path)
    assert page.status_code == 200 and b"Stop receiving Like notices by memory?" in page.data
    assert page.headers["Referrer-Policy"] == "no-referrer"
    with app.app_context():
        assert app.notices.preferences.enabled(9, "Like", "memory")  # GET changes nothing
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and b"You are unsubscribed" in done.data
    assert client.post(path).status_code == 200  # idempotent
    with app.app_context():
        assert not app.notices.preferences.enabled(9, "Like", "memory")
        notice_event(9, NoticeType.LIKE, subject="liked", content="")
        assert deliveries(app) == []


def test_digest_unsubscribe(app_factory):
    app = _app(app_factory)
    with app.app_context():
        app.notices.preferences.set_digest(9, "daily")
    path = _link_path(app, 9, None, DIGEST)
    client = app.test_client()
    assert b"Stop receiving digest emails?" in client.get(path).data
    assert client.post(path).status_code == 200
    with app.app_context():
        assert app.notices.preferences.get_digest(9) == "off"


def test_required_type_cannot_be_unsubscribed(app_factory):
    app = _app(app_factory, NOTICE_REQUIRED_TYPES=["System"])
    path = _link_path(app, 9, "System", "memory")
    client = app.test_client()
    assert b"cannot be turned off" in client.get(path).data
    assert client.post(path).status_code == 409
    with app.app_context():
        assert app.notices.preferences.enabled(9, "System", "memory")


def test_a_signed_token_naming_no_user_id_is_refused(app_factory):
    """A genuine link whose user id is none of this app's (ids changed type since it
    was signed) is an invalid link, not a server error."""
    app = _app(app_factory)
    with app.app_context():
        path = unsubscribe_url(app, "not-a-number", "Like", "memory")
    path = path.removeprefix("https://app.example")
    client = app.test_client()
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 400 and b"not valid" in response.data


def test_tampered_expired_or_foreign_tokens_are_refused(app_factory, monkeypatch):
    app = _app(app_factory, NOTICE_UNSUBSCRIBE_MAX_AGE=3600)
    path = _link_path(app, 9, "Like", "memory")
    prefix, token = path.rsplit("/", 1)
    payload, stamp, signature = token.split(".")
    forged_user = _link_path(app, 10, "Like", "memory").rsplit("/", 1)[1].split(".")[0]
    other = Flask("other")
    other.config.update(SECRET_KEY="another-secret", NOTICE_URL_PREFIX="/notices")
    foreign = unsubscribe_url_for(other, 9)
    # signed an hour and a bit ago: past NOTICE_UNSUBSCRIBE_MAX_AGE
    real_time = time.time
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(real_time()) - 3700)
    expired = _link_path(app, 9, "Like", "memory")
    monkeypatch.undo()
    client = app.test_client()
    for bad in (
        f"{prefix}/{payload}.{stamp}.{signature[:-2]}xx",  # signature changed
        f"{prefix}/{forged_user}.{stamp}.{signature}",  # payload swapped for user 10's
        f"{prefix}/garbage",
        foreign,
        expired,
    ):
        for method in (client.get, client.post):
            response = method(bad)
            assert response.status_code == 400, (bad, method)
            assert b"not valid" in response.data
    with app.app_context():
        assert app.notices.preferences.enabled(9, "Like", "memory")
        assert app.notices.preferences.enabled(10, "Like", "memory")


def unsubscribe_url_for(app: Flask, user: int) -> str:
    app.config.update(NOTICE_BASE_URL="https://app.example")
    return unsubscribe_url(app, user, "Like", "memory").removeprefix("https://app.example")


@pytest.mark.parametrize("csrf_first", [True, False])
def test_one_click_works_under_flask_wtf_csrf(db_url, csrf_first):
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        SECRET_KEY="test-secret",
        NOTICE_SENDERS=["memory"],
        NOTICE_BASE_URL="https://app.example",
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    csrf = CSRFProtect()
    if csrf_first:
        csrf.init_app(app)
    notices.init_app(app)
    if not csrf_first:
        csrf.init_app(app)
    notices.user_loader(lambda: 9)
    try:
        with app.app_context():
            db.create_all()
        path = _link_path(app, 9, "Like", "memory")
        client = app.test_client()
        assert client.post(path).status_code == 200
        with app.app_context():
            assert not notices.preferences.enabled(9, "Like", "memory")
        # everything else stays protected by Flask-WTF
        change = {"preferences": {"Like": {"memory": True}}}
        assert client.post("/notices/preferences.json", json=change).status_code == 400
    finally:
        notices.state(app).dispatcher.shutdown()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_deleting_a_user_deletes_their_choices(app_factory):
    def with_users(db: Any) -> None:
        class User(db.Model):
            __tablename__ = "user"
            id = sa.Column(sa.Integer, primary_key=True)

        db.User = User

    app = app_factory(notices_options={"user_table": "user.id"}, setup=with_users)
    with app.app_context():
        db, prefs = app.db, app.notices.preferences
        db.session.add_all([db.User(id=1), db.User(id=2)])
        db.session.commit()
        for user in (1, 2):
            prefs.set(user, "Like", "memory", False)
            prefs.set_digest(user, "daily")
        db.session.delete(db.session.get(db.User, 1))
        db.session.commit()
        for model in (prefs.Preference, prefs.DigestSetting):
            users = db.session.execute(sa.select(model.user_id)).scalars().all()
            assert users == [2], model
        with pytest.raises(sa.exc.IntegrityError):  # no choices for unknown users
            prefs.set(3, "Like", "memory", False)
