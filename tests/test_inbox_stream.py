"""The live stream end to end: a real threaded server on loopback, a real SSE client,
and each broker (in-process, Redis pub/sub, PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import json
import uuid

import pytest

from notice import notice_event
from tests.support.sse import SSEClient, serving
from tests.support.waiting import wait_for


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def broker_url(request):
    if request.param == "memory":
        return None
    if request.param == "redis":
        return request.getfixturevalue("redis_url")
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def stream_app(app_factory, broker_url):
    made = []

    def make(**config):
        app = app_factory(
            NOTICE_BROKER_URL=broker_url,
            # a channel of our own: parallel test runs share the Redis/PG servers
            NOTICE_BROKER_CHANNEL=f"t{uuid.uuid4().hex[:12]}",
            **config,
        )

        @app.notices.user_loader
        def from_header():
            from flask import request

            raw = request.headers.get("X-User")
            return int(raw) if raw else None

        made.append(app)
        return app

    yield make
    for app in made:
        app.notices.state(app).broker.close()


def _publish(app, user_id, subject="hi", **kw):
    with app.app_context():
        return notice_event(user_id, subject=subject, content=kw.pop("content", "c"), **kw).id


def _stream(port, user_id=1, **headers):
    client = SSEClient(port, "/notices/stream", headers={"X-User": str(user_id), **headers})
    assert client.status == 200
    return client


def test_new_notices_and_count_changes_arrive(stream_app):
    app = stream_app()
    _publish(app, 1, "before")
    with serving(app) as port, _stream(port) as client:
        assert client.next_of("count").data == {"unread": 1, "unseen": 1}
        assert client.retry == 3000
        _publish(app, 2, "for someone else")
        nid = _publish(app, 1, "<b>hello</b>", url="/x")
        # "before" was committed before the stream opened; its event may still come
        event = client.until(lambda e: e.event == "notice" and e.data["subject"] != "before")
        assert (event.event, event.id) == ("notice", str(nid))
        assert event.data["subject"] == "<b>hello</b>" and event.data["url"] == "/x"
        assert event.data["user_id"] == 1
        assert client.until(lambda e: e.event == "count").data == {"unread": 2, "unseen": 2}
        # read elsewhere (another tab): every stream of the user hears the new count
        with app.app_context():
            app.notices.mark_read(1, [nid])
        count = client.until(lambda e: e.event == "count" and "read" in e.data)
        assert count.data == {"unread": 1, "unseen": 1, "ids": [nid], "read": True}


def test_streamed_notices_carry_the_link_notice_js_may_follow(stream_app):
    app = stream_app(NOTICE_LINK_ORIGINS=["https://docs.example.org"])
    urls = ("/posts/1", "https://docs.example.org/a", "//evil.example/x", "javascript:x")
    with serving(app) as port, _stream(port) as client:
        client.next_of("count")
        for url in urls:
            _publish(app, 1, url, url=url)
        links = {}
        while len(links) < len(urls):
            event = client.next_of("notice")
            links[event.data["url"]] = event.data["link"]
    assert links == {
        "/posts/1": "/posts/1",
        "https://docs.example.org/a": "https://docs.example.org/a",
        "//evil.example/x": None,
        "javascript:x": None,
    }


def test_last_event_id_replays_what_was_missed(stream_app):
    app = stream_app()
    with serving(app) as port:
        with _stream(port) as client:
            client.next_of("count")
            first = _publish(app, 1, "one")
            assert client.next_of("notice").id == str(first)
            last_id = client.last_id
        missed = [_publish(app, 1, "two"), _publish(app, 1, "three")]
        _publish(app, 2, "not yours")
        with _stream(port, **{"Last-Event-ID": last_id}) as client:
            replayed = [client.next(), client.next()]
            assert [e.event for e in replayed] == ["notice", "notice"]
            assert [e.data["id"] for e in replayed] == missed
            assert client.last_id == str(missed[-1])
            assert client.next().data == {"unread": 3, "unseen": 3}
            # live events continue after the replay
            newest = _publish(app, 1, "four")
            assert client.next_of("notice").data["id"] == newest
        with SSEClient(port, f"/notices/stream?last_event_id={first}", {"X-User": "1"}) as client:
            assert [client.next().data["id"] for _ in missed] == missed
        bad = SSEClient(port, "/notices/stream", {"X-User": "1", "Last-Event-ID": "x"})
        assert bad.status == 400
        bad.close()


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # broker-independent
def test_rolled_back_notice_is_never_streamed(stream_app):
    app = stream_app()
    with serving(app) as port, _stream(port) as client:
        client.next_of("count")
        with app.app_context():
            notice_event(1, subject="rolled back", content="", commit=False)
            app.db.session.rollback()
        kept = _publish(app, 1, "kept")
        assert client.next_of("notice").data["id"] == kept


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # broker-independent
def test_deleting_an_unread_notice_sends_the_count(stream_app):
    app = stream_app()
    nid = _publish(app, 1)
    with serving(app) as port, _stream(port) as client:
        assert client.next_of("count").data == {"unread": 1, "unseen": 1}
        web = app.test_client()
        web.environ_base["HTTP_X_USER"] = "1"
        web.get("/notices/")
        with web.session_transaction() as session:
            token = session["_notice_csrf"]
        assert (
            web.delete(f"/notices/api/notices/{nid}", headers={"X-CSRFToken": token}).json["unread"]
            == 0
        )
        count = client.until(lambda e: e.event == "count" and "deleted" in e.data)
        assert count.data == {"unread": 0, "unseen": 0, "deleted": [nid]}


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # broker-independent
def test_replay_after_the_newest_notice_was_deleted_skips_nothing(stream_app):
    """SQLite gave the deleted newest notice's id to the next notice, and a client whose
    Last-Event-ID was that id never got the new one replayed (``id > last``)."""
    app = stream_app()
    with serving(app) as port:
        with _stream(port) as client:
            client.next_of("count")
            seen = _publish(app, 1, "seen, then deleted")
            assert client.next_of("notice").id == str(seen)
            last_id = client.last_id
        web = app.test_client()
        web.environ_base["HTTP_X_USER"] = "1"
        web.get("/notices/")
        with web.session_transaction() as session:
            token = session["_notice_csrf"]
        resp = web.delete(f"/notices/api/notices/{seen}", headers={"X-CSRFToken": token})
        assert resp.status_code == 200
        missed = _publish(app, 1, "written while offline")
        assert missed > seen
        with _stream(port, **{"Last-Event-ID": last_id}) as client:
            event = client.next()
            assert (event.event, event.data["id"]) == ("notice", missed)
            assert client.next().data == {"unread": 1, "unseen": 1}


@pytest.mark.parametrize("broker_url", [None], indirect=False)
def test_idle_stream_holds_no_database_connection(stream_app):
    app = stream_app(NOTICE_SSE_HEARTBEAT=0.1)
    _publish(app, 1)
    with serving(app) as port:
        with app.app_context():
            pool = app.db.engine.pool
        with _stream(port, **{"Last-Event-ID": "0"}) as client:
            client.next_of("count")  # the replay read the database, then let go
            assert client.until(lambda e: e.event == "comment")  # a heartbeat: idle
            # (waited for: the background publisher may be using one for a moment; a
            # stream holding one would hold it for as long as it is open)
            assert wait_for(lambda: pool.checkedout() == 0, timeout=3)
            broker = app.notices.state(app).broker
            assert len(broker.hub) == 1
        # a gone client is noticed at the next heartbeat and its subscription dropped
        assert wait_for(lambda: len(broker.hub) == 0, timeout=5)


@pytest.mark.parametrize("broker_url", [None], indirect=False)
def test_resync_reloads_missed_notices_from_the_database(stream_app):
    app = stream_app()
    state = app.notices.state(app)
    broker = state.broker
    with serving(app) as port, _stream(port) as client:
        client.next_of("count")
        state.broker = None  # as if the broker lost this message
        lost = _publish(app, 1, "lost in transit")
        state.broker = broker
        broker.hub.lost_all()
        broker.hub.dispatch("1", {"event": "count", "data": {"unread": 99}})
        assert client.next().data["id"] == lost
        assert client.next().data == {"unread": 1, "unseen": 1}


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # broker-independent
def test_stream_needs_a_login(stream_app):
    app = stream_app()
    with serving(app) as port:
        client = SSEClient(port, "/notices/stream")
        assert client.status == 401
        client.close()


@pytest.mark.postgres
def test_postgres_broker_sends_large_notices_by_reference(app_factory, pg_database_url):
    app = app_factory(NOTICE_BROKER_URL=pg_database_url, NOTICE_BROKER_CHANNEL="tlarge")

    @app.notices.user_loader
    def user():
        return 1

    try:
        with serving(app) as port, _stream(port) as client:
            client.next_of("count")
            big = "é" * 9000  # over NOTIFY's 8000-byte payload limit
            nid = _publish(app, 1, "big", content=big)
            event = client.next_of("notice")
            assert event.data["id"] == nid and event.data["content"] == big
    finally:
        app.notices.state(app).broker.close()


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # broker-independent
def test_a_fan_out_reaches_every_open_stream(stream_app):
    app = stream_app()
    with serving(app) as port, _stream(port, 1) as one, _stream(port, 2) as two:
        one.next_of("count")
        two.next_of("count")
        with app.app_context():
            ids = notice_event([1, 2, 3], subject="to all", content="")
        assert one.next_of("notice").data["id"] == ids[0]
        assert two.next_of("notice").data["id"] == ids[1]
        assert one.next_of("count").data == {"unread": 1, "unseen": 1}


@pytest.mark.redis
def test_unreachable_broker_refuses_the_stream_so_the_page_polls(app_factory):
    # a closed loopback port: nothing listens there
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = app_factory(NOTICE_BROKER_URL=f"redis://127.0.0.1:{port}/0")

    @app.notices.user_loader
    def user():
        return 1

    with serving(app) as server_port:
        client = SSEClient(server_port, "/notices/stream")
        assert client.status == 503
        client.close()
        # publishing still works: the notice is stored, the failure only logged
        assert _publish(app, 1, "stored anyway")
    app.notices.state(app).broker.close()


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # the hub is per process
def test_one_stream_too_many_for_a_user_closes_their_oldest(stream_app):
    app = stream_app(NOTICE_STREAM_MAX_PER_USER=2)
    hub = app.notices.state(app).broker.hub
    with serving(app) as port:
        with _stream(port, 1) as oldest, _stream(port, 1) as second, _stream(port, 2) as other:
            for client in (oldest, second, other):
                client.next_of("count")
            with _stream(port, 1) as newest:
                newest.next_of("count")
                # the oldest is told why, then ended: notice.js polls instead of
                # reconnecting (which would close the next oldest in turn)
                assert oldest.next_of("closed").data == {"reason": "superseded"}
                with pytest.raises(ConnectionError):
                    oldest.next()
                assert len(hub) == 3
                nid = _publish(app, 1, "still live")
                for client in (second, newest):
                    assert client.next_of("notice").data["id"] == nid
                # another user's stream was not touched
                assert _publish(app, 2, "for two") == other.next_of("notice").data["id"]


@pytest.mark.parametrize("broker_url", [None], indirect=False)  # the hub is per process
def test_streams_past_the_process_bound_get_429(stream_app):
    app = stream_app(NOTICE_STREAM_MAX=2, NOTICE_STREAM_MAX_PER_USER=1, NOTICE_SSE_HEARTBEAT=0.2)
    hub = app.notices.state(app).broker.hub
    with serving(app) as port:
        one, two = _stream(port, 1), _stream(port, 2)
        one.next_of("count")
        two.next_of("count")
        refused = SSEClient(port, "/notices/stream", headers={"X-User": "3"})
        assert refused.status == 429
        assert refused.response.getheader("Retry-After") == "30"
        assert json.loads(refused.response.read())["error"] == "too_many_streams"
        refused.close()
        # a user at their own cap replaces their stream: the count stays at the bound
        with _stream(port, 1) as again:
            again.next_of("count")
            assert one.next_of("closed").data == {"reason": "superseded"}
            assert len(hub) == 2
            # once a client has gone (noticed at a heartbeat) there is room again
            two.close()
            assert wait_for(lambda: len(hub) == 1, timeout=5)
            with _stream(port, 3) as third:
                assert third.next_of("count").data == {"unread": 0, "unseen": 0}
        one.close()
