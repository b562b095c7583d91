"""Issue 16, item 3: notices under one group_key fold into one inbox item, sent once per
window; on SQLite and PostgreSQL, with the window-closing race on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, notice_event
from notice.columns import utcnow
from notice.errors import ConfigurationError
from notice.grouping import Group, default_subject
from notice.sweeper import sweep
from tests.support.emailapp import address, email_app
from tests.support.smtpserver import SMTPServer
from tests.support.sse import SSEClient, serving
from tests.support.waiting import wait_for

HOUR = timedelta(hours=1)
PHOTOS = "“Weekend photos”"


def like(name: str, user: int = 1, **kw: Any) -> Any:
    kw.setdefault("group_window", HOUR)
    return notice_event(
        user,
        NoticeType.LIKE,
        subject=f"{name} liked {PHOTOS}",
        content=f"{name} liked your post",
        url="/posts/7",
        group_key="like:post:7",
        actor_name=name,
        **kw,
    )


def rows(app: Any) -> list[Any]:
    table = app.notices.models.Notice.__table__
    app.db.session.expire_all()
    return list(app.db.session.execute(sa.select(table).order_by(table.c.id)).all())


def close_window(app: Any, notice_id: int) -> None:
    """Move the group's window end into the past (its deliveries stay due then)."""
    notice = app.notices.models.Notice.__table__
    past = utcnow() - timedelta(seconds=1)
    app.db.session.execute(
        sa.update(notice).where(notice.c.id == notice_id).values(group_until=past)
    )
    app.db.session.commit()


def test_likes_fold_into_one_unread_item_sent_once_when_the_window_ends(app, notices):
    memory = notices.sender("memory")
    first = like("Ana")
    assert first.group_count == 1 and first.subject == f"Ana liked {PHOTOS}"
    for actor in ("Ben", "Cy", "Ben"):
        folded = like(actor)
        assert folded.id == first.id
    [row] = rows(app)
    assert row.group_count == 4
    assert row.group_actors == ["Ben", "Cy", "Ana"]  # distinct, newest first
    assert row.subject == f"Ben and 3 others liked {PHOTOS}"
    assert row.read_status == "Unread"
    assert memory.outbox == []  # nothing before the window ends
    assert sweep(app).claimed == 0
    report = sweep(app, now=row.group_until + timedelta(seconds=1))
    assert report.sent == 1
    [sent] = memory.outbox
    assert sent.id == first.id and sent.subject == row.subject and sent.group_count == 4
    assert sent.to_dict()["group_actors"] == ["Ben", "Cy", "Ana"]
    # the mail went out: the next like opens a new group (and a new item)
    again = like("Dee")
    assert again.id != first.id and again.group_count == 1
    table = notices.models.Notice.__table__
    keys = dict(app.db.session.execute(sa.select(table.c.id, table.c.group_key)).all())
    assert keys == {first.id: None, again.id: "like:post:7"}


def test_a_read_group_is_unread_again_after_a_fold(app, notices):
    first = like("Ana")
    table = notices.models.Notice.__table__
    app.db.session.execute(
        sa.update(table)
        .where(table.c.id == first.id)
        .values(read_status="Read", read_at=utcnow(), archived_at=utcnow(), seen_at=utcnow())
    )
    app.db.session.commit()
    like("Ben")
    [row] = rows(app)
    assert (row.read_status, row.read_at, row.archived_at, row.seen_at) == ("Unread",) + (None,) * 3


def test_a_group_carries_its_newest_events_references_category_and_actions(app, notices):
    open_post = [{"label": "Open", "url": "/posts/7"}]
    first = like("Ana", actor=("user", 1), target=("post", 7), category="success")
    [row] = rows(app)
    assert (row.actor_type, row.actor_id, row.target_type, row.target_id) == (
        "user", "1", "post", "7"
    )
    assert (row.category, row.actions) == ("success", None)
    ben = {"actor": ("user", 2), "target": ("post", 7), "actions": open_post}
    assert like("Ben", **ben).id == first.id
    [row] = rows(app)
    assert (row.actor_id, row.target_id, row.category) == ("2", "7", "info")
    assert row.actions == [{"label": "Open", "url": "/posts/7", "method": "GET"}]
    assert notices.get(1, first.id).to_dict()["actor"]["id"] == "2"


