"""notice/delivery.py: claim, send, record; retries never resend a channel that
succeeded. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from notice import Sender, SkipDelivery, TransientError, notice_event
from notice.columns import utcnow
from notice.delivery import deliver

CORE = {"NOTICE_STREAM": False}


class FailsOnce(Sender):
    name = "flaky"

    def __init__(self):
        self.calls = 0
        self.sent: list[int] = []

    def send(self, notice):
        self.calls += 1
        if self.calls == 1:
            raise TransientError("busy", retry_after=60)
        self.sent.append(notice.id)


def test_a_retry_resends_only_the_failed_channel(app_factory):
    app = app_factory(**CORE)
    flaky = app.notices.register_sender(FailsOnce())
    with app.app_context():
        n = notice_event(1, subject="s", content="")
        memory = app.notices.sender("memory")
        assert [o.id for o in memory.outbox] == [n.id] and flaky.sent == []
        rows = {d.channel: d for d in app.notices.Delivery.query}
        assert rows["flaky"].status == "Error" and rows["memory"].status == "Sent"
        retry_at = rows["flaky"].next_attempt_at
        assert timedelta(seconds=59) < retry_at - rows["flaky"].update_at < timedelta(seconds=61)
        state = app.notices.state(app)
        # not due yet: nothing happens
        assert deliver(state, now=retry_at - timedelta(seconds=1)).claimed == 0
        report = deliver(state, now=retry_at + timedelta(seconds=1))
        assert (report.claimed, report.sent) == (1, 1)
        assert flaky.sent == [n.id] and len(memory.outbox) == 1
        app.db.session.expire_all()
        rows = {d.channel: d for d in app.notices.Delivery.query}
        assert (rows["flaky"].status, rows["flaky"].attempts) == ("Sent", 2)
        assert rows["memory"].attempts == 1
        assert app.notices.Notice.query.one().send_status == "Sent"
        assert deliver(state, now=retry_at + timedelta(days=1)).claimed == 0


def test_deliver_due_takes_a_limit_or_drains(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SWEEP_GRACE=0, NOTICE_BATCH_SIZE=5, **CORE)
    with app.app_context():
        notice_event(range(12), subject="s", content="")
        memory = app.notices.sender("memory")
        assert app.notices.deliver_due(limit=3).sent == 3 and len(memory.outbox) == 3
        report = app.notices.deliver_due()
        assert (report.claimed, report.sent) == (9, 9)
        assert sorted(n.user_id for n in memory.outbox) == list(range(12))
        assert app.notices.deliver_due().claimed == 0


def test_skip_is_final_and_counts_as_done(app_factory):
    class NoAddress(Sender):
        name = "noaddr"

        def send(self, notice):
            raise SkipDelivery("no address for this user")

    app = app_factory(**CORE)
    app.notices.register_sender(NoAddress())
    with app.app_context():
        n = notice_event(1, subject="s", content="")
        d = app.notices.Delivery.query.filter_by(channel="noaddr").one()
        assert d.status == "Skipped" and "no address" in d.last_error
        assert n.send_status == "Sent"
        later = utcnow() + timedelta(days=1)
        assert deliver(app.notices.state(app), now=later).claimed == 0


def test_send_status_waits_for_every_delivery(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SWEEP_GRACE=0, **CORE)
    app.notices.register_sender(FailsOnce())
    with app.app_context():
        n = notice_event(1, subject="s", content="")
        assert n.send_status == "Wait"
        state = app.notices.state(app)
        table = app.notices.Delivery.__table__
        deliver(state, where=table.c.channel == "memory")
        app.db.session.expire_all()
        assert app.notices.Notice.query.one().send_status == "Wait"  # flaky still pending
        deliver(state, where=table.c.channel == "flaky")
        app.db.session.expire_all()
        assert app.notices.Notice.query.one().send_status == "Error"
        deliver(state, now=utcnow() + timedelta(minutes=2))
        app.db.session.expire_all()
        assert app.notices.Notice.query.one().send_status == "Sent"


def test_a_batch_stops_sending_before_its_lease_runs_out(app_factory):
    """A sender slower than the lease allows: the worker starts only sends that can time
    out inside its lease and gives the rest back at once (due again, attempt undone, no
    lost lease counted); the next passes send the rest. Every delivery goes out once."""
    import time

    from notice import Sender, notice_event

    class Slow(Sender):
        name = "slow"
        sent: list[int] = []

        def send(self, notice):
            time.sleep(0.15)
            Slow.sent.append(notice.id)

    app = app_factory(
        NOTICE_DISPATCH="none",
        NOTICE_SENDERS=[],
        NOTICE_CLAIM_TIMEOUT=1.0,
        NOTICE_SEND_TIMEOUT=0.5,
    )
    with app.app_context():
        app.notices.register_sender(Slow())
        ids = notice_event(list(range(1, 9)), subject="s", content="c")
        first = app.notices.deliver_due(limit=8)
        assert first.claimed == 8
        assert 0 < first.sent < 8 and first.lost_lease == 8 - first.sent
        Delivery = app.notices.Delivery
        app.db.session.expire_all()
        back = Delivery.query.filter_by(status="Wait").all()
        assert len(back) == 8 - first.sent
        assert {(d.claim_token, d.attempts, d.lease_expiries) for d in back} == {(None, 0, 0)}
        # no waiting for a lease: the rest is due now, a batch at a time
        rest = app.notices.deliver_due()
        assert first.sent + rest.sent == 8
        app.db.session.expire_all()
        assert {d.lease_expiries for d in Delivery.query} == {0}
    assert sorted(Slow.sent) == sorted(ids)  # every one once, none twice
