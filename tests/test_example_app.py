"""The example app through Flask's test client: every action makes the notices the
README promises, on SQLite and PostgreSQL.

What each action sends is checked with the test kit (``notice_outbox``, the pytest
plugin's fixture over the ``app`` fixture below); a few tests run on the example's own
thread-pool dispatch as well, which the outbox waits for."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from example_app import create_app, notices
from example_app.models import Follow, Post, User, db
from example_app.seed import DEMO_USERS, seed
from notice.columns import utcnow
from notice.sweeper import sweep
from notice.testing import capture_notices

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def make_app(db_url: str) -> Iterator[Any]:
    made: list[Flask] = []

    def make(**config: Any) -> Flask:
        settings = {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SECRET_KEY": "test-secret",
            "TESTING": True,
            "NOTICE_DISPATCH": "sync",
            "NOTICE_SENDERS": ["memory"],
            **config,
        }
        app = create_app(settings)
        # the demo data's notices go out on the background dispatcher too: capturing
        # them waits until they are sent, so no test's outbox starts with them in flight
        with capture_notices(app):
            seed(app)
        made.append(app)
        return app

    yield make
    for app in made:
        notices.state(app).dispatcher.shutdown()
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def dispatch() -> str:
    """``NOTICE_DISPATCH`` of the ``app`` fixture; tests parametrize it to "thread"."""
    return "sync"


@pytest.fixture
def app(make_app: Any, dispatch: str) -> Flask:
    app: Flask = make_app(NOTICE_DISPATCH=dispatch)
    return app


#: the example's own dispatch (a thread pool) as well as the tests' default
BOTH_DISPATCHES = pytest.mark.parametrize("dispatch", ["sync", "thread"])


def csrf(client: FlaskClient) -> str:
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match, "every page carries the CSRF meta tag"
    return match.group(1)


def post_form(client: FlaskClient, url: str, **data: Any) -> Any:
    return client.post(url, data={"csrf_token": csrf(client), **data})


def login(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    password = next(p for e, p, *_ in DEMO_USERS if e == email)
    response = post_form(client, "/login", email=email, password=password)
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def user_id(app: Flask, email: str) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(User.id).where(User.email == email)))


def post_id(app: Flask, title: str) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(Post.id).where(Post.title == title)))


def inbox(app: Flask, email: str) -> list[Any]:
    with app.app_context():
        return notices.list_notices(user_id(app, email), limit=100)


def new_notices(app: Flask, email: str, before: list[Any]) -> list[tuple[str, str]]:
    seen = {n.id for n in before}
    return [(n.notice_type, n.subject) for n in inbox(app, email) if n.id not in seen]


ANA, BEN = DEMO_USERS[0][0], DEMO_USERS[1][0]


def test_signup_hashes_the_password_logs_in_and_welcomes(app):
    client = app.test_client()
    response = post_form(
        client, "/signup", name="Cleo", email="Cleo@Example.org", password="long-enough-pw"
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # logged in
    with app.app_context():
        cleo = db.session.scalar(sa.select(User).where(User.email == "cleo@example.org"))
        assert cleo.password_hash != "long-enough-pw" and cleo.check_password("long-enough-pw")
    assert [(n.notice_type, n.subject) for n in inbox(app, "cleo@example.org")] == [
        ("System", "Welcome, Cleo!")
    ]
    again = post_form(
        app.test_client(), "/signup", name="C2", email="cleo@example.org", password="x" * 8
    )
    assert "already has an account" in again.get_data(as_text=True)


def test_login_refuses_a_wrong_password_and_an_offsite_next(app):
    client = app.test_client()
    bad = post_form(client, "/login", email=ANA, password="nope")
    assert bad.status_code == 200 and "Wrong email or password" in bad.get_data(as_text=True)
    assert client.get("/").status_code == 302  # still anonymous: to the login page
    token = csrf(client)
    ok = client.post(
        "/login?next=//evil.example/x",
        data={"csrf_token": token, "email": ANA, "password": DEMO_USERS[0][1]},
    )
    assert ok.headers["Location"] == "/"


def test_post_without_csrf_token_is_refused(app, notice_outbox):
    client = login(app, ANA)
    before = inbox(app, BEN)
    pid = post_id(app, "Weekend photos")
    assert client.post(f"/posts/{pid}/comments", data={"body": "hi"}).status_code == 400
    bad = client.post(f"/posts/{pid}/comments", data={"body": "hi", "csrf_token": "forged"})
    assert bad.status_code == 400
    assert new_notices(app, BEN, before) == []
    notice_outbox.assert_nothing_sent()


@BOTH_DISPATCHES
def test_ana_comments_on_bens_post(app, notice_outbox):
    ana = login(app, ANA)
    pid = post_id(app, "Weekend photos")
    notice_outbox.clear()  # logging in sends nothing, but be explicit about the start
    response = post_form(ana, f"/posts/{pid}/comments", body="Looks <b>great</b>!")
    assert response.status_code == 302
    [sent] = notice_outbox.assert_sent(to=user_id(app, BEN), type="Comment", count=1)
    notice_outbox.assert_not_sent(to=user_id(app, ANA))  # the actor hears nothing
    notice_outbox.assert_count(1)
    got = inbox(app, BEN)[0]
    assert got.id == sent.notice.id and got.send_status == "Sent"
    assert (got.notice_type, got.subject, got.content) == (
        "Comment",
        "Ana commented on “Weekend photos”",
        "Looks <b>great</b>!",
    )
    assert got.sender_id == user_id(app, ANA)
    assert re.fullmatch(rf"/posts/{pid}#c\d+", got.url)
    # the comment shows on the post page, escaped
    page = ana.get(f"/posts/{pid}").get_data(as_text=True)
    assert "Looks &lt;b&gt;great&lt;/b&gt;!" in page


def test_a_long_name_commenting_on_a_long_title_is_cut_to_fit(app):
    ben = login(app, BEN)
    title = "T" * 200  # the longest the post form keeps
    assert post_form(ben, "/posts", title=title, body="").status_code == 302
    pid = post_id(app, title)
    long_name = app.test_client()
    name = "N" * 80  # the longest signup takes
    post_form(long_name, "/signup", name=name, email="long@example.org", password="x" * 12)
    before = inbox(app, BEN)
    response = post_form(long_name, f"/posts/{pid}/comments", body="hi")
    assert response.status_code == 302
    [(kind, subject)] = new_notices(app, BEN, before)
    assert kind == "Comment" and len(subject) == 255
    assert subject.startswith(f"{name} commented on “TTT") and subject.endswith("T…")


@BOTH_DISPATCHES
def test_reply_and_watchers_each_hear_once(app, notice_outbox):
    ana, ben = login(app, ANA), login(app, BEN)
    cleo = app.test_client()
    post_form(cleo, "/signup", name="Cleo", email="cleo@example.org", password="cleo-pw-123")
    pid = post_id(app, "Weekend photos")  # Ben's post
    post_form(cleo, f"/posts/{pid}/watch")
    post_form(ana, f"/posts/{pid}/comments", body="first")
    with app.app_context():
        first = db.session.get(Post, pid).comments[-1].id
    notice_outbox.clear()
    post_form(ben, f"/posts/{pid}/comments", body="thanks!", parent_id=first)
    notice_outbox.assert_sent(
        to=user_id(app, ANA),
        type="Reply",
        count=1,
        where=lambda sent: sent.subject == "Ben replied to your comment",
    )
    notice_outbox.assert_not_sent(to=user_id(app, BEN))  # the post's author is the actor
    notice_outbox.assert_sent(
        to=user_id(app, "cleo@example.org"),
        type="Watching",
        count=1,
        where=lambda sent: sent.subject == "Ben commented on “Weekend photos”, which you watch",
    )
    notice_outbox.assert_count(2)  # each hears once
    # a reply to another post's comment is refused
    other = post_id(app, "Release notes for 0.2")
    refused = post_form(ben, f"/posts/{other}/comments", body="x", parent_id=first)
    assert refused.status_code == 400


def test_save_notifies_the_author_once(app, notice_outbox):
    ana = login(app, ANA)
    pid = post_id(app, "Weekend photos")
    post_form(ana, f"/posts/{pid}/save")
    post_form(ana, f"/posts/{pid}/save")  # undo: no notice
    [sent] = notice_outbox.assert_sent(to=user_id(app, BEN), type="Save", count=1)
    assert sent.subject == "Ana saved “Weekend photos”"
    notice_outbox.assert_count(1)


def _member(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    email = f"{name.lower()}@example.org"
    assert post_form(client, "/signup", name=name, email=email, password="long-enough-pw")
    return client


def test_follows_go_to_the_daily_digest_by_default_and_ben_may_choose(app):
    ben = login(app, BEN)
    doc = ben.get("/notices/preferences.json").get_json()
    assert doc["email_modes"]["Follow"] == "daily" and doc["email_modes"]["Comment"] == "immediate"
    change = {"email_modes": {"Follow": "weekly"}}
    r = ben.post("/notices/preferences.json", json=change, headers={"X-CSRFToken": csrf(ben)})
    assert r.status_code == 200 and r.get_json()["email_modes"]["Follow"] == "weekly"


def test_likes_within_the_window_fold_into_one_item_sent_once(app, notice_outbox):
    pid = post_id(app, "Weekend photos")
    before = inbox(app, BEN)
    for client in (login(app, ANA), _member(app, "Cleo"), _member(app, "Dan")):
        post_form(client, f"/posts/{pid}/like")
    post_form(login(app, BEN), f"/posts/{pid}/like")  # his own post: no notice
    assert new_notices(app, BEN, before) == [("Like", "Dan and 2 others liked “Weekend photos”")]
    notice_outbox.assert_count(0, type="Like")  # nothing before the window ends
    with app.app_context():
        [item] = [n for n in inbox(app, BEN) if n.notice_type == "Like"]
        assert item.group_count == 3 and item.group_actors == ["Dan", "Cleo", "Ana"]
        sweep(app, now=item.group_until)
    [sent] = notice_outbox.assert_sent(to=user_id(app, BEN), type="Like", count=1)
    assert sent.subject == "Dan and 2 others liked “Weekend photos”"


@BOTH_DISPATCHES
def test_follow_then_posts_reach_followers(app, notice_outbox):
    ana = login(app, ANA)
    ana_id, ben_id = user_id(app, ANA), user_id(app, BEN)
    post_form(ana, f"/users/{ben_id}/follow")
    [follow] = notice_outbox.assert_sent(to=ben_id, type="Follow", count=1)
    assert follow.subject == "Ana follows you"
    ben = login(app, BEN)
    notice_outbox.clear()
    post_form(ben, "/posts", title="New trail", body="north ridge")
    [post] = notice_outbox.assert_sent(to=ana_id, type="Post", count=1)
    [owner] = notice_outbox.assert_sent(to=ben_id, type="Owner", count=1)
    assert (post.subject, owner.subject) == ("Ben posted “New trail”", "You published “New trail”")
    notice_outbox.assert_count(2)
    assert post_form(ben, f"/users/{ben_id}/follow").status_code == 400  # not yourself


def test_groups_notify_members_but_not_the_actor(app):
    ana, ben = login(app, ANA), login(app, BEN)
    before_ana = inbox(app, ANA)
    created = post_form(ana, "/groups", name="Climbers")
    gid = int(created.headers["Location"].rsplit("/", 1)[1])
    assert new_notices(app, ANA, before_ana) == [("Owner", "You created the group Climbers")]
    with capture_notices(app) as outbox:
        post_form(ben, f"/groups/{gid}/join")
        [joined] = outbox.assert_sent(to=user_id(app, ANA), type="Group", count=1)
        assert joined.subject == "Ben joined Climbers"
        outbox.clear()
        post_form(ben, "/posts", title="Gear list", body="ropes", group_id=gid)
        outbox.assert_sent(
            to=user_id(app, ANA),
            type="Group",
            where=lambda sent: sent.subject == "Ben posted in Climbers: “Gear list”",
        )
        assert [c.notice_type for c in outbox.sent(to=user_id(app, BEN))] == ["Owner"]
    with app.app_context():
        history = notices.topics.messages(f"group:{gid}")
    assert [m.subject for m in history][:2] == [
        "Ben posted in Climbers: “Gear list”",
        "Ben joined Climbers",
    ]
    # one notice per event: Ben is a member and follows Ana, so her group post is Group only
    before_ben = inbox(app, BEN)
    post_form(ana, "/posts", title="Both ways", group_id=gid)
    assert [t for t, _ in new_notices(app, BEN, before_ben)] == ["Group"]
    post_form(ben, f"/groups/{gid}/join")  # leave: no more group notices for Ben
    before_ben = inbox(app, BEN)
    post_form(ana, "/posts", title="Quiet now", group_id=gid)
    assert [t for t, _ in new_notices(app, BEN, before_ben)] == ["Post"]  # follows Ana
    cleo = app.test_client()
    post_form(cleo, "/signup", name="Cleo", email="cleo@example.org", password="cleo-pw-123")
    assert post_form(cleo, "/posts", title="x", group_id=gid).status_code == 403


def test_seeding_twice_adds_nothing(app):
    assert seed(app) is False
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 2


def test_pages_render_with_the_bell_and_escape_user_text(app):
    ana = login(app, ANA)
    post_form(ana, "/posts", title="<script>alert(1)</script>", body="")
    page = ana.get("/").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    with app.app_context():
        unread = notices.unread_count(user_id(app, ANA))
    assert re.search(rf"data-notice-count[^>]*>\s*{unread}\s*<", page), "bell shows the count"
    for url in ("/", "/groups", f"/users/{user_id(app, BEN)}", "/posts/1"):
        assert ana.get(url).status_code == 200, url


def test_ops_page_is_for_admins_and_retries_failed_deliveries(make_app):
    app = make_app(NOTICE_SENDERS=["memory", "example_app.senders:FlakySender"])
    ana, ben = login(app, ANA), login(app, BEN)
    assert ben.get("/ops/").status_code == 404
    assert post_form(ben, "/ops/retry", delivery_id="1").status_code == 404
    post_form(ben, f"/posts/{post_id(app, 'Release notes for 0.2')}/comments", body="nice")
    page = ana.get("/ops/").get_data(as_text=True)
    assert "demo provider timed out" in page
    with app.app_context():
        Delivery = notices.Delivery
        failed = db.session.scalars(
            sa.select(Delivery).where(Delivery.channel == "flaky", Delivery.status == "Error")
        ).all()
    assert failed, "the flaky sender's first attempts failed"
    ids = [d.id for d in failed]
    assert f'<td data-status="Error">{len(ids)}</td>' in page
    assert ana.post("/ops/retry", data={"delivery_id": ids[0]}).status_code == 400  # no CSRF
    response = ana.post(
        "/ops/retry",
        data={"csrf_token": csrf(ana), "delivery_id": [str(i) for i in ids]},
        follow_redirects=True,
    )
    assert f"Retried {len(ids)}: {len(ids)} sent" in response.get_data(as_text=True)
    with app.app_context():
        statuses = db.session.scalars(sa.select(Delivery.status).where(Delivery.id.in_(ids)))
        assert set(statuses) == {"Sent"}


def test_the_comment_email_is_rendered_for_bens_address(make_app):
    """The email Ben would get, rendered by the real email sender and captured: no
    SMTP server needed, and nothing is mailed."""
    app = make_app(
        NOTICE_DISPATCH="thread",
        EXAMPLE_COMMENT_EMAIL_DELAY=0,  # at once
        NOTICE_MAIL_SENDER="Example <noreply@example.org>",
        NOTICE_BASE_URL="http://127.0.0.1:5000",
    )
    assert app.config["NOTICE_SENDERS"] == ["memory", "email"]
    ana = login(app, ANA)
    pid = post_id(app, "Weekend photos")
    with capture_notices(app) as outbox:
        post_form(ana, f"/posts/{pid}/comments", body="Looks <b>great</b>!")
        [sent] = outbox.assert_sent(to=user_id(app, BEN), channel="email", count=1)
    email = sent.email
    assert email.to == BEN and email.subject == "Ana commented on “Weekend photos”"
    assert "Looks &lt;b&gt;great&lt;/b&gt;!" in email.html  # the comment, escaped
    link = re.search(rf'href="(http://127\.0\.0\.1:5000/posts/{pid}#c\d+)"', email.html)
    assert link, email.html
    assert link.group(1) in email.text
    assert "/notices/unsubscribe/" in email.message["List-Unsubscribe"]
    outbox.assert_not_sent(to=user_id(app, ANA))


def _comment_delivery(app: Flask, notice_id: int) -> tuple[str, str | None]:
    with app.app_context():
        row = db.session.execute(
            sa.select(notices.Delivery.status, notices.Delivery.last_error).where(
                notices.Delivery.notice_id == notice_id, notices.Delivery.channel == "email"
            )
        ).one()
    return row.status, row.last_error


def test_a_comment_is_emailed_only_if_still_unread_after_the_delay(make_app):
    """EXAMPLE_COMMENT_EMAIL_DELAY (10 minutes by default): the in-app notice at once,
    the email when the delay ends and only if Ben has not read the notice by then. The
    sweeper is run at the delay's end."""
    app = make_app(NOTICE_MAIL_SENDER="Example <noreply@example.org>")
    assert app.config["EXAMPLE_COMMENT_EMAIL_DELAY"] == 600
    ana, ben = login(app, ANA), login(app, BEN)
    pid = post_id(app, "Weekend photos")
    with capture_notices(app) as outbox:
        post_form(ana, f"/posts/{pid}/comments", body="unread, so mailed")
        [unread] = [n for n in inbox(app, BEN) if n.content == "unread, so mailed"]
        post_form(ana, f"/posts/{pid}/comments", body="read, so not mailed")
        [read] = [n for n in inbox(app, BEN) if n.content == "read, so not mailed"]
        outbox.assert_sent(to=user_id(app, BEN), channel="memory", count=2)  # in-app at once
        outbox.assert_count(0, channel="email")
        # Ben reads the second one on the inbox's JSON API (CSRF header, his own notice)
        token = csrf(ben)
        r = ben.post(f"/notices/api/notices/{read.id}/read", headers={"X-CSRFToken": token})
        assert r.status_code == 200, r.get_data(as_text=True)
        sweep(app, now=utcnow() + timedelta(seconds=599))  # not yet due
        outbox.assert_count(0, channel="email")
        sweep(app, now=utcnow() + timedelta(seconds=601))
        [sent] = outbox.assert_sent(to=user_id(app, BEN), channel="email", count=1)
    assert sent.notice.id == unread.id and sent.subject == "Ana commented on “Weekend photos”"
    assert _comment_delivery(app, unread.id)[0] == "Sent"
    assert _comment_delivery(app, read.id) == ("Skipped", "read before send")


