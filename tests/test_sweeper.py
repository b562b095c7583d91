"""The retry sweeper: what a pass picks, retry timing, leases, and the worker loop.

Time moves by passing ``now`` to :func:`notice.sweeper.sweep`; nothing sleeps.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import PermanentError, Sender, TransientError, notice_event
from notice.columns import utcnow
from notice.sweeper import run_worker, sweep
from tests.support.waiting import wait_for

#: the channels these tests publish to (an app may have more senders)
BOTH = ["memory", "flaky"]


class Flaky(Sender):
    """Fails with the scripted exceptions, one per send, then succeeds."""

    name = "flaky"

    def __init__(self) -> None:
        self.script: list[BaseException] = []
        self.sent: list[int] = []
        self.calls = 0

    def send(self, notice: Any) -> None:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        self.sent.append(notice.id)


@pytest.fixture
def make(app_factory):
    def build(**config: Any):
        config.setdefault("NOTICE_DISPATCH", "none")
        app = app_factory(**config)
        flaky = Flaky()
        app.notices.register_sender(flaky)
        return app, flaky

    return build


def _deliveries(app, channel: str | None = None) -> list[Any]:
    d = app.notices.Delivery.__table__
    stmt = sa.select(d).order_by(d.c.id)
    if channel is not None:
        stmt = stmt.where(d.c.channel == channel)
    with app.app_context(), app.db.engine.connect() as conn:
        return list(conn.execute(stmt))


def test_transient_failures_then_success_follow_the_policy(make):
    app, flaky = make(NOTICE_RETRY_BASE=30.0, NOTICE_RETRY_JITTER=0.1, NOTICE_MAX_ATTEMPTS=10)
    failures = 3
    flaky.script = [TransientError(f"try {i}") for i in range(failures)]
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=["flaky"])
    now = utcnow()
    assert sweep(app, now=now).failed == 1
    for attempt in range(1, failures + 1):
        (row,) = _deliveries(app, "flaky")
        assert (row.status, row.attempts, row.last_error) == (
            "Error",
            attempt,
            f"TransientError: try {attempt - 1}",
        )
        delay = (row.next_attempt_at - now).total_seconds()
        expected = 30.0 * 2 ** (attempt - 1)
        assert expected * 0.9 <= delay <= expected * 1.1
        # not due a moment before its time, due at it
        assert sweep(app, now=row.next_attempt_at - timedelta(seconds=1)).claimed == 0
        now = row.next_attempt_at
        report = sweep(app, now=now)
        assert report.claimed == 1
    assert report.sent == 1
    (row,) = _deliveries(app, "flaky")
    assert (row.status, row.attempts, row.claim_token) == ("Sent", failures + 1, None)
    assert flaky.calls == failures + 1 and len(flaky.sent) == 1
    assert sweep(app, now=now + timedelta(days=30)).claimed == 0


def test_retry_after_hint_is_honoured(make):
    app, flaky = make()
    flaky.script = [TransientError("slow down", retry_after=120)]
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=["flaky"])
    now = utcnow()
    sweep(app, now=now)
    (row,) = _deliveries(app)
    assert row.next_attempt_at == now + timedelta(seconds=120)


def test_permanent_failure_is_final_after_one_attempt(make):
    app, flaky = make()
    flaky.script = [PermanentError("no such address")]
    with app.app_context():
        n = notice_event(1, subject="s", content="c", channels=["flaky"])
        notice_id = n.id
    report = sweep(app)
    assert (report.claimed, report.gave_up, report.failed) == (1, 1, 0)
    (row,) = _deliveries(app)
    assert (row.status, row.attempts) == ("Dead", 1)
    assert row.last_error == "PermanentError: no such address"
    assert sweep(app, now=utcnow() + timedelta(days=365)).claimed == 0
    assert flaky.calls == 1
    with app.app_context():
        assert app.db.session.get(app.notices.Notice, notice_id).send_status == "Error"


def test_out_of_attempts_is_final(make):
    app, flaky = make(NOTICE_MAX_ATTEMPTS=3)
    flaky.script = [TransientError("down")] * 5
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=["flaky"])
    now = utcnow()
    for _ in range(3):
        assert sweep(app, now=now).claimed == 1
        now += timedelta(days=1)
    (row,) = _deliveries(app)
    assert (row.status, row.attempts) == ("Dead", 3)
    assert row.last_error.startswith("gave up after 3 attempts")
    assert sweep(app, now=now + timedelta(days=1)).claimed == 0


def test_expired_notice_is_never_sent(make):
    app, flaky = make()
    flaky.script = [TransientError("down")]
    with app.app_context():
        notice_event(1, subject="s", content="c", expires_at=timedelta(minutes=2), channels=BOTH)
    now = utcnow()
    report = sweep(app, now=now)
    assert (report.sent, report.failed) == (1, 1)  # memory sent, flaky failed
    report = sweep(app, now=now + timedelta(minutes=10))
    assert (report.claimed, report.expired, report.sent) == (1, 1, 0)
    assert flaky.sent == [] and flaky.calls == 1
    (row,) = _deliveries(app, "flaky")
    assert row.status == "Skipped"


def test_expired_before_first_send(make):
    app, flaky = make()
    with app.app_context():
        notice_event(1, subject="s", content="c", expires_at=timedelta(seconds=30), channels=BOTH)
    report = sweep(app, now=utcnow() + timedelta(minutes=1))
    assert (report.claimed, report.expired, report.sent) == (2, 2, 0)
    with app.app_context():
        assert app.notices.sender("memory").outbox == []
    assert flaky.calls == 0


def test_sent_channel_is_never_resent_while_another_is_retried(make):
    app, flaky = make(NOTICE_DISPATCH="sync")
    flaky.script = [TransientError("down")] * 3
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=BOTH)  # sent after commit
        memory = app.notices.sender("memory")
    assert len(memory.outbox) == 1
    assert flaky.calls == 1  # the first attempt ran after commit
    now = utcnow()
    for _ in range(3):
        (row,) = _deliveries(app, "flaky")
        now = max(now, row.next_attempt_at)
        assert sweep(app, now=now).claimed == 1
    assert [r.status for r in _deliveries(app)] == ["Sent", "Sent"]
    assert len(memory.outbox) == 1 and len(flaky.sent) == 1


def test_new_deliveries_are_the_dispatchers_while_their_lease_lasts(make):
    app, flaky = make(NOTICE_DISPATCH="thread", NOTICE_CLAIM_TIMEOUT=60)
    state = app.notices.state(app)
    # a dispatcher that took the batch and never ran it (its process froze): the rows
    # were written leased to it, so the sweeper leaves them alone until the lease ends
    state.dispatcher.submit_claimed = lambda batch: None
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=BOTH)
    now = utcnow()
    assert sweep(app, now=now).claimed == 0
    assert sweep(app, now=now + timedelta(seconds=31)).claimed == 0
    assert sweep(app, now=now + timedelta(seconds=61)).sent == 2
    state.dispatcher.shutdown()


def test_a_stopped_dispatcher_gives_new_deliveries_to_the_sweeper_at_once(make):
    app, flaky = make(NOTICE_DISPATCH="thread")
    app.notices.state(app).dispatcher.shutdown()  # a dispatcher that never runs them
    with app.app_context():
        notice_event(1, subject="s", content="c", channels=BOTH)
    # their lease was undone when the dispatcher refused them: no wait for it to end
    report = sweep(app, now=utcnow())
    assert (report.claimed, report.sent, report.lost_lease) == (2, 2, 0)


def test_dead_workers_lease_is_taken_over_and_its_late_result_dropped(make):
    from notice import store
    from notice.types import DeliveryStatus

    app, flaky = make(NOTICE_CLAIM_TIMEOUT=60)
    with app.app_context():
        n = notice_event(1, subject="s", content="c", channels=["flaky"])
        notice_id = n.id
        state = app.notices.state(app)
        table = app.notices.Delivery.__table__
        now = utcnow()
        token, ids = store.claim(state.engine, table, now=now, lease=state.lease, limit=10)
    assert len(ids) == 1
    # the claimer "died": its lease still holds, so nobody takes the row
    assert sweep(app, now=now + timedelta(seconds=59)).claimed == 0
    assert sweep(app, now=now + timedelta(seconds=61)).sent == 1
    # the old claimer wakes up and reports a failure: dropped, the new owner's Sent stays
    with app.app_context():
        late = store.Outcome(ids[0], notice_id, DeliveryStatus.DEAD, "late")
        recorded = store.finish(
            state.engine, table, app.notices.Notice.__table__, token, [late], now=utcnow()
        )
    assert recorded == []
    (row,) = _deliveries(app)
    assert (row.status, row.attempts, row.last_error) == ("Sent", 2, None)


def test_sweep_entry_points_and_limit(make):
    app, flaky = make()
    with app.app_context():
        notice_event(list(range(1, 6)), subject="s", content="c", channels=["flaky"])
        report = app.notices.sweep(limit=2)
        assert (report.claimed, report.sent) == (2, 2)
    report = sweep(app.notices.state(app))
    assert (report.claimed, report.sent) == (3, 3)
    assert sorted(flaky.sent) == sorted(r.notice_id for r in _deliveries(app))


def test_worker_sweeps_until_stopped(make):
    app, flaky = make(NOTICE_BATCH_SIZE=3)
    stop = threading.Event()
    reports: list[Any] = []
    thread = threading.Thread(
        target=run_worker, args=(app, 0.05, stop), kwargs={"on_pass": reports.append}
    )
    thread.start()
    try:
        with app.app_context():
            notice_event(list(range(1, 11)), subject="s", content="c", channels=["flaky"])
        assert wait_for(lambda: len(flaky.sent) == 10, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert sum(r.sent for r in reports) == 10


def test_worker_survives_database_errors_and_resumes(make, caplog):
    app, flaky = make()
    with app.app_context():
        notice_event(1, subject="before", content="c", channels=["flaky"])
        app.db.session.remove()  # its open read transaction would block the DROP
        app.notices.Delivery.__table__.drop(app.db.engine)  # every claim now fails
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="notice.sweeper")
    thread = threading.Thread(target=run_worker, args=(app, 0.05, stop))
    thread.start()
    try:
        assert wait_for(
            lambda: sum("database error" in r.getMessage() for r in caplog.records) >= 2,
            timeout=10,
        )
        assert flaky.sent == []
        with app.app_context():
            app.notices.Delivery.__table__.create(app.db.engine)
            notice_event(2, subject="after", content="c", channels=["flaky"])
        assert wait_for(lambda: len(flaky.sent) == 1, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying in" in m for m in messages)
    assert any("recovered after" in m for m in messages)
    # the error line names the failure without SQL text
    error = next(m for m in messages if "database error" in m)
    assert "SELECT" not in error and "UPDATE" not in error
