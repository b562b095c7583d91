"""Brokers: the local fan-out and its overflow rule, loading by URL, and the Redis and
PostgreSQL brokers across two real server processes sharing one database."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from notice.brokers import RESYNC, Hub, load_broker
from notice.brokers.inprocess import InProcessBroker
from notice.brokers.pgnotify import conninfo
from notice.errors import ConfigurationError
from tests.support.sse import SSEClient

ROOT = Path(__file__).resolve().parent.parent


def test_hub_fans_out_per_user_and_overflow_means_resync():
    hub = Hub(maxsize=2)
    a1, a2, b = hub.add("1"), hub.add("1"), hub.add("2")
    assert hub.dispatch("1", {"n": 1}) == 2
    assert a1.get(0.1) == {"n": 1} and a2.get(0.1) == {"n": 1}
    assert b.get(0.01) is None
    for n in range(5):  # more than a slow reader's queue holds
        hub.dispatch("2", {"n": n})
    assert b.get(0.1) is RESYNC
    assert b.get(0.01) is None  # the stale backlog was dropped with the resync
    a1.close()
    assert hub.dispatch("1", {"n": 2}) == 1 and len(hub) == 2


def test_lost_all_wakes_a_waiting_reader():
    hub = Hub()
    sub = hub.add("7")
    got = []
    reader = threading.Thread(target=lambda: got.append(sub.get(5.0)))
    reader.start()
    hub.lost_all()
    reader.join(timeout=5)
    assert got == [RESYNC]


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, InProcessBroker),
        ("memory://", InProcessBroker),
        ("notice.brokers.inprocess:InProcessBroker", InProcessBroker),
    ],
)
def test_load_broker(url, kind):
    assert type(load_broker(url)) is kind


@pytest.mark.parametrize(
    "url", ["amqp://127.0.0.1", "nonsense", "notice.brokers.inprocess:Nope", "json:dumps"]
)
def test_load_broker_refuses_unknown(url):
    with pytest.raises(ConfigurationError):
        load_broker(url)


def _send_raw(broker_url: str, channel: str, raw: bytes) -> None:
    """Put ``raw`` on the broker's channel the way any other client could."""
    if broker_url.startswith("redis"):
        client = redis.Redis.from_url(broker_url)
        try:
            client.publish(f"{channel}:7", raw)
        finally:
            client.close()
        return
    with psycopg.connect(conninfo(broker_url), autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (channel, raw.decode("utf-8", "replace")))


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ],
)
def test_a_malformed_message_is_logged_and_skipped_not_a_lost_connection(request, kind, caplog):
    url = request.getfixturevalue("redis_url" if kind == "redis" else "pg_database_url")
    channel = f"t{uuid.uuid4().hex[:12]}"
    broker = load_broker(url, channel=channel)
    secret = b'{"u": "7", "m": "the private text of a notice'
    try:
        with broker.subscribe(7) as sub, caplog.at_level(logging.WARNING, logger="notice"):
            for raw in (secret, b"\xff\xfe", b'{"u": "7"}', b'{"u": [], "m": {}}', b"[1]"):
                _send_raw(url, channel, raw)
            broker.publish(7, {"event": "count", "data": {"unread": 1}})
            # not RESYNC: the listener kept its connection and the streams their place
            assert sub.get(timeout=10) == {"event": "count", "data": {"unread": 1}}
            broker.publish(7, {"event": "count", "data": {"unread": 2}})
            assert sub.get(timeout=10) == {"event": "count", "data": {"unread": 2}}
    finally:
        broker.close()
    skipped = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(skipped) == 5
    assert f"of {len(secret)} bytes on {channel}" in skipped[0]
    assert not any("private" in r.getMessage() for r in caplog.records)
    assert not any("lost its connection" in r.getMessage() for r in caplog.records)


