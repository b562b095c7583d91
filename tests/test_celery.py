"""``NOTICE_DISPATCH = "celery"`` with a real ``celery worker`` on the loopback Redis
(and RabbitMQ, when it runs).

Each test builds the app of ``tests/support/celery_app.py`` in this process (the
publisher) and, where needed, starts a worker subprocess on the same database (SQLite
file or PostgreSQL) and a queue of its own, so parallel runs never take each other's
tasks.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from notice import ConfigurationError, DeliveryStatus, notice_event
from notice.dispatch.celery import TASK_NAME
from tests.support.celery_app import SEND_LOG, build
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

#: seconds a worker gets to start and drain its queue (CI machines are slow)
WORKER_WAIT = 60
RABBITMQ_URL = os.environ.get("NOTICE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def queue() -> str:
    return f"notice-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def broker_url(request: pytest.FixtureRequest) -> str:
    """The Celery broker of a test: Redis, or RabbitMQ when parametrized so."""
    if getattr(request, "param", "redis") == "rabbitmq":
        return _rabbitmq_url()
    url: str = request.getfixturevalue("redis_url")
    return url


def _rabbitmq_url() -> str:
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", 5672)) != 0:
            pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    return RABBITMQ_URL


@pytest.fixture
def worker(
    db_url: str, broker_url: str, queue: str, tmp_path: Path
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """``worker()`` starts a Celery worker (2 threads) for ``queue``; killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            NOTICE_TEST_DB_URL=db_url,
            NOTICE_TEST_BROKER_URL=broker_url,
            NOTICE_TEST_QUEUE=queue,
        )
        log = open(tmp_path / f"worker{len(procs)}.log", "wb")  # noqa: SIM115 - closed below
        cmd = [
            sys.executable, "-m", "celery",
            "-A", "tests.support.celery_worker:celery_app",
            "worker", "--pool=threads", "-c", "2", "-Q", queue,
            "-n", f"{queue}-{len(procs)}@%h", "--loglevel=INFO",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        # cold shutdown: the test is over, and a warm one waits ~10 s on RabbitMQ
        proc.send_signal(signal.SIGQUIT)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def publisher(
    db_url: str, queue: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Flask]]:
    """``publisher(**config)``: the test app in this process, disposed at teardown."""
    made: list[Flask] = []

    def make(broker: str | None = None, **config: Any) -> Flask:
        app = build(db_url, broker or request.getfixturevalue("broker_url"), queue, **config)
        made.append(app)
        return app

    yield make
    for app in made:
        app.notices.state(app).dispatcher.shutdown()  # type: ignore[attr-defined]
        with app.app_context():
            app.db.session.remove()  # type: ignore[attr-defined]
            app.db.engine.dispose()  # type: ignore[attr-defined]


def _deliveries(app: Flask) -> list[Any]:
    Delivery = app.notices.Delivery  # type: ignore[attr-defined]
    with app.app_context():
        return list(app.db.session.scalars(sa.select(Delivery).order_by(Delivery.id)))  # type: ignore[attr-defined]


def _sends(app: Flask) -> list[Any]:
    with app.app_context():
        with app.db.engine.connect() as conn:  # type: ignore[attr-defined]
            return list(conn.execute(sa.select(SEND_LOG).order_by(SEND_LOG.c.id)))


def _all_sent(app: Flask) -> bool:
    return all(d.status == DeliveryStatus.SENT.value for d in _deliveries(app))


@pytest.mark.redis
def test_deliveries_run_on_the_celery_worker(publisher, worker):
    _check_the_worker_delivers(publisher(), worker())


# RabbitMQ is optional: skipped when down, and on SQLite only, so a skip never hides a
# PostgreSQL test from the CI guard; Redis above is the broker the suite relies on
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_deliveries_run_on_a_rabbitmq_worker(publisher, worker):
    _check_the_worker_delivers(publisher(), worker())


