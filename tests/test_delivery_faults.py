"""Delivery under faults: a send that hangs (NOTICE_SEND_TIMEOUT), a row whose lease
keeps running out (poison rows), senders raising BaseException, and preferences changed
while a delivery waited. Every test runs on SQLite and PostgreSQL; worker processes are
in tests/test_sweeper_concurrency.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from notice import NoticeType, Sender, notice_event, store
from notice.columns import utcnow
from notice.signals import notice_sent
from notice.sweeper import run_worker, sweep
from tests.support.emailapp import deliveries, email_app
from tests.support.smtpserver import SMTPServer
from tests.support.waiting import wait_for

CORE = {"NOTICE_STREAM": False}


class Hangs(Sender):
    """Hangs on the notices of users in ``hang_for`` (once each) until ``release`` is
    set; records every other send."""

    name = "hangs"

    def __init__(self) -> None:
        self.hang_for: set[int] = set()
        self.release = threading.Event()
        self.hung: list[int] = []
        self.sent: list[int] = []

    def send(self, notice: Any) -> None:
        if notice.user_id in self.hang_for:
            self.hang_for.discard(notice.user_id)
            self.hung.append(notice.id)
            self.release.wait(timeout=60)
            return  # too late: this result is dropped
        self.sent.append(notice.id)


@pytest.fixture
def hangs() -> Iterator[Hangs]:
    sender = Hangs()
    yield sender
    sender.release.set()  # no thread outlives its test


def _rows(app: Any, channel: str | None = None) -> list[Any]:
    d, n = app.notices.Delivery.__table__, app.notices.Notice.__table__
    stmt = sa.select(d, n.c.user_id).join(n, n.c.id == d.c.notice_id).order_by(d.c.id)
    if channel is not None:
        stmt = stmt.where(d.c.channel == channel)
    with app.app_context(), app.db.engine.connect() as conn:
        return list(conn.execute(stmt))


# --- a hung send (NOTICE_SEND_TIMEOUT) ---------------------------------------------------


def test_a_hung_send_times_out_and_the_rest_of_the_batch_goes_on(app_factory, hangs):
    app = app_factory(
        NOTICE_DISPATCH="none", NOTICE_SEND_TIMEOUT=0.5, NOTICE_CLAIM_TIMEOUT=2, **CORE
    )
    app.notices.register_sender(hangs)
    hangs.hang_for = {2}
    with app.app_context():
        notice_event([1, 2, 3, 4], subject="s", content="", channels=["memory", "hangs"])
        report = app.notices.deliver_due()
        memory = app.notices.sender("memory")
    assert (report.claimed, report.sent, report.failed) == (8, 7, 1)
    by_user = {r.user_id: r for r in _rows(app, "hangs")}
    hung = by_user[2]
    assert (hung.status, hung.last_error, hung.claim_token) == (
        "Error",
        "timed out after 0.5 s",
        None,
    )
    assert hung.next_attempt_at > utcnow()  # retried after its backoff
    # the sends after it in the batch, and the other channel, went out
    assert {u: r.status for u, r in by_user.items() if u != 2} == {1: "Sent", 3: "Sent", 4: "Sent"}
    assert {r.status for r in _rows(app, "memory")} == {"Sent"} and len(memory.outbox) == 4

    # due, but its abandoned send is still running in this process: not claimed again
    later = utcnow() + timedelta(hours=1)
    assert sweep(app, now=later).claimed == 0
    hangs.release.set()
    state = app.notices.state(app)
    assert wait_for(lambda: not state.hung_sends.delivery_ids(), timeout=10)
    (row,) = [r for r in _rows(app, "hangs") if r.user_id == 2]
    assert row.status == "Error"  # the late return changed nothing
    report = sweep(app, now=later)
    assert (report.claimed, report.sent) == (1, 1)
    assert sorted(hangs.sent) == sorted(r.notice_id for r in _rows(app, "hangs"))


def test_channels_send_side_by_side(app_factory):
    """One channel never waits for another: a send that waits for the other channel's
    sends to happen finds them done (in turn, it would have waited forever)."""
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SENDERS=[], **CORE)
    seen: list[bool] = []

    class Waits(Sender):
        name = "waits"

        def send(self, notice: Any) -> None:
            seen.append(wait_for(lambda: len(others.sent) == 3, timeout=10))

    class Others(Sender):
        name = "others"
        sent: list[int] = []

        def send(self, notice: Any) -> None:
            self.sent.append(notice.id)

    app.notices.register_sender(Waits())  # its deliveries come first in every batch
    others = app.notices.register_sender(Others())
    with app.app_context():
        notice_event([1, 2, 3], subject="s", content="")
        assert app.notices.deliver_due().sent == 6
    assert seen == [True, True, True]


def test_a_sender_hung_on_every_call_gets_a_bounded_number_of_threads(app_factory, hangs):
    from notice.sending import MAX_HUNG_PER_CHANNEL

    app = app_factory(
        NOTICE_DISPATCH="none",
        NOTICE_SENDERS=[],
        NOTICE_SEND_TIMEOUT=0.2,
        NOTICE_CLAIM_TIMEOUT=30,
        **CORE,
    )
    app.notices.register_sender(hangs)
    users = list(range(1, MAX_HUNG_PER_CHANNEL + 4))
    hangs.hang_for = set(users)
    with app.app_context():
        notice_event(users, subject="s", content="")
        report = app.notices.deliver_due()
    assert report.failed == len(users)
    assert len(hangs.hung) == MAX_HUNG_PER_CHANNEL
    errors = [r.last_error for r in _rows(app)]
    assert errors.count("timed out after 0.2 s") == MAX_HUNG_PER_CHANNEL
    assert errors[-1] == (
        f"{MAX_HUNG_PER_CHANNEL} earlier calls into 'hangs' are still hung in this process"
    )


# --- lost leases: poison rows --------------------------------------------------------------


def test_a_lease_lost_three_times_makes_a_poison_row(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_CLAIM_TIMEOUT=60, **CORE)
    with app.app_context():
        notice_event(1, subject="s", content="")
        state = app.notices.state(app)
        table = app.notices.Delivery.__table__
        memory = app.notices.sender("memory")
    step = timedelta(seconds=61)
    t = utcnow()
    # three workers claim the row in turn and die with it (no outcome, no release)
    for lost in range(3):
        with app.app_context():
            _, ids = store.claim(state.engine, table, now=t, lease=state.lease, limit=10)
        assert len(ids) == 1
        (row,) = _rows(app)
        assert row.lease_expiries == lost
        t += step
    # a row that lost a lease or two is sent as usual; at the third it is not sent again
    report = sweep(app, now=t)
    assert (report.claimed, report.gave_up, report.sent) == (1, 1, 0)
    (row,) = _rows(app)
    assert (row.status, row.lease_expiries, row.claim_token) == ("Dead", 3, None)
    assert row.last_error == "lease expired 3 times without an outcome: poison row"
    assert memory.outbox == []
    with app.app_context():
        assert app.notices.Notice.query.one().send_status == "Error"

    runner = app.test_cli_runner()
    data = json.loads(runner.invoke(args=["notice", "stats", "--json"]).stdout)
    assert data["deliveries"]["poisoned"] == 1
    text = runner.invoke(args=["notice", "stats"]).stdout
    assert "poison rows: 1 Dead after their lease expired 3 times without an outcome" in text

    result = runner.invoke(args=["notice", "retry", "--status", "dead"])
    assert "re-queued 1 delivery" in result.stdout, result.output
    (row,) = _rows(app)
    assert (row.status, row.attempts, row.lease_expiries) == ("Error", 0, 0)
    assert sweep(app).sent == 1 and len(memory.outbox) == 1
    assert (
        json.loads(runner.invoke(args=["notice", "stats", "--json"]).stdout)["deliveries"][
            "poisoned"
        ]
        == 0
    )


def test_only_lost_leases_count(app_factory, hangs):
    """Failures, time-outs and batches given back unsent are outcomes (or undone
    claims), not lost leases."""
    app = app_factory(
        NOTICE_DISPATCH="none",
        NOTICE_SENDERS=[],
        NOTICE_SEND_TIMEOUT=0.2,
        NOTICE_CLAIM_TIMEOUT=1,
        NOTICE_MAX_LEASE_EXPIRIES=1,
        **CORE,
    )
    app.notices.register_sender(hangs)
    hangs.hang_for = {1}
    with app.app_context():
        notice_event([1, 2], subject="s", content="")
        assert app.notices.deliver_due().failed == 1
    hangs.release.set()
    state = app.notices.state(app)
    assert wait_for(lambda: not state.hung_sends.delivery_ids(), timeout=10)
    assert sweep(app, now=utcnow() + timedelta(hours=1)).sent == 1
    assert [(r.status, r.lease_expiries) for r in _rows(app)] == [("Sent", 0), ("Sent", 0)]


# --- BaseException from a sender -----------------------------------------------------------

BASE_EXCEPTIONS = [
    pytest.param(lambda: SystemExit(3), "SystemExit", id="SystemExit"),
    pytest.param(KeyboardInterrupt, "KeyboardInterrupt", id="KeyboardInterrupt"),
    pytest.param(asyncio.CancelledError, "CancelledError", id="CancelledError"),
    pytest.param(GeneratorExit, "GeneratorExit", id="GeneratorExit"),
]


class Raises(Sender):
    """Raises the scripted exceptions, one per send, then sends."""

    name = "raises"

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.sent: list[int] = []

    def send(self, notice: Any) -> None:
        if self.script:
            raise self.script.pop(0)()
        self.sent.append(notice.id)


@pytest.mark.parametrize(("make", "name"), BASE_EXCEPTIONS)
def test_base_exception_from_a_sender_is_a_transient_failure(app_factory, make, name):
    app = app_factory(**CORE)  # sync: delivered in notice_event's commit
    raises = app.notices.register_sender(Raises(make))
    with app.app_context():
        notice_event(1, subject="s", content="")  # nothing escapes
        memory = app.notices.sender("memory")
    rows = {r.channel: r for r in _rows(app)}
    assert rows["memory"].status == "Sent"
    assert rows["raises"].status == "Error" and rows["raises"].last_error.startswith(name)
    report = sweep(app, now=rows["raises"].next_attempt_at + timedelta(seconds=1))
    assert (report.claimed, report.sent) == (1, 1)
    assert len(memory.outbox) == 1 and len(raises.sent) == 1  # nothing sent twice


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_thread_dispatcher_outlives_base_exceptions_and_replaces_dead_threads(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, **CORE)
    dispatcher = app.notices.state(app).dispatcher
    app.notices.register_sender(Raises(SystemExit, KeyboardInterrupt, asyncio.CancelledError))
    later = iter([asyncio.CancelledError, KeyboardInterrupt])

    def on_sent(sender: Any, **kw: Any) -> None:
        # an observer raising BaseException, after the outcomes are recorded
        if kw["channel"] == "memory":
            exc = next(later, None)
            if exc is not None:
                raise exc()

    class Fatal(logging.Handler):
        """Raises SystemExit while the dispatcher logs a failed batch: the one way left
        to end its thread."""

        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("delivering") and not died.is_set():
                died.set()
                raise SystemExit(1)

    died = threading.Event()
    handler = Fatal()
    logging.getLogger("notice").addHandler(handler)
    notice_sent.connect(on_sent, sender=app)
    try:
        with app.app_context():
            Delivery = app.notices.Delivery

            def sent() -> int:
                app.db.session.rollback()
                return int(Delivery.query.filter_by(status="Sent").count())

            notice_event(1, subject="s", content="")
            assert wait_for(lambda: died.is_set(), timeout=20)
            assert wait_for(lambda: not dispatcher._threads[0].is_alive(), timeout=20)
            for user in (2, 3, 4):  # a new thread takes them
                notice_event(user, subject="s", content="")
            assert wait_for(lambda: sent() == 5, timeout=20)
    finally:
        notice_sent.disconnect(on_sent, sender=app)
        logging.getLogger("notice").removeHandler(handler)
    statuses = sorted((r.user_id, r.channel, r.status) for r in _rows(app))
    assert statuses == [
        (1, "memory", "Sent"),
        (1, "raises", "Error"),
        (2, "memory", "Sent"),
        (2, "raises", "Error"),
        (3, "memory", "Sent"),
        (3, "raises", "Error"),
        (4, "memory", "Sent"),
        (4, "raises", "Sent"),
    ]
    assert dispatcher._threads[0].is_alive()


def test_worker_outlives_base_exceptions(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    raises = app.notices.register_sender(Raises(SystemExit, asyncio.CancelledError))
    observer_raised = threading.Event()

    def on_sent(sender: Any, **kw: Any) -> None:
        if not observer_raised.is_set():
            observer_raised.set()
            raise asyncio.CancelledError

    notice_sent.connect(on_sent, sender=app)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(app, 0.05, stop), kwargs={"max_backoff": 0.1}
    )
    thread.start()
    try:
        with app.app_context():
            notice_event([1, 2, 3], subject="s", content="")
        # sends raised SystemExit and CancelledError, an observer CancelledError: the
        # loop goes on
        with app.app_context():
            memory = app.notices.sender("memory")
        assert wait_for(lambda: len(raises.sent) == 1 and observer_raised.is_set(), timeout=20)
        with app.app_context():
            notice_event(4, subject="after", content="")
        assert wait_for(lambda: len(raises.sent) == 2 and len(memory.outbox) == 4, timeout=20)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=20)
        notice_sent.disconnect(on_sent, sender=app)
    assert not thread.is_alive()


def test_ctrl_c_propagates_only_after_the_batch_is_recorded(app_factory):
    """KeyboardInterrupt in the main thread (Ctrl-C in a script or `flask notice sweep`)
    is raised again, but only once what was sent is recorded: the send in flight is a
    failure (not retried while it may still run here), the rest is given back."""
    release = threading.Event()
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SENDERS=[], **CORE)

    closed = threading.Event()

    class Quick(Sender):
        name = "quick"
        sent: list[int] = []

        def send(self, notice: Any) -> None:
            self.sent.append(notice.id)

        def close(self) -> None:
            closed.set()  # after its outcomes are in

    class Interrupts(Sender):
        name = "interrupts"
        calls = 0

        def send(self, notice: Any) -> None:
            Interrupts.calls += 1
            if Interrupts.calls == 1:
                # Ctrl-C, while the main thread waits on this send
                assert closed.wait(timeout=10)
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                release.wait(timeout=60)

    quick = app.notices.register_sender(Quick())
    app.notices.register_sender(Interrupts())
    try:
        with app.app_context():
            notice_event([1, 2, 3], subject="s", content="")
            with pytest.raises(KeyboardInterrupt):
                app.notices.deliver_due()
        rows = [(r.user_id, r.channel, r.status, r.claim_token) for r in _rows(app)]
        assert sorted(rows) == [
            (1, "interrupts", "Error", None),
            (1, "quick", "Sent", None),
            (2, "interrupts", "Wait", None),  # given back, never tried
            (2, "quick", "Sent", None),
            (3, "interrupts", "Wait", None),
            (3, "quick", "Sent", None),
        ]
        (failed,) = [r for r in _rows(app) if r.status == "Error"]
        assert failed.last_error == "interrupted by KeyboardInterrupt while sending"
        assert {r.attempts for r in _rows(app) if r.status == "Wait"} == {0}
        # the two given back go now; the interrupted one waits for its send to return
        report = sweep(app, now=utcnow() + timedelta(hours=1))
        assert (report.claimed, report.sent) == (2, 2)
    finally:
        release.set()
    state = app.notices.state(app)
    assert wait_for(lambda: not state.hung_sends.delivery_ids(), timeout=10)
    assert sweep(app, now=utcnow() + timedelta(hours=1)).sent == 1
    assert len(quick.sent) == 3


# --- preferences and expiry at send time ---------------------------------------------------


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def test_unsubscribing_stops_a_pending_retry(app_factory, smtp):
    from notice.links import unsubscribe_url

    smtp.script_data(["451 4.3.0 Try again later"])
    app = email_app(app_factory, smtp, NOTICE_DISPATCH="sync")
    with app.app_context():
        notice_event(7, NoticeType.COMMENT, subject="a comment", content="")
        notice_event(7, NoticeType.LIKE, subject="a like", content="")
        [comment, like] = deliveries(app)
        assert (comment.status, like.status) == ("Error", "Sent")
        link = unsubscribe_url(app, 7, "Comment", "email")
    # the user one-clicks unsubscribe (from the Like email they did get)
    client = app.test_client()
    response = client.post(urlsplit(link).path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200 and b"You are unsubscribed" in response.data
    report = sweep(app, now=comment.next_attempt_at + timedelta(seconds=1))
    assert (report.claimed, report.skipped, report.sent) == (1, 1, 0)
    with app.app_context():
        comment, like = deliveries(app)
    assert (comment.status, comment.last_error) == (
        "Skipped",
        "turned off by the user's preferences",
    )
    assert [m.message["Subject"] for m in smtp.messages] == ["a like"]


def test_preferences_are_read_once_per_channel_and_type_of_a_batch(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SENDERS=["memory", "log"], **CORE)
    app.notices.register_sender(Raises())
    users = list(range(1, 21))
    with app.app_context():
        notice_event(users, NoticeType.COMMENT, subject="c", content="")
        notice_event(users, NoticeType.LIKE, subject="l", content="")
        # turned off after the rows were written
        for user in (3, 4):
            app.notices.preferences.set(user, "Comment", "memory", False)
        app.notices.preferences.set(5, "Like", "raises", False)
        engine = app.db.engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "notice_preference" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        # a minute later: the rows' preference checks are no longer fresh
        report = sweep(app, now=utcnow() + timedelta(minutes=1), limit=200)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    # (memory, raises) x (Comment, Like); the log channel is never gated
    assert len(statements) == 4
    assert report.claimed == 120 and report.skipped == 3
    skipped = sorted((r.user_id, r.channel) for r in _rows(app) if r.status == "Skipped")
    assert skipped == [(3, "memory"), (4, "memory"), (5, "raises")]
    assert {r.last_error for r in _rows(app) if r.status == "Skipped"} == {
        "turned off by the user's preferences"
    }


def test_a_notice_that_expired_while_waiting_for_its_retry_is_skipped(app_factory, smtp):
    smtp.script_data(["451 4.3.0 Try again later"])
    app = email_app(app_factory, smtp)
    with app.app_context():
        notice_event(1, subject="soon stale", content="", expires_at=timedelta(seconds=40))
        [d] = deliveries(app)
        assert d.status == "Error"
    report = sweep(app, now=d.next_attempt_at + timedelta(seconds=30))
    assert (report.claimed, report.expired) == (1, 1)
    with app.app_context():
        [d] = deliveries(app)
    assert (d.status, d.last_error) == ("Skipped", "expired before it was sent")
    assert smtp.messages == []
