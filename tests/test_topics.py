"""Topics: management, user and device subscriptions, fan-out publish (bulk inserts),
and the GraphSpace kinds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, notice_event
from notice.topics import UnknownTopic
from tests.support.pushapp import add_device, deliveries, push_config, vapid_keys
from tests.support.pushservice import PushService


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


def _notices(app: Any) -> list[Any]:
    Notice = app.notices.Notice
    app.db.session.expire_all()
    return list(app.db.session.execute(sa.select(Notice).order_by(Notice.id)).scalars())


def test_create_list_delete(app):
    topics = app.notices.topics
    assert topics.all() == []
    topics.create("industry:google", "Google's plants")
    topics.create("graph:7")
    assert [t.name for t in topics.all()] == ["graph:7", "industry:google"]
    assert topics.get("industry:google").description == "Google's plants"
    with pytest.raises(ValueError, match="already exists"):
        topics.create("graph:7")
    for bad in ["", "has space", "a/b", "-dash", "x" * 129, None]:
        with pytest.raises(ValueError, match="topic name"):
            topics.create(bad)
    assert topics.delete("graph:7") is True
    assert topics.delete("graph:7") is False
    assert [t.name for t in topics.all()] == ["industry:google"]


def test_subscribe_and_unsubscribe_users(app):
    topics = app.notices.topics
    topics.create("group:lab")
    assert topics.subscribe("group:lab", user_id=1) is True
    assert topics.subscribe("group:lab", user_id=1) is False
    assert topics.subscribe("group:lab", user_id=2) is True
    assert topics.subscribers("group:lab") == ([1, 2], {})
    assert topics.unsubscribe("group:lab", user_id=1) is True
    assert topics.unsubscribe("group:lab", user_id=1) is False
    assert topics.subscribers("group:lab") == ([2], {})
    with pytest.raises(UnknownTopic):
        topics.subscribe("nope", user_id=1)
    with pytest.raises(TypeError):
        topics.subscribe("group:lab")
    with pytest.raises(TypeError):
        topics.subscribe("group:lab", user_id=1, push_subscription_id=1)


def test_deleting_a_topic_or_a_device_removes_its_subscriptions(app_factory, service):
    app = app_factory(**push_config(service))
    device = add_device(app, 1, service.new_subscription())
    with app.app_context():
        topics = app.notices.topics
        topics.create("a")
        topics.create("b")
        topics.subscribe("a", push_subscription_id=device)
        topics.subscribe("b", push_subscription_id=device)
        topics.subscribe("a", user_id=5)
        topics.publish("a", subject="hello")
        assert topics.delete("a")
        TS = app.notices.push_models.TopicSubscription
        TM = app.notices.push_models.TopicMessage
        session = app.db.session
        assert session.execute(sa.select(sa.func.count()).select_from(TM)).scalar() == 0
        assert session.execute(sa.select(TS.topic_id)).scalars().all() == [topics.get("b").id]
        PS = app.notices.push_models.PushSubscription
        session.execute(sa.delete(PS))
        session.commit()
        assert topics.subscribers("b") == ([], {})


def test_publish_fans_out_to_users_and_devices(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_SENDERS=["webpush", "memory"]))
    # user 1 follows with two devices; user 2 follows and is the actor; user 3 has
    # two devices and follows with one of them only; user 4 follows and has no device
    one = [service.new_subscription(f"u1d{i}") for i in range(2)]
    two = service.new_subscription("u2")
    three = [service.new_subscription(f"u3d{i}") for i in range(2)]
    for browser in one:
        add_device(app, 1, browser)
    add_device(app, 2, two)
    followed_device = add_device(app, 3, three[0])
    add_device(app, 3, three[1])
    with app.app_context():
        topics = app.notices.topics
        topics.create("group:lab")
        for user in (1, 2, 4):
            topics.subscribe("group:lab", user_id=user)
        topics.subscribe("group:lab", push_subscription_id=followed_device)
        published = app.notices.publish(
            "group:lab",
            NoticeType.GROUP,
            subject="Bo shared a graph",
            content="graph 7",
            url="/graphs/7",
            exclude=2,
            data={"graph": 7},
        )
        rows = _notices(app)
        assert sorted(n.user_id for n in rows) == [1, 3, 4]
        assert [n.id for n in rows] == sorted(published.notice_ids)
        assert {n.sender_id for n in rows} == {2}
        assert all(n.data == {"graph": 7, "topic": "group:lab"} for n in rows)
        memory = app.notices.sender("memory")
        # the device-only follower gets the push, not an inbox copy on other channels
        assert sorted(n.user_id for n in memory.outbox) == [1, 4]
        [message] = topics.messages("group:lab")
        assert (message.subject, message.recipients) == ("Bo shared a graph", 3)
        assert message.id == published.message_id
    received = sorted(m.token for m in service.received)
    expected = [PushService.token_of(b) for b in (*one, three[0])]
    assert received == sorted(expected)
    assert all(m.json()["title"] == "Bo shared a graph" for m in service.received)


def test_push_to_one_device(app_factory, service):
    app = app_factory(**push_config(service))
    browsers = [service.new_subscription() for _ in range(2)]
    first = add_device(app, 8, browsers[0])
    add_device(app, 8, browsers[1])
    with app.app_context():
        notice_id = app.notices.topics.push(first, subject="just this one", content="hi")
        [notice] = _notices(app)
        assert notice.id == notice_id and notice.user_id == 8
        with pytest.raises(LookupError):
            app.notices.topics.push(999, subject="x")
    assert [m.token for m in service.received] == [PushService.token_of(browsers[0])]


def test_topic_messages_are_newest_first_and_paged(app):
    topics = app.notices.topics
    topics.create("t")
    for i in range(5):
        topics.publish("t", subject=f"m{i}")
    assert [m.subject for m in topics.messages("t", start=0, end=2)] == ["m4", "m3"]
    assert [m.subject for m in topics.messages("t", start=2, end=10)] == ["m2", "m1", "m0"]
    assert topics.messages("t", start=5, end=10) == []
    with pytest.raises(ValueError):
        topics.messages("t", start=3, end=1)


def test_publish_to_10000_users_is_a_few_bulk_statements(app_factory):
    app = app_factory(NOTICE_DISPATCH="none")
    n = 10_000
    with app.app_context():
        topics = app.notices.topics
        topic = topics.create("industry:google")
        table = app.notices.push_models.TopicSubscription.__table__
        app.db.session.execute(
            sa.insert(table), [{"topic_id": topic.id, "user_id": u} for u in range(1, n + 1)]
        )
        app.db.session.commit()
        statements: list[str] = []

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        engine = app.db.engine
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            published = app.notices.publish("industry:google", subject="Plant 4 is down")
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(published.notice_ids) == n
        Notice = app.notices.Notice
        assert app.db.session.execute(sa.select(sa.func.count()).select_from(Notice)).scalar() == n
        assert len(deliveries(app, "memory")) == n
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    # 10,000 notices + 10,000 deliveries in multi-row batches, not 20,000 statements
    # (the rest are chunked reads, e.g. by notice_created receivers)
    assert len(inserts) <= 25, len(inserts)
    assert len(statements) <= 100, len(statements)


def test_graphspace_kinds(app):
    assert str(NoticeType.OWNER) == "Owner"
    assert str(NoticeType.GROUP) == "Group"
    assert str(NoticeType.WATCHING) == "Watching"
    notices, topics = app.notices, app.notices.topics
    # OWNER: you created it
    notice_event(1, NoticeType.OWNER, subject="You created graph 7", content="")
    # WATCHING: opt in to a resource, hear about others' changes
    topics.create("graph:7")
    topics.subscribe("graph:7", user_id=2)
    topics.subscribe("graph:7", user_id=3)
    notices.publish("graph:7", NoticeType.WATCHING, subject="Layout changed", exclude=3)
    # GROUP: members of the group, actor excluded
    topics.create("group:lab")
    for member in (1, 2, 3):
        topics.subscribe("group:lab", user_id=member)
    notices.publish("group:lab", NoticeType.GROUP, subject="Ana shared graph 7", exclude=1)
    by_user = {u: [n.notice_type for n in notices.list_notices(u)] for u in (1, 2, 3)}
    assert by_user == {1: ["Owner"], 2: ["Group", "Watching"], 3: ["Group"]}


def test_with_a_user_table_deleting_a_user_drops_their_devices_and_topics(app_factory, service):
    def setup(db: Any) -> None:
        class User(db.Model):  # type: ignore[name-defined]
            __tablename__ = "user"
            id = db.Column(db.Integer, primary_key=True)

    app = app_factory(
        notices_options={"user_table": "user.id"}, setup=setup, **push_config(service)
    )
    with app.app_context():
        app.db.session.execute(sa.text('INSERT INTO "user" (id) VALUES (1), (2)'))
        app.db.session.commit()
    device = add_device(app, 1, service.new_subscription())
    with app.app_context():
        topics = app.notices.topics
        topics.create("graph:7")
        topics.subscribe("graph:7", user_id=1)
        topics.subscribe("graph:7", push_subscription_id=device)
        topics.subscribe("graph:7", user_id=2)
        app.db.session.execute(sa.text('DELETE FROM "user" WHERE id = 1'))
        app.db.session.commit()
        assert topics.subscribers("graph:7") == ([2], {})
        PS = app.notices.push_models.PushSubscription
        assert app.db.session.execute(sa.select(sa.func.count()).select_from(PS)).scalar() == 0


def test_publish_excludes_a_list_of_users(app):
    topics = app.notices.topics
    topics.create("post:3")
    for user in (1, 2, 3, 4):
        topics.subscribe("post:3", user_id=user)
    app.notices.publish("post:3", NoticeType.WATCHING, subject="New comment", exclude=[1, "3"])
    rows = _notices(app)
    assert sorted(n.user_id for n in rows) == [2, 4]
    assert {n.sender_id for n in rows} == {None}  # a list names no single actor
    app.notices.publish("post:3", NoticeType.WATCHING, subject="Again", exclude=2)
    again = [n for n in _notices(app) if n.subject == "Again"]
    assert sorted(n.user_id for n in again) == [1, 3, 4] and {n.sender_id for n in again} == {2}


def test_publish_puts_references_category_and_actions_on_every_notice(app):
    topics = app.notices.topics
    topics.create("post:5")
    for user in (1, 2):
        topics.subscribe("post:5", user_id=user)
    app.notices.publish(
        "post:5",
        NoticeType.WATCHING,
        subject="New comment",
        actor=("user", 9),
        target=("post", 5),
        category="success",
        actions=[{"label": "Open", "url": "/posts/5"}],
    )
    rows = _notices(app)
    assert {(n.actor_id, n.target_id, n.category) for n in rows} == {("9", "5", "success")}
    assert [n.to_dict()["actions"] for n in rows] == [
        [{"label": "Open", "url": "/posts/5", "method": "GET"}]
    ] * 2
    assert app.notices.delete_for(("post", 5)) == 2