def _check_the_worker_delivers(app: Flask, proc: subprocess.Popen[bytes]) -> None:
    with app.app_context():
        notice_event(1, subject="single", content="")
        notice_event([2, 3, 4], subject="fan-out", content="")
    assert wait_for(lambda: len(_deliveries(app)) == 4 and _all_sent(app), WORKER_WAIT)
    sends = _sends(app)
    assert sorted(s.notice_id for s in sends) == sorted(d.notice_id for d in _deliveries(app))
    # sent by the worker, not by this (publishing) process
    assert {s.pid for s in sends} == {proc.pid}
    with app.app_context():
        Notice = app.notices.Notice  # type: ignore[attr-defined]
        statuses = app.db.session.scalars(sa.select(Notice.send_status))  # type: ignore[attr-defined]
        assert set(statuses) == {"Sent"}


@pytest.mark.redis
def test_the_same_task_delivered_twice_sends_once(publisher, worker, queue):
    # dispatch "none": the only tasks are the two published here, as a broker would
    # hand out one task twice; the worker's two threads run them concurrently
    app = publisher(NOTICE_DISPATCH="none")
    with app.app_context():
        notice_event(1, subject="once", content="")
    (delivery,) = _deliveries(app)
    task = app.celery_app.tasks[TASK_NAME]  # type: ignore[attr-defined]
    results = [
        task.apply_async((delivery.id,), queue=queue, ignore_result=False) for _ in range(2)
    ]
    worker()
    reports = [r.get(timeout=WORKER_WAIT) for r in results]
    assert sorted(r["sent"] for r in reports) == [0, 1]
    assert sorted(r["claimed"] for r in reports) == [0, 1]
    assert len(_sends(app)) == 1
    (delivery,) = _deliveries(app)
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT.value, 1)


def _queued_batches(redis_url: str, queue: str) -> list[list[int]]:
    """The delivery ids of each ``notice.deliver`` task waiting in ``queue`` (kombu's
    Redis transport keeps a queue as a list of JSON envelopes, newest first)."""
    import base64
    import json

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        envelopes = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()
    batches = []
    for envelope in reversed(envelopes):
        assert envelope["headers"]["task"] == TASK_NAME
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        batches.append(args[0])
    return batches


@pytest.mark.redis
def test_one_task_carries_a_batch_of_deliveries(publisher, worker, queue, redis_url):
    app = publisher(NOTICE_CELERY_BATCH=3)
    with app.app_context():
        notice_event(list(range(1, 8)), subject="fan-out", content="")
    ids = [d.id for d in _deliveries(app)]
    assert len(ids) == 7
    # published before any worker runs: the tasks wait in the queue, 3 + 3 + 1 ids
    assert _queued_batches(redis_url, queue) == [ids[0:3], ids[3:6], ids[6:7]]
    proc = worker()
    assert wait_for(lambda: _all_sent(app), WORKER_WAIT)
    sends = _sends(app)
    assert sorted(s.notice_id for s in sends) == sorted(d.notice_id for d in _deliveries(app))
    assert {s.pid for s in sends} == {proc.pid}


@pytest.mark.redis
def test_a_batch_task_delivered_twice_sends_each_delivery_once(publisher, worker, queue):
    # dispatch "none": the only tasks are those published here: one batch handed out
    # twice (acks_late redelivery) and one overlapping it, run concurrently by the
    # worker's two threads
    app = publisher(NOTICE_DISPATCH="none")
    with app.app_context():
        notice_event([1, 2, 3, 4], subject="batch", content="")
    ids = [d.id for d in _deliveries(app)]
    task = app.celery_app.tasks[TASK_NAME]  # type: ignore[attr-defined]
    batches = [ids[:3], ids[:3], ids[2:]]
    results = [task.apply_async((b,), queue=queue, ignore_result=False) for b in batches]
    worker()
    reports = [r.get(timeout=WORKER_WAIT) for r in results]
    assert sum(r["sent"] for r in reports) == 4
    assert sum(r["claimed"] for r in reports) == 4
    sends = _sends(app)
    assert sorted(s.notice_id for s in sends) == sorted(d.notice_id for d in _deliveries(app))
    assert all((d.status, d.attempts) == (DeliveryStatus.SENT.value, 1) for d in _deliveries(app))