def test_a_new_window_opens_a_new_group(app, notices):
    first = like("Ana")
    close_window(app, first.id)
    second = like("Ben")
    assert second.id != first.id
    # the first window's send still goes out, alone
    report = sweep(app, now=utcnow() + 2 * HOUR)
    assert report.sent == 2
    subjects = sorted(n.subject for n in notices.sender("memory").outbox)
    assert subjects == [f"Ana liked {PHOTOS}", f"Ben liked {PHOTOS}"]


def test_an_expired_group_is_not_folded_into(app, notices):
    first = like("Ana", expires_at=timedelta(minutes=5))
    table = notices.models.Notice.__table__
    app.db.session.execute(
        sa.update(table).where(table.c.id == first.id).values(expires_at=utcnow())
    )
    app.db.session.commit()
    second = like("Ben")
    assert second.id != first.id and second.group_count == 1


def test_groups_are_per_user_and_per_key(app, notices):
    a = like("Ana", user=1)
    b = like("Ana", user=2)
    c = notice_event(
        1, NoticeType.LIKE, subject="x", content="", group_key="like:post:8", group_window=HOUR
    )
    assert len({a.id, b.id, c.id}) == 3
    # a fan-out folds per user
    ids = notice_event(
        [1, 2, 3],
        NoticeType.LIKE,
        subject=f"Cy liked {PHOTOS}",
        content="",
        group_key="like:post:7",
        group_window=HOUR,
        actor_name="Cy",
    )
    assert len(ids) == 1  # only user 3 got a new item
    counts = {str(r.user_id): r.group_count for r in rows(app) if r.group_key == "like:post:7"}
    assert counts == {"1": 2, "2": 2, "3": 1}


def test_a_topic_publish_groups_per_subscriber(app, notices):
    topics = notices.topics
    topics.create("post:7")
    for user in (1, 2):
        topics.subscribe("post:7", user_id=user)
    kw = {"group_key": "comments:post:7", "group_window": HOUR}
    comment = NoticeType.COMMENT
    first = topics.publish("post:7", comment, subject="Ana commented", actor_name="Ana", **kw)
    again = topics.publish("post:7", comment, subject="Ben commented", actor_name="Ben", **kw)
    assert len(first.notice_ids) == 2 and again.notice_ids == []  # folded, none new
    assert sorted(r.subject for r in rows(app)) == ["Ben and 1 other commented"] * 2


def test_the_type_default_window_and_template_subjects(app_factory):
    app = app_factory(
        NOTICE_GROUP_WINDOWS={"Like": 600},
        NOTICE_GROUP_SUBJECTS={
            "Like": "{actor} and {others} more liked your photo ({count})",
            "Comment": lambda g: f"{g.count} comments by {', '.join(g.actors)}",
        },
    )
    with app.app_context():
        first = notice_event(
            1, NoticeType.LIKE, subject="Ana liked", content="", group_key="k", actor_name="Ana"
        )
        assert first.subject == "Ana liked"  # one notice: its own subject
        row = rows(app)[0]
        assert timedelta(seconds=599) < row.group_until - row.create_at <= timedelta(seconds=600)
        notice_event(
            1, NoticeType.LIKE, subject="Ben liked", content="", group_key="k", actor_name="Ben"
        )
        assert rows(app)[0].subject == "Ben and 1 more liked your photo (2)"
        for who in ("Ana", "Ben"):
            notice_event(
                1,
                NoticeType.COMMENT,
                subject="c",
                content="",
                group_key="c",
                group_window=HOUR,
                sender_id=None,
                actor_name=who,
            )
        assert rows(app)[1].subject == "2 comments by Ben, Ana"
        with pytest.raises(ValueError, match="NOTICE_GROUP_WINDOWS"):
            notice_event(1, NoticeType.COMMENT, subject="c", content="", group_key="x")


