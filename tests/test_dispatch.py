"""notice/dispatch.py: after-commit hand-off, the thread pool, and exiting with work
still pending. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from notice import Sender, notice_event
from notice.columns import utcnow
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
CORE = {"NOTICE_STREAM": False}


class ThreadRecorder(Sender):
    name = "recorder"

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.lock = threading.Lock()

    def send(self, notice):
        with self.lock:
            self.threads.append(threading.current_thread().name)


def _count(app, **where) -> int:
    app.db.session.rollback()  # a fresh snapshot: the pool commits in its own sessions
    return int(app.notices.Notice.query.filter_by(**where).count())


def test_thread_dispatch_sends_off_the_callers_thread(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=2, **CORE)
    recorder = app.notices.register_sender(ThreadRecorder())
    with app.app_context():
        ids = [notice_event(u, subject="s", content="").id for u in range(6)]
        assert wait_for(lambda: _count(app, send_status="Sent") == 6, timeout=20)
        assert sorted(n.id for n in app.notices.sender("memory").outbox) == ids
    assert len(recorder.threads) == 6
    assert threading.current_thread().name not in recorder.threads
    assert all(name.startswith("notice-dispatch-") for name in recorder.threads)


def test_commit_false_is_dispatched_only_after_commit(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, **CORE)
    with app.app_context():
        memory = app.notices.sender("memory")
        n = notice_event(1, subject="s", content="", commit=False)
        notice_event(2, subject="rolled back", content="", commit=False)
        app.db.session.rollback()
        n = notice_event(3, subject="kept", content="", commit=False)
        app.db.session.commit()
        assert wait_for(lambda: len(memory.outbox) == 1, timeout=20)
        assert [o.subject for o in memory.outbox] == ["kept"]
        assert app.notices.Notice.query.count() == 1 and n.user_id == 3


def test_thread_dispatch_survives_a_raising_sender(app_factory):
    class Broken(Sender):
        name = "broken"

        def send(self, notice):
            raise RuntimeError("down")

    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, **CORE)
    app.notices.register_sender(Broken())
    with app.app_context():
        notice_event(1, subject="s", content="")
        notice_event(2, subject="s", content="")
        memory = app.notices.sender("memory")
        assert wait_for(lambda: len(memory.outbox) == 2, timeout=20)
        assert wait_for(lambda: _count(app, send_status="Error") == 2, timeout=20)
        rows = app.notices.Delivery.query.filter_by(channel="broken").all()
        assert [r.status for r in rows] == ["Error", "Error"]
        assert all("RuntimeError: down" in r.last_error for r in rows)


def test_shutdown_leaves_unclaimed_batches_to_the_sweeper(app_factory):
    release = threading.Event()
    entered = threading.Event()

    class Gate(Sender):
        """Blocks the first batch until the test has shut the pool down."""

        name = "gate"
        sent: list[int] = []

        def send(self, notice):
            entered.set()
            assert release.wait(timeout=20)
            self.sent.append(notice.id)

    app = app_factory(
        NOTICE_DISPATCH="thread",
        NOTICE_THREADS=1,
        NOTICE_BATCH_SIZE=5,
        NOTICE_SENDERS=[],
        **CORE,
    )
    app.notices.register_sender(Gate())
    dispatcher = app.notices.state(app).dispatcher
    with app.app_context():
        notice_event(range(20), subject="s", content="")
        Delivery = app.notices.Delivery

        # the rows are born claimed; the first batch is in flight, the rest queued
        assert entered.wait(timeout=20)
        dispatcher.shutdown(wait=False)
        release.set()
        for thread in dispatcher._threads:
            thread.join(timeout=20)
        assert len(Gate.sent) == 5
        app.db.session.rollback()
        statuses = Counter((d.status, d.claim_token is None) for d in Delivery.query)
        assert statuses == {("Sent", True): 5, ("Wait", True): 15}


CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from notice import Notices, Sender, notice_event

class Slow(Sender):
    name = "slow"
    def send(self, notice):
        time.sleep(0.2)
        with open({log!r}, "a") as f:
            f.write(f"{{notice.id}}\\n")

app = Flask("child")
app.config.update(
    SQLALCHEMY_DATABASE_URI={url!r}, NOTICE_SENDERS=[], NOTICE_STREAM=False,
    NOTICE_DISPATCH="thread", NOTICE_THREADS=1, NOTICE_SWEEP_GRACE=0,
    NOTICE_CLAIM_TIMEOUT=1, NOTICE_SEND_TIMEOUT=0.5,
)
db = SQLAlchemy()
notices = Notices(db=db)
db.init_app(app)
notices.init_app(app)
notices.register_sender(Slow())
with app.app_context():
    for i in range({count}):
        notice_event(i, subject=f"n{{i}}", content="")
print("published", flush=True)
"""