@pytest.mark.parametrize("broker", ["refusing", "hung"])
def test_broker_down_at_publish_leaves_the_delivery_to_the_sweeper(publisher, caplog, broker):
    # refusing: bound, never listening, so connections are refused; hung: listening
    # but never accepting, so connections open and no reply ever comes
    with socket.socket() as down:
        down.bind(("127.0.0.1", 0))
        if broker == "hung":
            down.listen(8)
        port = down.getsockname()[1]
        app = publisher(
            broker=f"redis://127.0.0.1:{port}/0",
            NOTICE_SWEEP_GRACE=0,
            NOTICE_CELERY_PUBLISH_TIMEOUT=0.5,
        )
        with app.app_context(), caplog.at_level(logging.WARNING, logger="notice"):
            notice = notice_event(1, subject="later", content="")
        assert notice.id is not None
        assert "left Wait for the sweeper" in caplog.text
        (delivery,) = _deliveries(app)
        assert delivery.status == DeliveryStatus.WAIT.value
        assert delivery.attempts == 0
        with app.app_context():
            ext = app.notices  # type: ignore[attr-defined]
            report = ext.sweep() if hasattr(ext, "sweep") else ext.deliver_due()
        assert report.sent == 1
    assert _all_sent(app)
    assert [(s.notice_id, s.pid) for s in _sends(app)] == [(notice.id, os.getpid())]


def _eager_celery() -> Any:
    from celery import Celery

    celery_app = Celery("eager", set_as_current=False)
    # eager: apply_async runs the task right here, as apps do in their own tests
    celery_app.conf.task_always_eager = True
    return celery_app


#: found by NOTICE_CELERY_APP = "tests.test_celery:EAGER"
EAGER = _eager_celery()


@pytest.mark.parametrize("source", ["dotted path", "instance", "extensions", "init_celery"])
def test_the_celery_app_is_found(app_factory, source):
    config: dict[str, Any] = {"NOTICE_DISPATCH": "celery"}
    if source == "dotted path":
        config["NOTICE_CELERY_APP"] = "tests.test_celery:EAGER"
    elif source == "instance":
        config["NOTICE_CELERY_APP"] = _eager_celery()
    app = app_factory(**config)
    if source == "extensions":
        app.extensions["celery"] = _eager_celery()
    elif source == "init_celery":
        app.notices.init_celery(_eager_celery())  # type: ignore[attr-defined]
    with app.app_context():
        notice_event(1, subject="eager", content="")
        outbox = app.notices.sender("memory").outbox  # type: ignore[attr-defined]
        Delivery = app.notices.Delivery  # type: ignore[attr-defined]
        statuses = app.db.session.scalars(sa.select(Delivery.status)).all()  # type: ignore[attr-defined]
    assert [n.subject for n in outbox] == ["eager"]
    assert statuses == [DeliveryStatus.SENT.value]


def test_without_a_celery_app_the_delivery_waits(app_factory, caplog):
    app = app_factory(NOTICE_DISPATCH="celery")
    with app.app_context(), caplog.at_level(logging.ERROR, logger="notice"):
        notice_event(1, subject="no celery", content="")
        Delivery = app.notices.Delivery  # type: ignore[attr-defined]
        statuses = app.db.session.scalars(sa.select(Delivery.status)).all()  # type: ignore[attr-defined]
    assert statuses == [DeliveryStatus.WAIT.value]
    assert "no Celery app" in caplog.text


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_CELERY_QUEUE": ""}, "NOTICE_CELERY_QUEUE"),
        ({"NOTICE_CELERY_TASK_OPTIONS": ["retry"]}, "NOTICE_CELERY_TASK_OPTIONS"),
        ({"NOTICE_CELERY_APP": object()}, "celery.Celery instance"),
        ({"NOTICE_CELERY_PUBLISH_TIMEOUT": 0}, "NOTICE_CELERY_PUBLISH_TIMEOUT"),
        ({"NOTICE_CELERY_BATCH": 0}, "NOTICE_CELERY_BATCH"),
        ({"NOTICE_CELERY_BATCH": 2.5}, "NOTICE_CELERY_BATCH"),
    ],
)
def test_bad_celery_config_fails_at_startup(app_factory, config, message):
    with pytest.raises(ConfigurationError, match=message):
        app_factory(NOTICE_DISPATCH="celery", **config)


def test_init_celery_needs_celery_dispatch(app_factory):
    from celery import Celery

    app = app_factory(NOTICE_DISPATCH="sync")
    with pytest.raises(ConfigurationError, match="NOTICE_DISPATCH = 'celery'"):
        app.notices.init_celery(Celery(set_as_current=False), app=app)  # type: ignore[attr-defined]
