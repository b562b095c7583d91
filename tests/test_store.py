"""notice/store.py: bulk writes, racing dedupe, index use, claims and leases.

Every test runs on SQLite and PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.columns import utcnow
from notice.store import Outcome, claim, finish
from notice.types import DeliveryStatus

#: only the memory sender, so counts below are about the core alone
CORE = {"NOTICE_STREAM": False}


def test_sixteen_racing_callers_get_one_notice_and_one_send(app_factory):
    app = app_factory(**CORE)
    notices = app.notices
    callers = 16
    barrier = threading.Barrier(callers, timeout=30)
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def publish() -> None:
        try:
            with app.app_context():
                barrier.wait()
                n = notice_event(1, subject="race", content="", dedupe_key="post:3")
                with lock:
                    ids.append(n.id)
                app.db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(ids) == callers and len(set(ids)) == 1
    with app.app_context():
        assert notices.Notice.query.filter_by(user_id=1).count() == 1
        assert notices.Delivery.query.count() == 1
        assert [n.id for n in notices.sender("memory").outbox] == ids[:1]


def test_ten_thousand_recipients_take_a_few_statements(app_factory):
    app = app_factory(**CORE)
    recipients = 10_000
    with app.app_context():
        notices, engine = app.notices, app.db.engine
        statements: list[str] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            ids = notice_event(range(recipients), subject="hello all", content="")
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        assert len(ids) == len(set(ids)) == recipients
        assert notices.Notice.query.count() == recipients
        deliveries = notices.Delivery.query
        assert deliveries.count() == recipients
        assert deliveries.filter_by(status="Sent", attempts=1).count() == recipients
        outbox = notices.sender("memory").outbox
        assert len(outbox) == recipients and {n.id for n in outbox} == set(ids)
        assert sorted(n.user_id for n in outbox) == list(range(recipients))
        # the write is bulk: a handful of INSERTs (driver batches), not one per row
        inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
        assert len(inserts) <= 30
        # delivery costs a few statements per claimed batch of NOTICE_BATCH_SIZE rows
        batches = -(-recipients // app.config["NOTICE_BATCH_SIZE"])
        assert len(statements) <= 8 * batches + 30, len(statements)
        assert 8 * batches + 30 < recipients // 20


def test_fan_out_with_repeated_ids_keeps_order(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        users = [5, 3, 5, 1] * 300
        ids = notice_event(users, subject="s", content="")
        Notice = app.notices.Notice
        rows = dict(app.db.session.execute(sa.select(Notice.id, Notice.user_id)).all())
        assert [rows[i] for i in ids] == users
        assert len(app.notices.sender("memory").outbox) == len(users)


def test_fan_out_stores_every_shared_value(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    expires = utcnow() + timedelta(days=3)
    with app.app_context():
        ids = notice_event(
            [4, 5, 6],
            "Like",
            subject="Ana liked",
            content="body",
            url="/p/1",
            sender_id=9,
            data={"post": 1, "tags": ["a"]},
            expires_at=expires,
        )
        app.db.session.expire_all()
        rows = app.notices.Notice.query.order_by(app.notices.Notice.id).all()
        assert [r.id for r in rows] == ids and [r.user_id for r in rows] == [4, 5, 6]
        for r in rows:
            assert (r.notice_type, r.subject, r.content, r.url, r.sender_id) == (
                "Like",
                "Ana liked",
                "body",
                "/p/1",
                9,
            )
            assert r.data == {"post": 1, "tags": ["a"]} and r.expires_at == expires
            assert (r.read_status, r.send_status, r.read_at, r.dedupe_key) == (
                "Unread",
                "Wait",
                None,
                None,
            )
        deliveries = app.notices.Delivery.query.all()
        assert sorted(d.notice_id for d in deliveries) == ids
        assert {(d.channel, d.target, d.status, d.attempts) for d in deliveries} == {
            ("memory", "", "Wait", 0)
        }


def test_deduplicated_fan_out_writes_only_the_missing_users(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        first = notice_event(2, subject="s", content="", dedupe_key="k").id
        ids = notice_event([1, 2, 3, 3], subject="s", content="", dedupe_key="k")
        assert len(ids) == 2 and first not in ids
        rows = app.notices.Notice.query.all()
        assert sorted(r.user_id for r in rows) == [1, 2, 3]
        assert sorted(n.user_id for n in app.notices.sender("memory").outbox) == [1, 2, 3]
        assert notice_event([1, 2, 3], subject="s", content="", dedupe_key="k") == []


def test_rows_that_differ_take_the_executemany_path(app_factory):
    from notice.store import insert_notices

    app = app_factory(**CORE)
    with app.app_context():
        now = utcnow()
        rows = [
            {"user_id": u, "subject": f"for {u}", "notice_type": "Post", "create_at": now}
            for u in (3, 1, 2)
        ]
        written = insert_notices(app.db.session, app.notices.Notice.__table__, rows, dedupe=False)
        app.db.session.commit()
        assert [u for _, u in written] == [3, 1, 2]
        subjects = {n.id: n.subject for n in app.notices.Notice.query}
        assert [subjects[i] for i, _ in written] == ["for 3", "for 1", "for 2"]


def _captured(notices, call):
    """Run ``call`` and return the last SELECT it sent, with its parameters."""
    engine = notices.db.engine
    seen: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", grab)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", grab)
    return seen[-1]


def _plan(conn, prefix: str, statement: str, parameters: object) -> str:
    rows = conn.exec_driver_sql(f"{prefix} {statement}", parameters).all()
    return "\n".join(" ".join(str(col) for col in row) for row in rows)


def test_unread_count_and_listing_use_the_indexes(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    with app.app_context():
        notices = app.notices
        # enough rows over enough users that PostgreSQL's planner prefers the indexes
        # user 7 has a long history (the newest page must not sort all of it), then
        # everybody gets newer notices (walking the primary key would skip them all)
        notice_event([7] * 2_000, subject="s", content="", channels=[])
        for _ in range(10):
            notice_event(range(2_000), subject="s", content="", channels=[])
        notices.mark_read(7)
        notice_event(7, subject="new", content="", channels=[])
        count_sql = _captured(notices, lambda: notices.unread_count(7))
        list_sql = _captured(notices, lambda: notices.list_notices(7, limit=20))
        assert notices.unread_count(7) == 1
        app.db.session.commit()
        engine = app.db.engine
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                count_plan = _plan(conn, "EXPLAIN QUERY PLAN", *count_sql)
                list_plan = _plan(conn, "EXPLAIN QUERY PLAN", *list_sql)
            assert "USING COVERING INDEX ix_notice_user_read" in count_plan
            assert "USING INDEX ix_notice_user_id" in list_plan
            assert "TEMP B-TREE" not in list_plan  # newest first straight from the index
        else:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE notice")
                count_plan = _plan(conn, "EXPLAIN", *count_sql)
                list_plan = _plan(conn, "EXPLAIN", *list_sql)
            assert "Index Only Scan using ix_notice_user_read" in count_plan, count_plan
            assert "Index Scan Backward using ix_notice_user_id" in list_plan, list_plan
            assert "Sort" not in list_plan


def _one_delivery(app):
    with app.app_context():
        notice_event(1, subject="s", content="")
        return app.notices.Delivery.query.one().id


def test_a_taken_over_lease_cannot_overwrite_the_new_owner(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    delivery_id = _one_delivery(app)
    with app.app_context():
        engine = app.db.engine
        table = app.notices.Delivery.__table__
        notice_table = app.notices.Notice.__table__
        t0 = utcnow() + timedelta(minutes=1)
        lease = timedelta(seconds=60)
        old, got = claim(engine, table, now=t0, lease=lease, limit=10)
        assert got == [delivery_id]
        # the lease is live: nobody else gets the row, even by id
        _, none = claim(engine, table, now=t0 + timedelta(seconds=30), lease=lease, limit=10)
        assert none == []
        _, none = claim(
            engine, table, now=t0 + timedelta(seconds=30), lease=lease, limit=10, ids=[delivery_id]
        )
        assert none == []
        # the lease ran out: another worker takes the row over
        later = t0 + timedelta(seconds=61)
        new, got = claim(engine, table, now=later, lease=lease, limit=10)
        assert got == [delivery_id] and new != old
        notice_id = app.notices.Delivery.query.one().notice_id
        retry_at = later + timedelta(seconds=30)
        mine = Outcome(delivery_id, notice_id, DeliveryStatus.ERROR, "boom", retry_at)
        assert finish(engine, table, notice_table, new, [mine], now=later) == [mine]
        # the slow first worker comes back with a success: dropped
        stale = Outcome(delivery_id, notice_id, DeliveryStatus.SENT)
        assert finish(engine, table, notice_table, old, [stale], now=later) == []
        app.db.session.expire_all()
        row = app.notices.Delivery.query.one()
        assert (row.status, row.last_error, row.attempts) == ("Error", "boom", 2)
        assert row.next_attempt_at == retry_at and row.sent_at is None
        assert row.claim_token is None and row.claimed_until is None
        assert app.notices.Notice.query.one().send_status == "Error"
        # asked for by id (a redelivered Celery task), a failed row still waits out
        # its backoff; at its time it is taken
        early = retry_at - timedelta(seconds=1)
        assert claim(engine, table, now=early, lease=lease, limit=10, ids=[delivery_id])[1] == []
        due = claim(engine, table, now=retry_at, lease=lease, limit=10, ids=[delivery_id])[1]
        assert due == [delivery_id]


def test_lost_lease_is_counted_by_deliver(app_factory):
    from notice import Sender
    from notice.delivery import deliver

    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SWEEP_GRACE=0, **CORE)

    class Stealer(Sender):
        """While sending, another worker takes the row over (its lease had run out)."""

        name = "stealer"

        def send(self, notice):
            table = app.notices.Delivery.__table__
            claim(
                app.db.engine,
                table,
                now=utcnow() + timedelta(hours=1),
                lease=timedelta(seconds=60),
                limit=10,
                where=table.c.channel == "stealer",
            )

    app.notices.register_sender(Stealer())
    with app.app_context():
        notice_event(1, subject="s", content="")
        report = deliver(app.notices.state(app))
        assert (report.claimed, report.sent, report.lost_lease) == (2, 1, 1)
        row = app.notices.Delivery.query.filter_by(channel="stealer").one()
        assert row.status == "Wait" and row.claim_token is not None


@pytest.mark.parametrize("read", [True, False])
def test_set_read_touches_only_the_users_rows(app_factory, read):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    with app.app_context():
        notices = app.notices
        mine = notice_event([1] * 3, subject="s", content="", channels=[])
        theirs = notice_event(2, subject="s", content="", channels=[]).id
        if not read:
            notices.mark_read(1)
            notices.mark_read(2)
        changed = (notices.mark_read if read else notices.mark_unread)(1, mine[:2] + [theirs])
        assert changed == 2
        by_id = {n.id: n for n in notices.Notice.query}
        assert [by_id[i].is_read for i in mine] == [read, read, not read]
        assert by_id[theirs].is_read is not read
        assert (by_id[mine[0]].read_at is not None) is read