def test_a_short_comment_email_delay_is_timed_by_the_dispatcher(make_app):
    """The demo's shortened delay (within NOTICE_SCHEDULE_TIMER) needs no sweeper: the
    thread dispatcher times the email itself."""
    app = make_app(
        NOTICE_DISPATCH="thread",
        NOTICE_MAIL_SENDER="Example <noreply@example.org>",
        EXAMPLE_COMMENT_EMAIL_DELAY=1,
    )
    ana = login(app, ANA)
    pid = post_id(app, "Weekend photos")
    with capture_notices(app) as outbox:
        started = time.monotonic()
        post_form(ana, f"/posts/{pid}/comments", body="timed")
        # the outbox waits (up to 10 s) until every delivery written has an outcome
        [sent] = outbox.assert_sent(to=user_id(app, BEN), channel="email", count=1)
        assert time.monotonic() - started >= 1.0  # not before the delay
    assert _comment_delivery(app, sent.notice.id)[0] == "Sent"


def test_a_wrong_comment_email_delay_fails_at_startup():
    with pytest.raises(ValueError, match="EXAMPLE_COMMENT_EMAIL_DELAY"):
        create_app({"EXAMPLE_COMMENT_EMAIL_DELAY": -1, "SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_preferences_page_in_the_layout_turns_email_off_and_on(make_app):
    from tests.support.smtpserver import SMTPServer
    from tests.support.waiting import wait_for

    with SMTPServer() as smtp:
        app = make_app(
            NOTICE_MAIL_HOST=smtp.host,
            NOTICE_MAIL_PORT=smtp.port,
            NOTICE_MAIL_SENDER="Example <noreply@example.org>",
            NOTICE_BASE_URL="http://127.0.0.1:5000",
        )
        assert "email" in app.config["NOTICE_SENDERS"]
        ana, ben = login(app, ANA), login(app, BEN)
        page = ben.get("/notices/preferences").get_data(as_text=True)
        assert 'class="brand"' in page and 'value="Comment:email"' in page  # our layout
        assert '<a href="/notices/preferences">Preferences</a>' in page
        # Ben keeps every switch on except Comment by email
        switches = re.findall(r'name="on" value="([^"]+)"', page)
        response = ben.post(
            "/notices/preferences",
            data={"csrf_token": csrf(ben), "on": [s for s in switches if s != "Comment:email"]},
        )
        assert response.status_code == 303
        smtp.reset()  # the demo data's mail
        pid = post_id(app, "Weekend photos")
        post_form(ana, f"/posts/{pid}/comments", body="no mail for this one")
        post_form(ana, f"/posts/{pid}/save")
        assert wait_for(lambda: len(smtp.messages) == 1)
        assert smtp.messages[0].rcpt_tos == [BEN]
        assert smtp.messages[0].message["Subject"] == "Ana saved “Weekend photos”"
        comment = inbox(app, BEN)[1]
        assert comment.notice_type == "Comment"  # still in the inbox
        with app.app_context():
            channels = db.session.scalars(
                sa.select(notices.Delivery.channel).where(notices.Delivery.notice_id == comment.id)
            ).all()
        assert "email" not in channels and "memory" in channels


def test_push_button_and_a_comment_pushed_to_bens_browser(make_app):
    from tests.support.pushapp import push_config, vapid_keys
    from tests.support.pushservice import PushService
    from tests.support.waiting import wait_for

    with PushService(vapid_keys().public_key) as service:
        app = make_app(**push_config(service, NOTICE_SENDERS=["memory"]))
        assert app.config["NOTICE_SENDERS"] == ["memory", "webpush"]
        ana, ben = login(app, ANA), login(app, BEN)
        page = ben.get("/").get_data(as_text=True)
        assert "data-notice-push" in page and "notice/push.js" in page
        browser = service.new_subscription("ben-laptop")
        response = ben.post(
            "/notices/push/subscribe", json=browser, headers={"X-CSRFToken": csrf(ben)}
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        post_form(ana, f"/posts/{post_id(app, 'Weekend photos')}/comments", body="Wow")
        assert wait_for(lambda: len(service.received_for(PushService.token_of(browser))) == 1)
        [push] = service.received_for(PushService.token_of(browser))
        assert push.json()["title"] == "Ana commented on “Weekend photos”"
        assert push.json()["body"] == "Wow" and push.json()["type"] == "Comment"


def test_no_push_button_without_vapid_keys(app):
    page = login(app, BEN).get("/").get_data(as_text=True)
    assert "data-notice-push" not in page and "push.js" not in page
    assert app.config["NOTICE_SENDERS"] == ["memory"]


def test_sweeper_cli_sends_what_the_app_left_waiting(make_app):
    app = make_app(NOTICE_DISPATCH="none")  # the README's "worker does all the sending"
    ana = login(app, ANA)
    post_form(ana, f"/posts/{post_id(app, 'Weekend photos')}/comments", body="sweep me")
    comment = inbox(app, BEN)[0]
    with app.app_context():
        Delivery = notices.Delivery
        status = sa.select(Delivery.status).where(Delivery.notice_id == comment.id)
        assert db.session.scalars(status).all() == ["Wait"]
    result = app.test_cli_runner().invoke(args=["notice", "sweep"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalars(status).all() == ["Sent"]
        outbox = notices.state(app).sender("memory").outbox
        assert comment.id in [n.id for n in outbox]


def test_an_oversized_comment_is_refused_kindly(app):
    ana = login(app, ANA)
    pid = post_id(app, "Weekend photos")
    before = inbox(app, BEN)
    with app.app_context():
        comments = len(db.session.get(Post, pid).comments)
    # over NOTICE_MAX_CONTENT (64 KB) but within the form parser's limit: a flash
    response = post_form(ana, f"/posts/{pid}/comments", body="x" * 70_000)
    assert response.status_code == 302
    page = ana.get(response.headers["Location"]).get_data(as_text=True)
    assert "This comment is too long." in page
    # 20 MB: refused before anything is stored, never a 500
    huge = post_form(ana, f"/posts/{pid}/comments", body="x" * 20_000_000)
    assert 400 <= huge.status_code < 500 or huge.status_code == 302
    assert new_notices(app, BEN, before) == []
    with app.app_context():
        assert len(db.session.get(Post, pid).comments) == comments
    # a post's body is bounded the same way
    refused = post_form(ana, "/posts", title="Long", body="y" * 70_000)
    assert "This post is too long." in ana.get(refused.headers["Location"]).get_data(as_text=True)


def test_only_members_may_follow_read_or_publish_to_a_group(app):
    """The example's topic authorizer: a private group's topic is its members'. Before
    it, a non-member could subscribe through the service API and read the posts."""
    ana, ben = login(app, ANA), login(app, BEN)
    created = post_form(ana, "/groups", name="Climbers")
    gid = int(created.headers["Location"].rsplit("/", 1)[1])
    post_form(ana, "/posts", title="Secret crag", group_id=gid)
    topic = f"group:{gid}"
    api = "/api/v1"

    def calls(client: FlaskClient) -> list[int]:
        headers = {"X-CSRFToken": csrf(client)}
        return [
            client.post(
                f"{api}/topics/subscribe", json={"topic": topic}, headers=headers
            ).status_code,
            client.get(f"{api}/notifications/list?topic={topic}").status_code,
            client.post(
                f"{api}/notifications/publish",
                json={"topic": topic, "notification": "Meet at 8"},
                headers=headers,
            ).status_code,
        ]

    assert calls(ben) == [403, 403, 403]  # not a member
    refused = ben.get(f"{api}/notifications/list?topic={topic}")
    assert refused.json["error"] == "forbidden"
    assert "Secret crag" not in refused.get_data(as_text=True)
    assert topic not in (ben.get(f"{api}/topics/list").get_json(silent=True) or [])
    post_form(ben, f"/groups/{gid}/join")
    before_ana = inbox(app, ANA)
    assert calls(ben) == [200, 200, 200]  # a member
    assert ("System", "Meet at 8") in new_notices(app, ANA, before_ana)
    history = ben.get(f"{api}/notifications/list?topic={topic}").json
    assert "Meet at 8" in [m["title"] for m in history]
    post_form(ben, f"/groups/{gid}/join")  # left: refused again
    assert calls(ben)[1:] == [403, 403]


def test_posts_in_a_group_are_watched_only_by_its_members(app):
    ana, ben = login(app, ANA), login(app, BEN)
    created = post_form(ana, "/groups", name="Runners")
    gid = int(created.headers["Location"].rsplit("/", 1)[1])
    post_form(ana, "/posts", title="Route plan", group_id=gid)
    post_form(ana, "/posts", title="Open thoughts")
    headers = {"X-CSRFToken": csrf(ben)}
    api = "/api/v1"
    for title, status in (("Route plan", 403), ("Open thoughts", 200)):
        pid = post_id(app, title)
        post_form(ana, f"/posts/{pid}/watch")  # makes the post's topic
        body = {"topic": f"post:{pid}"}
        resp = ben.post(f"{api}/topics/subscribe", json=body, headers=headers)
        assert resp.status_code == status, title
        publish = {"topic": f"post:{pid}", "notification": "spam"}
        resp = ben.post(f"{api}/notifications/publish", json=publish, headers=headers)
        assert resp.status_code == 403  # only the app publishes comments


def test_counts_read_in_the_singular_and_plural(app):
    counted = app.jinja_env.filters["counted"]
    assert (counted(1, "comment"), counted(0, "comment"), counted(2, "comment")) == (
        "1 comment",
        "0 comments",
        "2 comments",
    )
    assert counted(1, "delivery", "deliveries") == "1 delivery"
    assert counted(3, "delivery", "deliveries") == "3 deliveries"
    feed = login(app, ANA).get("/").get_data(as_text=True)
    assert re.search(r"· \d+ comments?</span>", feed)
    assert not re.search(r"\b1 comments\b", feed)


def test_example_slack_switch_posts_one_message_per_event(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # EXAMPLE_SLACK=1: a console "Slack" webhook and a shared-channel route to it
    from notice import NoticeType, notice_event

    monkeypatch.setenv("EXAMPLE_SLACK", "1")
    app = make_app()
    users = [user_id(app, email) for email, *_ in DEMO_USERS]
    capfd.readouterr()  # the seed's events posted too
    with app.app_context():
        Delivery = notices.state(app).models.Delivery
        slack = sa.select(Delivery).where(Delivery.channel == "slack").order_by(Delivery.id)
        before = len(db.session.scalars(slack).all())
        notice_event(users, NoticeType.POST, subject="Shared news", content="for everyone")
        rows = db.session.scalars(slack).all()
    assert len(users) > 1 and len(rows) == before + 1  # one delivery for the event
    assert rows[-1].target == "shared:team" and rows[-1].status == "Sent"
    printed = [line for line in capfd.readouterr().out.splitlines() if "Shared news" in line]
    assert printed == ["[slack #team] 'Shared news\\nfor everyone'"]


def _item(page: str, nid: int) -> str:
    found = re.search(rf'<li class="notice-item[^"]*" data-notice-id="{nid}".*?</li>', page, re.S)
    assert found, page
    return found.group(0)


def test_inbox_names_actor_and_post_and_offers_reply(app):
    ana = login(app, ANA)
    pid, ana_id = post_id(app, "Weekend photos"), user_id(app, ANA)
    post_form(ana, f"/posts/{pid}/comments", body="Nice")
    got = inbox(app, BEN)[0]
    assert (got.actor_type, got.actor_id, got.target_type, got.target_id) == (
        "user", str(ana_id), "post", str(pid)
    )
    cid = got.url.rsplit("#c", 1)[1]
    item = _item(login(app, BEN).get("/notices/").get_data(as_text=True), got.id)
    # the resolver's names and pages, not the stored ids
    assert f'<a class="notice-item__actor" href="/users/{ana_id}">Ana</a>' in item
    assert f'<a class="notice-item__target" href="/posts/{pid}">Weekend photos</a>' in item
    reply = f"/posts/{pid}?reply={cid}#c{cid}"
    assert f'<a class="notice-button notice-action" href="{reply}">Reply</a>' in item
    # the action opens the reply form under that comment
    page = login(app, BEN).get(reply).get_data(as_text=True)
    assert re.search(rf'id="c{cid}".*?<details open>', page, re.S)


def test_follow_back_is_a_post_action_with_the_apps_csrf(app):
    ana_id, ben_id = user_id(app, ANA), user_id(app, BEN)
    # the demo data: Ben follows Ana, who does not follow him yet
    [follow] = [n for n in inbox(app, ANA) if n.notice_type == "Follow"]
    assert follow.subject == "Ben follows you" and follow.category == "info"
    ana = login(app, ANA)
    item = _item(ana.get("/notices/").get_data(as_text=True), follow.id)
    action = f"/users/{ben_id}/follow-back"
    assert f'<form class="notice-action-form" method="post" action="{action}">' in item
    assert f'name="csrf_token" value="{csrf(ana)}"' in item
    assert ana.post(action).status_code == 400  # no token
    assert post_form(ana, action).status_code == 302
    assert post_form(ana, action).status_code == 302  # again: still following, once
    with app.app_context():
        assert db.session.get(Follow, (ana_id, ben_id)) is not None
    # Ben hears Ana follows him, once, with no "Follow back": he follows her already
    [back] = [n for n in inbox(app, BEN) if n.notice_type == "Follow"]
    assert back.subject == "Ana follows you" and not back.actions