def test_default_subject():
    assert default_subject(Group("Like", "Ana liked it", 1, ("Ana",))) == "Ana liked it"
    assert default_subject(Group("Like", "Ana liked it", 2, ("Ana",))) == (
        "Ana and 1 other liked it"
    )
    assert default_subject(Group("Like", "New like", 3, ("Ana",))) == "New like (and 2 others)"


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"group_window": HOUR}, "group_window needs a group_key"),
        ({"group_key": "k", "group_window": timedelta(0)}, "positive timedelta"),
        ({"group_key": "k", "group_window": HOUR, "dedupe_key": "d"}, "exclude each other"),
        ({"group_key": "", "group_window": HOUR}, "group_key must be"),
        ({"group_key": "k"}, "NOTICE_GROUP_WINDOWS"),
        ({"group_key": "k", "group_window": HOUR, "actor": ""}, "actor must be"),
    ],
)
def test_bad_grouping_arguments(app, kw, message):
    with pytest.raises(ValueError, match=message):
        notice_event(1, NoticeType.LIKE, subject="s", content="", **kw)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"NOTICE_GROUP_WINDOWS": {"Like": 0}}, "NOTICE_GROUP_WINDOWS"),
        ({"NOTICE_GROUP_WINDOWS": {"Nope": 5}}, "Nope"),
        ({"NOTICE_GROUP_SUBJECTS": {"Like": "{who}"}}, "the fields are"),
        ({"NOTICE_GROUP_SUBJECTS": {"Like": 5}}, "NOTICE_GROUP_SUBJECTS"),
        ({"NOTICE_GROUP_ACTORS": 0}, "NOTICE_GROUP_ACTORS"),
    ],
)
def test_bad_grouping_config(app_factory, config, message):
    with pytest.raises(ConfigurationError, match=message):
        app_factory(**config)


def test_a_fold_is_one_live_event_with_the_group_count(app, notices):
    broker = notices.state(app).broker
    first = like("Ana")
    with broker.subscribe(1) as sub:
        like("Ben")
        event = sub.get(timeout=10)
        assert event["event"] == "notice" and event["id"] == first.id
        assert event["data"]["group_count"] == 2
        assert event["data"]["subject"] == f"Ben and 1 other liked {PHOTOS}"
        assert sub.get(timeout=10)["event"] == "count"
        assert sub.get(timeout=0.2) is None  # one event (and its count), not two


def test_the_stream_sends_each_fold_of_a_listed_item(app_factory):
    """The stream skips a notice it already sent (replay and live overlap), but a fold
    is a new version of the item: it is streamed again with its new count."""
    app = app_factory()
    app.notices.user_loader(lambda: 1)
    with app.app_context():
        first = like("Ana")
    with serving(app) as port, SSEClient(port, "/notices/stream?last_event_id=0") as client:
        replayed = client.next_of("notice")
        assert (replayed.data["id"], replayed.data["group_count"]) == (first.id, 1)
        with app.app_context():
            like("Ben")
        event = client.until(lambda e: e.event == "notice")
        assert (event.data["id"], event.data["group_count"]) == (first.id, 2)
        assert event.data["subject"] == f"Ben and 1 other liked {PHOTOS}"


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def test_one_email_per_window_through_smtp(app_factory, smtp):
    app = email_app(app_factory, smtp)
    with app.app_context():
        for actor in ("Ana", "Ben", "Cy"):
            like(actor)
        assert smtp.messages == []
        [row] = rows(app)
        assert sweep(app, now=row.group_until).sent == 1
        [mail] = smtp.messages
        assert mail.rcpt_tos == [address(1)]
        assert mail.message["Subject"] == f"Cy and 2 others liked {PHOTOS}"