def test_process_exits_with_deliveries_pending_and_loses_nothing(app_factory, db_url, tmp_path):
    count = 50
    log = tmp_path / "sent.log"
    log.touch()

    class Slow(Sender):
        """The parent's twin of the child's sender: appends to the same log."""

        name = "slow"

        def send(self, notice):
            with open(log, "a") as f:
                f.write(f"{notice.id}\n")

    checker = app_factory(NOTICE_DISPATCH="none", NOTICE_SENDERS=[], NOTICE_SWEEP_GRACE=0, **CORE)
    checker.notices.register_sender(Slow())
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(CHILD).format(repo=str(REPO), log=str(log), url=db_url, count=count)
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "published" in done.stdout
    child_sent = Counter(log.read_text().split())
    assert sum(child_sent.values()) < count  # it exited with work pending
    with checker.app_context():
        Delivery = checker.notices.Delivery
        rows = Delivery.query.filter_by(channel="slow").all()
        assert len(rows) == count
        assert {r.status for r in rows} <= {"Sent", "Wait"}
        sent_rows = {str(r.notice_id) for r in rows if r.status == "Sent"}
        assert sent_rows <= set(child_sent)
        # what the child sent but could not record (killed mid-batch) is at most its
        # one in-flight delivery (NOTICE_THREADS=1, one id per commit)
        assert len(set(child_sent) - sent_rows) <= 1

        def all_sent() -> bool:
            checker.notices.deliver_due()
            checker.db.session.rollback()
            q = sa.select(sa.func.count()).where(Delivery.status != "Sent")
            return checker.db.session.execute(q).scalar_one() == 0

        # in-flight rows come back when the child's 1 s lease runs out
        assert wait_for(all_sent, timeout=30)
    total = Counter(log.read_text().split())
    assert len(total) == count
    duplicates = sum(n - 1 for n in total.values())
    assert duplicates <= 1


def test_shutdown_wakes_every_thread_even_with_a_one_slot_queue(app_factory):
    """More threads than queue slots: shutdown still stops them all promptly."""
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=4, NOTICE_QUEUE_SIZE=1)
    dispatcher = app.notices.state(app).dispatcher
    dispatcher.shutdown()
    assert not any(t.is_alive() for t in dispatcher._threads)


class Gate(Sender):
    """A slow sender: every send waits until the test opens the gate, so a burst of
    emits piles up in the dispatch queue whatever the machine's speed."""

    name = "gate"

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.sent: list[int] = []
        self.lock = threading.Lock()

    def send(self, notice):
        assert self.opened.wait(timeout=30)
        with self.lock:
            self.sent.append(notice.id)


def _statuses(app) -> Counter:
    app.db.session.rollback()
    Delivery = app.notices.Delivery
    return Counter((d.status, d.claim_token is None) for d in Delivery.query)


def _overflow_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "dispatch queue full" in r.getMessage()]


def test_queue_bound_counts_deliveries_not_batches(app_factory, caplog):
    """200 single-notice emits against a stuck pool all fit a 500-delivery bound: the
    pool delivers every one, none is left Wait for the sweeper (the bound used to
    count queue items, 500 // 200 + 1 of them, whatever their size)."""
    caplog.set_level(logging.WARNING, logger="notice")
    app = app_factory(
        NOTICE_DISPATCH="thread",
        NOTICE_THREADS=2,
        NOTICE_QUEUE_SIZE=500,
        NOTICE_SENDERS=[],
        **CORE,
    )
    gate = app.notices.register_sender(Gate())
    with app.app_context():
        for user in range(200):
            notice_event(user, subject="s", content="")
        assert _overflow_warnings(caplog) == []
        gate.opened.set()
        all_sent = {("Sent", True): 200}
        assert wait_for(lambda: _statuses(app) == all_sent, timeout=60), _statuses(app)
    assert len(gate.sent) == 200


def test_queue_overflow_stays_wait_for_the_sweeper(app_factory, caplog):
    caplog.set_level(logging.WARNING, logger="notice")
    app = app_factory(
        NOTICE_DISPATCH="thread",
        NOTICE_THREADS=1,
        NOTICE_QUEUE_SIZE=5,
        NOTICE_SENDERS=[],
        # the thread takes the first emit to the gate at once: lingering, it would
        # gather the next ones off the queue and the bound would never be reached
        NOTICE_DISPATCH_LINGER=0,
        **CORE,
    )
    gate = app.notices.register_sender(Gate())
    with app.app_context():
        notice_event(0, subject="s", content="")
        # the one thread holds the first delivery: the queue is empty again
        assert wait_for(lambda: _statuses(app) == {("Wait", False): 1}, timeout=20)
        for user in range(1, 11):
            notice_event(user, subject="s", content="")
        # five fit the bound, the other five were each turned away with a warning
        assert len(_overflow_warnings(caplog)) == 5
        assert "NOTICE_QUEUE_SIZE=5" in _overflow_warnings(caplog)[0]
        gate.opened.set()
        assert wait_for(
            lambda: _statuses(app) == {("Sent", True): 6, ("Wait", True): 5}, timeout=30
        ), _statuses(app)
        # nothing lost: the overflow is still Wait, unclaimed, and a sweep sends it
        report = app.notices.sweep(now=utcnow() + timedelta(minutes=5))
        assert (report.claimed, report.sent) == (5, 5)
        assert _statuses(app) == {("Sent", True): 11}
    assert len(gate.sent) == len(set(gate.sent)) == 11
