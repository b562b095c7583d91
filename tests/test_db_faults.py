"""Delivery bookkeeping under database faults: a pooled connection killed mid-batch,
a deadlock, SQLite's lock timeout, a failing sweeper, and row locks taken in one order.

Each fault is real: PostgreSQL ends the backend (``pg_terminate_backend``) or picks a
deadlock victim; SQLite's write lock is held by another connection.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import Sender, notice_event
from notice.columns import utcnow
from notice.store import Outcome, claim, finish
from notice.sweeper import run_worker, sweep
from notice.types import DeliveryStatus
from tests.support.waiting import wait_for

CORE = {"NOTICE_STREAM": False, "NOTICE_DISPATCH": "none"}
postgres_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

#: every other server process of the test database: the app's pooled connections
KILL = sa.text(
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _deliveries(app: Any) -> list[Any]:
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        return list(conn.execute(sa.select(d).order_by(d.c.id)))


def _claim_all(app: Any) -> tuple[str, list[Outcome]]:
    """Claim every pending delivery; their outcomes as if all were sent."""
    table = app.notices.Delivery.__table__
    with app.app_context():
        token, ids = claim(
            app.db.engine, table, now=utcnow(), lease=timedelta(seconds=60), limit=1000
        )
    by_id = {row.id: row.notice_id for row in _deliveries(app)}
    return token, [Outcome(i, by_id[i], DeliveryStatus.SENT) for i in ids]


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "running it again" in r.getMessage()]


# --- item: a dropped connection must not resend a batch --------------------------------


class Killer(Sender):
    """Ends the app's pooled database connections during its first send (after the
    claim, before the finish), from a connection of its own."""

    name = "killer"

    def __init__(self, url: str) -> None:
        self.admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.killed: list[bool] = []
        self.sent: list[int] = []

    def send(self, notice: Any) -> None:
        if not self.killed:
            with self.admin.connect() as conn:
                self.killed = list(conn.execute(KILL).scalars())
        self.sent.append(notice.id)


@postgres_only
def test_a_connection_killed_between_claim_and_finish_sends_nothing_twice(
    app_factory, db_url, caplog
):
    app = app_factory(**CORE)
    killer = Killer(db_url)
    app.notices.register_sender(killer)
    with app.app_context():
        # a fan-out returns the notice ids
        ids = notice_event(list(range(1, 51)), subject="s", content="", channels=["killer"])
    caplog.set_level(logging.WARNING, logger="notice")
    try:
        report = sweep(app)
        assert killer.killed and all(killer.killed)  # the pooled connection was ended
        # finish lost its connection, ran again on a fresh one, and recorded all 50
        assert (report.claimed, report.sent, report.lost_lease) == (50, 50, 0)
        assert _retries(caplog) == [
            "recording delivery outcomes failed (connection lost); running it again "
            "(attempt 2 of 3)"
        ]
        rows = _deliveries(app)
        assert {(r.status, r.attempts, r.claim_token) for r in rows} == {("Sent", 1, None)}
        # after the lease nothing is left to send again
        assert sweep(app, now=utcnow() + timedelta(hours=1)).claimed == 0
        assert sorted(killer.sent) == sorted(ids)
        with app.app_context():
            statuses = {n.send_status for n in app.notices.Notice.query}
        assert statuses == {"Sent"}
    finally:
        killer.admin.dispose()


@postgres_only
def test_a_claim_on_a_killed_connection_runs_again(app_factory, db_url, caplog):
    app = app_factory(**CORE)
    with app.app_context():
        notice_event([1, 2, 3], subject="s", content="")
        app.db.session.remove()
    sweep(app, now=utcnow() - timedelta(hours=1))  # leaves a pooled, idle connection
    admin = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            assert any(conn.execute(KILL).scalars())
    finally:
        admin.dispose()
    caplog.set_level(logging.WARNING, logger="notice")
    report = sweep(app)
    assert (report.claimed, report.sent) == (3, 3)
    assert _retries(caplog) == [
        "claiming deliveries failed (connection lost); running it again (attempt 2 of 2)"
    ]


@postgres_only
def test_finish_runs_again_when_it_is_a_deadlock_victim(app_factory, db_url, caplog):
    app = app_factory(**CORE)
    with app.app_context():
        a, b = sorted(notice_event([1, 2], subject="s", content=""))
    token, outcomes = _claim_all(app)
    notice = app.notices.Notice.__table__
    other = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    b_locked = threading.Event()
    errors: list[BaseException] = []

    def waiting_for_a_lock() -> bool:
        with other.connect() as conn:
            return bool(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s"
                        " ON s.pid = l.pid WHERE NOT l.granted"
                        " AND s.datname = current_database()"
                    )
                ).scalar_one()
            )

    def cross() -> None:
        # holds notice b, waits until finish (holding a) waits for b, then asks for a:
        # a deadlock. Its own deadlock_timeout is long, so finish's check (1 s by
        # default) finds it first and finish is the one PostgreSQL aborts.
        try:
            with other.connect() as conn:
                conn.exec_driver_sql("SET deadlock_timeout = '60s'")
                lock = sa.select(notice.c.id).with_for_update()
                conn.execute(lock.where(notice.c.id == b)).all()
                b_locked.set()
                assert wait_for(waiting_for_a_lock, timeout=20)
                conn.execute(lock.where(notice.c.id == a)).all()
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            b_locked.set()

    thread = threading.Thread(target=cross)
    thread.start()
    caplog.set_level(logging.WARNING, logger="notice")
    try:
        assert b_locked.wait(timeout=20)
        with app.app_context():
            recorded = finish(
                app.db.engine,
                app.notices.Delivery.__table__,
                notice,
                token,
                outcomes,
                now=utcnow(),
            )
    finally:
        thread.join(timeout=30)
        other.dispose()
    assert errors == []
    assert recorded == outcomes
    assert _retries(caplog) == [
        "recording delivery outcomes failed (DeadlockDetected); running it again (attempt 2 of 3)"
    ]
    assert {r.status for r in _deliveries(app)} == {"Sent"}


@sqlite_only
def test_finish_runs_again_when_sqlite_stays_locked(app_factory, db_url, caplog):
    # SQLite has no deadlocks to break (writers queue on BEGIN IMMEDIATE); what finish
    # can meet is the write lock still taken when the busy timeout runs out
    app = app_factory(**CORE)
    with app.app_context():
        notice_event([1, 2, 3], subject="s", content="")
        engine = app.db.engine
    token, outcomes = _claim_all(app)

    # the library's connections give up on a taken lock after 50 ms instead of 30 s
    @sa.event.listens_for(engine, "connect")
    def short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout = 50")

    engine.pool.dispose()
    holder = sqlite3.connect(
        sa.make_url(db_url).database, isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    seen: list[str] = []

    @sa.event.listens_for(engine, "handle_error")
    def let_go(context: Any) -> None:
        # the first run failed on the lock: its holder commits, the next run gets it
        seen.append(str(context.original_exception))
        holder.execute("COMMIT")

    caplog.set_level(logging.WARNING, logger="notice")
    try:
        with app.app_context():
            recorded = finish(
                engine,
                app.notices.Delivery.__table__,
                app.notices.Notice.__table__,
                token,
                outcomes,
                now=utcnow(),
            )
    finally:
        holder.close()
    assert seen == ["database is locked"]
    assert recorded == outcomes
    assert _retries(caplog) == [
        "recording delivery outcomes failed (OperationalError); running it again (attempt 2 of 3)"
    ]
    assert {r.status for r in _deliveries(app)} == {"Sent"}


def test_worker_backoff_starts_over_after_a_good_pass(app_factory, caplog):
    app = app_factory(**CORE)
    table = app.notices.Delivery.__table__

    def drop() -> None:
        with app.app_context():
            app.db.session.remove()
            table.drop(app.db.engine)

    def create() -> None:
        with app.app_context():
            table.create(app.db.engine)

    def waits() -> list[float]:
        return [
            float(m.group(1))
            for r in list(caplog.records)
            if (m := re.search(r"retrying in ([\d.]+) s", r.getMessage()))
        ]

    caplog.set_level(logging.INFO, logger="notice.sweeper")
    drop()  # every pass fails
    stop = threading.Event()
    passes: list[Any] = []
    thread = threading.Thread(
        target=run_worker, args=(app, 0.1, stop), kwargs={"on_pass": passes.append}
    )
    thread.start()
    try:
        assert wait_for(lambda: len(waits()) >= 2, timeout=20)
        create()
        assert wait_for(lambda: passes, timeout=20)
        failed_before = len(waits())
        drop()
        assert wait_for(lambda: len(waits()) > failed_before, timeout=20)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    backoff = waits()
    # growing while the database failed, back to the interval after the good pass
    assert backoff[:2] == [0.1, 0.2]
    assert backoff[failed_before] == 0.1


# --- item: notice rows are locked in one order ---------------------------------------


def test_mark_all_read_and_finishing_deliveries_never_deadlock(app_factory, caplog):
    # "mark all read" locked a user's rows in the order its plan visited them, finish
    # in id order: each deadlock failed a click (a 500) or a batch; and two tabs marking
    # at once could deadlock each other once updates had shuffled the rows on disk
    app = app_factory(**CORE)
    with app.app_context():
        notice_event([1] * 150, subject="s", content="")
        notice_event([2] * 10, subject="s", content="")
    rounds = 25
    barrier = threading.Barrier(2, timeout=60)
    errors: list[BaseException] = []
    changed: list[tuple[int, int]] = []
    lock = threading.Lock()

    def tab() -> None:
        try:
            with app.app_context():
                for _ in range(rounds):
                    barrier.wait()
                    read = app.notices.mark_read(1)
                    barrier.wait()
                    unread = app.notices.mark_unread(1)
                    with lock:
                        changed.append((read, unread))
                    app.db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            barrier.abort()
            with lock:
                errors.append(exc)

    def worker() -> None:
        try:
            with app.app_context():
                engine = app.db.engine
                delivery = app.notices.Delivery.__table__
                notice = app.notices.Notice.__table__
                for _ in range(rounds * 2):
                    token, outcomes = _claim_all(app)
                    failed = [
                        Outcome(o.delivery_id, o.notice_id, DeliveryStatus.ERROR, "x", utcnow())
                        for o in outcomes
                    ]
                    finish(engine, delivery, notice, token, failed, now=utcnow())
        except BaseException as exc:  # noqa: BLE001
            with lock:
                errors.append(exc)

    caplog.set_level(logging.WARNING, logger="notice")
    threads = [threading.Thread(target=tab) for _ in range(2)] + [threading.Thread(target=worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert _retries(caplog) == []  # finish never even had to run again
    # every click of a pair changed the rows once between them
    reads = [r for r, _ in changed]
    unreads = [u for _, u in changed]
    assert sum(reads) == sum(unreads) == 150 * rounds
    with app.app_context():
        assert app.notices.unread_count(1) == 150 and app.notices.unread_count(2) == 10