def _race(app: Any, *, sweeper: bool) -> None:
    """Four publishers like in 150 ms windows; with ``sweeper``, a sweeper thread sends
    each group as its window ends, else only the dispatcher's timers do. Then: every
    like is counted in exactly one group, every group is sent exactly once, and what was
    sent is the group as finally stored (no fold after the send read it)."""
    memory = app.notices.state(app).sender("memory")
    window = timedelta(milliseconds=150)
    per_thread, threads = 60, 4
    stop = threading.Event()
    errors: list[BaseException] = []

    def publish(n: int) -> None:
        try:
            with app.app_context():
                for i in range(per_thread):
                    like(f"a{n}-{i}", group_window=window)
                    # the likes span several windows however fast the machine is
                    time.sleep(0.005)
                app.db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def sweeping() -> None:
        try:
            while not stop.is_set():
                sweep(app)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    helpers = [threading.Thread(target=sweeping)] if sweeper else []
    workers = [threading.Thread(target=publish, args=(n,)) for n in range(threads)]
    for w in helpers + workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    for w in helpers:
        w.join()
    assert errors == []
    with app.app_context():
        if sweeper:
            sweep(app, now=utcnow() + timedelta(seconds=5))
        else:
            # no sweeper at all: each group's timer (set when it opened, set again by a
            # fold near its end) sends it; wait for the last windows to end and send
            delivery = app.notices.models.Delivery.__table__
            waiting = sa.select(sa.func.count()).where(delivery.c.status == "Wait")
            assert wait_for(lambda: app.db.session.execute(waiting).scalar_one() == 0, 10)
        groups = rows(app)
        assert sum(r.group_count for r in groups) == per_thread * threads  # none lost
        assert len(groups) > 1  # windows did close while likes arrived
        sent = memory.outbox
        assert sorted(n.id for n in sent) == [r.id for r in groups]  # each group once
        final = {r.id: (r.group_count, r.subject) for r in groups}
        assert {n.id: (n.group_count, n.subject) for n in sent} == final


def test_window_closing_while_likes_arrive_sends_one_email_and_loses_none(app_factory):
    """The sweeper alone sends the groups (no dispatcher in this process)."""
    _race(app_factory(NOTICE_DISPATCH="none"), sweeper=True)


def test_window_closing_while_likes_arrive_with_timed_sends(app_factory):
    """Thread dispatch: windows ending within NOTICE_SCHEDULE_TIMER are timed in this
    process, beside a sweeper; the same guarantees hold."""
    _race(app_factory(NOTICE_DISPATCH="thread"), sweeper=True)


def test_timed_group_sends_need_no_sweeper_even_when_a_fold_holds_the_rows(app_factory):
    """No sweeper: a timer whose claim skipped rows a fold held (PostgreSQL's SKIP
    LOCKED) is made up for by the fold's own timer, so every group is still sent once."""
    _race(app_factory(NOTICE_DISPATCH="thread"), sweeper=False)


def test_a_short_window_is_sent_at_its_end_without_a_sweeper(app_factory):
    """A window within NOTICE_SCHEDULE_TIMER: the sync dispatcher's timer sends the
    group once, at the window's end, with every fold in it."""
    app = app_factory(NOTICE_DISPATCH="sync")
    memory = app.notices.state(app).sender("memory")
    with app.app_context():
        first = like("Ana", group_window=timedelta(seconds=1))
        like("Ben", group_window=timedelta(seconds=1))
        assert memory.outbox == []
        assert wait_for(lambda: len(memory.outbox) == 1, 5)
        [sent] = memory.outbox
        assert sent.id == first.id and sent.group_count == 2
        assert utcnow() >= first.group_until  # not before the window ended
        time.sleep(0.3)
        assert len(memory.outbox) == 1  # sent once


def test_a_long_window_is_left_to_the_sweeper(app_factory):
    """A window ending beyond NOTICE_SCHEDULE_TIMER is not timed in the process."""
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_SCHEDULE_TIMER=1)
    dispatcher = app.notices.state(app).dispatcher
    with app.app_context():
        like("Ana", group_window=timedelta(seconds=2))
        like("Ben", group_window=timedelta(seconds=2))
        assert dispatcher._timers == set()