class Server:
    """``python -m tests.support.inboxapp`` in a subprocess on a free loopback port."""

    def __init__(self, db_url: str, broker_url: str, channel: str) -> None:
        env = dict(
            os.environ,
            NOTICE_TEST_DB_URL=db_url,
            NOTICE_TEST_BROKER_URL=broker_url,
            NOTICE_TEST_CHANNEL=channel,
            PYTHONPATH=str(ROOT),
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.inboxapp"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout=20)
        if not line or not line[0].startswith("PORT "):
            self.stop()
            raise RuntimeError("the inbox app did not start")
        self.port = int(line[0].split()[1])

    def send(self, user_id: int, subject: str) -> int:
        response = requests.post(
            f"http://127.0.0.1:{self.port}/send",
            json={"user_id": user_id, "subject": subject},
            timeout=10,
        )
        response.raise_for_status()
        return int(response.json()["id"])

    def stream(self, user_id: int, **headers: str) -> SSEClient:
        client = SSEClient(self.port, "/notices/stream", {"X-Test-User": str(user_id), **headers})
        assert client.status == 200
        return client

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def two_servers(request, app_factory, db_url):
    broker = request.getfixturevalue("redis_url" if request.param == "redis" else "pg_database_url")
    app_factory(NOTICE_STREAM=False)  # creates the tables both servers use
    channel = f"t{uuid.uuid4().hex[:12]}"
    servers = []
    try:
        servers.append(Server(db_url, broker, channel))
        servers.append(Server(db_url, broker, channel))
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_a_notice_written_by_one_process_reaches_a_stream_served_by_another(two_servers):
    a, b = two_servers
    with a.stream(1) as alice, a.stream(2) as bob:
        assert alice.next_of("count").data == {"unread": 0, "unseen": 0}
        bob.next_of("count")
        nid = b.send(1, "from process B")
        event = alice.next()
        assert (event.event, event.data["id"], event.data["subject"]) == (
            "notice",
            nid,
            "from process B",
        )
        assert alice.next().data == {"unread": 1, "unseen": 1}
        last_id = alice.last_id
        theirs = b.send(2, "for bob")
        assert bob.next_of("notice").data["id"] == theirs
    # dropped connection: what B writes meanwhile is replayed by either server
    missed = [b.send(1, "missed one"), b.send(1, "missed two")]
    with b.stream(1, **{"Last-Event-ID": last_id}) as alice:
        assert [alice.next().data["id"] for _ in missed] == missed
        assert alice.next().data == {"unread": 3, "unseen": 3}
        live = a.send(1, "live again, from A")
        assert alice.next_of("notice").data["id"] == live


def test_marking_read_in_one_process_updates_the_count_streamed_by_another(two_servers):
    a, b = two_servers
    nid = b.send(1, "read me")
    web = requests.Session()  # a real browser-like session: flask-login cookie, meta token
    web.get(f"http://127.0.0.1:{b.port}/login/1", timeout=10)
    page = web.get(f"http://127.0.0.1:{b.port}/", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    with a.stream(1) as alice:
        assert alice.next_of("count").data == {"unread": 1, "unseen": 1}
        url = f"http://127.0.0.1:{b.port}/notices/api/notices/{nid}/read"
        assert web.post(url, timeout=10).status_code == 400  # no CSRF header
        done = web.post(url, headers={"X-CSRFToken": token}, timeout=10)
        assert done.json()["unread"] == 0
        count = alice.until(lambda e: e.event == "count" and "read" in e.data)
        assert count.data == {"unread": 0, "unseen": 0, "ids": [nid], "read": True}


def test_hub_bounds_streams_per_user_and_per_process():
    from notice.brokers.base import CLOSED, TooManyStreams

    hub = Hub(10, max_streams=3, max_per_user=2)
    a, b = hub.add("1"), hub.add("1")
    c = hub.add("1")  # the user's third: their oldest goes
    assert a.superseded and a.get(timeout=5) == CLOSED
    assert not b.superseded and len(hub) == 2
    a.close()  # closing a superseded stream again changes nothing
    assert len(hub) == 2
    d = hub.add("2")
    with pytest.raises(TooManyStreams, match="NOTICE_STREAM_MAX"):
        hub.add("3")
    e = hub.add("1")  # at the bound, a user at their own cap may still replace
    assert b.superseded and len(hub) == 3
    assert hub.dispatch("1", {"event": "count"}) == 2
    for sub in (c, e):
        sub.close()
    assert len(hub) == 1 and hub.keys() == {"2"}
    d.close()
    assert len(hub) == 0 and hub.keys() == set()
