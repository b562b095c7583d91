"""Deliveries born claimed: written leased to the sending process, sent from memory
after commit, finished once per batch; ids bound as arrays; no avoidable round trip."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, Sender, notice_event
from notice.columns import utcnow
from notice.signals import notice_created
from notice.sweeper import sweep
from notice.types import DeliveryStatus
from tests.support.waiting import wait_for

CORE = {"NOTICE_STREAM": False}

#: an id list expanded into one parameter per id (what array binds replace)
EXPANDED_IN = re.compile(
    r"\b(id|notice_id|user_id) IN \(\s*(\?|%\(|__\[POSTCOMPILE)", re.IGNORECASE
)


@contextmanager
def recording(app: Any, autocommitted: list[str] | None = None) -> Iterator[list[str]]:
    """Every statement the app's engine runs, and ``COMMIT`` for each commit; the ones
    run outside a transaction (autocommit) also go to ``autocommitted``."""
    statements: list[str] = []
    with app.app_context():
        engine = app.db.engine

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)
        if autocommitted is not None and getattr(cursor.connection, "autocommit", False):
            autocommitted.append(statement)

    def on_commit(conn: Any) -> None:
        statements.append("COMMIT")

    sa.event.listen(engine, "before_cursor_execute", on_execute)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)
        sa.event.remove(engine, "commit", on_commit)


def _after_write(statements: list[str]) -> list[str]:
    """The statements after the publishing transaction's commit."""
    return statements[statements.index("COMMIT") + 1 :]


def _deliveries(app: Any) -> list[Any]:
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        return list(conn.execute(sa.select(d).order_by(d.c.id)))


class Peek(Sender):
    """Records, while sending, the delivery rows as the database holds them then."""

    name = "peek"

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[Any, ...]] = []

    def send(self, notice: Any) -> None:
        d = self.app.notices.Delivery.__table__
        with self.app.db.engine.connect() as conn:
            row = conn.execute(
                sa.select(d.c.claim_token, d.c.claimed_until, d.c.attempts).where(
                    d.c.notice_id == notice.id
                )
            ).one()
        self.seen.append(tuple(row))


def test_deliveries_are_born_claimed_and_sent_without_a_claim_or_read(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_SENDERS=[], **CORE)
    peek = Peek(app)
    app.notices.register_sender(peek)
    with app.app_context(), recording(app) as statements:
        n = notice_event(1, subject="s", content="")
    # during the send the row was already leased, by the write itself
    [(token, until, attempts)] = peek.seen
    assert token is not None and until > utcnow() and attempts == 1
    # after commit (the sender's own peek aside): the finish's statements only, in one
    # transaction; no claim (which bumps attempts), no read of deliveries or notices
    after = [
        s
        for s in _after_write(statements)
        if not s.startswith("SELECT notice_delivery.claim_token")
    ]
    assert after.count("COMMIT") == 1
    assert [s for s in after if "attempts + " in s] == []
    assert [s for s in after if s.startswith("SELECT") and "FOR UPDATE" not in s] == []
    # the Notice returned is built from the values written: no reload either
    assert n.send_status == "Sent" and n.subject == "s"
    [row] = _deliveries(app)
    assert (row.status, row.claim_token, row.claimed_until, row.attempts) == (
        "Sent",
        None,
        None,
        1,
    )


def test_a_single_sync_emit_is_one_write_and_a_two_statement_finish(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    with app.app_context():
        notice_event(1, subject="warm-up", content="")
        autocommitted: list[str] = []
        with recording(app, autocommitted) as statements:
            n = notice_event(2, subject="s", content="", data={"k": 1})
        postgres = app.db.engine.dialect.name == "postgresql"
    flat = [" ".join(s.split()) for s in statements]
    write = flat[: flat.index("COMMIT")]
    after = [s for s in _after_write(flat) if s != "BEGIN IMMEDIATE"]
    if postgres:
        # the notice and its delivery in one statement (a CTE); the finish in one too:
        # the notice locked, the delivery Sent and, as it was all ours, the notice Sent.
        # Alone in the session, each runs as its own transaction (no BEGIN and COMMIT
        # round trips): two round trips in all
        [both] = write
        assert both.startswith("WITH n AS (INSERT INTO notice ") and "notice_delivery" in both
        [finish, commit] = after
        assert finish.startswith("WITH locked AS") and "FOR UPDATE" in finish
        assert "UPDATE notice_delivery SET status" in finish
        assert "UPDATE notice SET send_status" in finish
        assert [" ".join(s.split()) for s in autocommitted] == [both, finish]
    else:
        [notice, delivery] = write
        assert notice.startswith("INSERT INTO notice ")
        assert delivery.startswith("INSERT INTO notice_delivery ")
        [sent, roll_up, commit] = after
        assert sent.startswith("UPDATE notice_delivery SET status")
        assert roll_up.startswith("UPDATE notice SET send_status")
    assert commit == "COMMIT"
    assert (n.user_id, n.data, n.send_status) == (2, {"k": 1}, "Sent")
    [row] = [r for r in _deliveries(app) if r.notice_id == n.id]
    assert (row.status, row.attempts, row.lease_expiries, row.claim_token) == (
        "Sent",
        1,
        0,
        None,
    )
    with app.app_context():
        stored = app.db.session.get(app.notices.Notice, n.id)
        assert (stored.user_id, stored.data, stored.send_status) == (2, {"k": 1}, "Sent")


def test_finishers_of_one_notice_take_turns_so_the_roll_up_sees_both(app_factory):
    """Two workers finish the two deliveries of one notice at once. Each must see the
    other's outcome, or the notice stays Wait for good: the finish locks the notice
    before it changes a delivery, so the second runs after the first committed."""
    from notice import store

    app = app_factory(NOTICE_DISPATCH="none", NOTICE_SENDERS=["memory", "log"], **CORE)
    state = app.notices.state(app)
    D, N = app.notices.Delivery.__table__, app.notices.Notice.__table__
    with app.app_context():
        n = notice_event(1, subject="s", content="")
        engine = app.db.engine
    ids = [r.id for r in _deliveries(app)]
    assert len(ids) == 2
    tokens = [
        store.claim(engine, D, now=utcnow(), lease=state.lease, limit=1, ids=[i])[0] for i in ids
    ]
    postgres = engine.dialect.name == "postgresql"
    errors: list[BaseException] = []

    def finish(i: int) -> None:
        try:
            outcome = store.Outcome(ids[i], n.id, DeliveryStatus.SENT)
            store.finish(engine, D, N, tokens[i], [outcome], now=utcnow())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    # a third party holds the notice (SQLite: the write lock) while both finishers start
    with engine.connect() as holder:
        if postgres:
            holder.execute(sa.select(N.c.id).where(N.c.id == n.id).with_for_update())
        else:
            holder.exec_driver_sql("BEGIN IMMEDIATE")
        threads = [threading.Thread(target=finish, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        if postgres:
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )

            def both_wait() -> bool:
                # a connection of its own: the activity view is a snapshot per transaction
                with engine.connect() as conn:
                    return conn.execute(waiting).scalar_one() == 2

            assert wait_for(both_wait, timeout=20)
        else:
            time.sleep(0.5)  # both are queued on the busy timeout
        holder.rollback()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert [r.status for r in _deliveries(app)] == ["Sent", "Sent"]
    with app.app_context():
        assert app.db.session.get(app.notices.Notice, n.id).send_status == "Sent"


def test_a_process_that_dies_after_commit_leaves_them_to_the_sweeper(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_CLAIM_TIMEOUT=60, **CORE)
    state = app.notices.state(app)
    # the process "dies" between its commit and its send: the batch is never sent
    state.dispatcher.submit_claimed = lambda batch: None  # type: ignore[method-assign]
    with app.app_context():
        notice_event([1, 2], subject="s", content="")
    memory = app.notices.state(app).sender("memory")
    assert memory.outbox == []
    # the lease holds: the sweeper does not take them yet
    assert sweep(app, now=utcnow() + timedelta(seconds=30)).claimed == 0
    # once it ran out, the sweeper takes them over, counted as a lost lease
    report = sweep(app, now=utcnow() + timedelta(seconds=61))
    assert (report.claimed, report.sent) == (2, 2)
    assert sorted(n.user_id for n in memory.outbox) == [1, 2]
    assert [(r.status, r.attempts, r.lease_expiries) for r in _deliveries(app)] == [
        ("Sent", 2, 1),
        ("Sent", 2, 1),
    ]


def test_fast_sends_share_a_finish_transaction_and_bind_arrays(app_factory, monkeypatch):
    from notice import delivery

    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_BATCH_SIZE=10, **CORE)
    with app.app_context(), recording(app) as statements:
        ids = notice_event(range(1, 31), subject="s", content="")
    assert len(ids) == 30
    # 30 deliveries in parts of 10, sent within FINISH_AFTER: one finish for all three,
    # one transaction
    after = _after_write(statements)
    assert after.count("COMMIT") == 1
    # at most FINISH_PARTS parts a finish
    monkeypatch.setattr(delivery, "FINISH_PARTS", 2)
    with app.app_context(), recording(app) as statements:
        notice_event(range(31, 61), subject="s", content="")
    assert _after_write(statements).count("COMMIT") == 2
    assert len(app.notices.state(app).sender("memory").outbox) == 60
    expanded = [s for s in statements if EXPANDED_IN.search(s)]
    assert expanded == []
    with app.app_context():
        Notice = app.notices.Notice
        assert Notice.query.filter_by(send_status="Sent").count() == 60


def test_a_fan_out_sends_in_parts_and_finishes_them_in_one_statement_or_transaction(
    app_factory,
):
    """The statements after a 50-recipient sync fan-out's commit, sent in 10 parts of 5:
    one finish for all of them (FINISH_PARTS parts, sent well within FINISH_AFTER),
    and it is all-Sent with every notice complete: PostgreSQL one autocommitted
    statement, SQLite its UPDATE of the deliveries and of the notices in one
    transaction. Before the grouping it was ten finishes."""
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_BATCH_SIZE=5, **CORE)
    with app.app_context():
        notice_event(range(1000, 1005), subject="warm-up", content="")
        postgres = app.db.engine.dialect.name == "postgresql"
        autocommitted: list[str] = []
        with recording(app, autocommitted) as statements:
            ids = notice_event(range(1, 51), subject="s", content="")
    assert len(ids) == 50
    after = [" ".join(s.split()) for s in _after_write(statements)]
    if postgres:
        [finish, commit] = after
        assert finish.startswith("WITH locked AS") and "UPDATE notice SET send_status" in finish
        assert len(autocommitted) == 1
    else:
        [begin, sent, notices, commit] = after
        assert begin == "BEGIN IMMEDIATE"
        assert sent.startswith("UPDATE notice_delivery SET status")
        assert notices.startswith("UPDATE notice SET send_status")
    assert commit == "COMMIT"
    assert {r.status for r in _deliveries(app)} == {"Sent"}
    with app.app_context():
        assert app.notices.Notice.query.filter_by(send_status="Sent").count() == 55


def test_a_finish_per_part_once_sends_take_longer_than_finish_after(app_factory, monkeypatch):
    from notice import delivery

    # every part takes longer than FINISH_AFTER: finished part by part, so a crash
    # leaves no more than one part sent and unrecorded
    monkeypatch.setattr(delivery, "FINISH_AFTER", 0.0)
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_BATCH_SIZE=10, **CORE)
    with app.app_context(), recording(app) as statements:
        notice_event(range(1, 31), subject="s", content="")
    assert _after_write(statements).count("COMMIT") == 3
    with app.app_context():
        assert app.notices.Notice.query.filter_by(send_status="Sent").count() == 30


@pytest.mark.parametrize("finish_parts", [1, 2, 10])
def test_notices_cut_between_parts_of_one_finish_are_rolled_up_sent(
    app_factory, monkeypatch, finish_parts
):
    from notice import delivery

    monkeypatch.setattr(delivery, "FINISH_PARTS", finish_parts)

    class Other(Sender):
        name = "other"

        def send(self, notice: Any) -> None:
            pass

    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_BATCH_SIZE=3, **CORE)
    app.notices.register_sender(Other())
    with app.app_context(), recording(app) as statements:
        ids = notice_event(range(1, 12), subject="s", content="")
    # 11 notices x 2 channels in parts of 3: a notice cut by every other part boundary
    assert _after_write(statements).count("COMMIT") == -(-8 // finish_parts)
    with app.app_context():
        Notice = app.notices.Notice
        assert sorted(n.id for n in Notice.query.filter_by(send_status="Sent")) == ids
    assert {r.status for r in _deliveries(app)} == {"Sent"}


def test_a_retry_finish_writes_outcomes_set_wise_under_the_token(app_factory):
    class Flaky(Sender):
        name = "flaky"
        calls = 0

        def send(self, notice: Any) -> None:
            Flaky.calls += 1
            if notice.user_id % 2:
                raise RuntimeError("down")

    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_SENDERS=[], **CORE)
    app.notices.register_sender(Flaky())
    with app.app_context(), recording(app) as statements:
        notice_event([1, 2, 3, 4], subject="s", content="")
    assert _after_write(statements).count("COMMIT") == 1
    assert not [s for s in statements if EXPANDED_IN.search(s)]
    rows = _deliveries(app)
    assert [r.status for r in rows] == ["Error", "Sent", "Error", "Sent"]
    assert all(r.claim_token is None for r in rows)
    with app.app_context():
        statuses = dict(
            app.db.session.execute(
                sa.select(app.notices.Notice.user_id, app.notices.Notice.send_status)
            ).all()
        )
    assert statuses == {1: "Error", 2: "Sent", 3: "Error", 4: "Sent"}


def test_a_stolen_lease_is_not_overwritten_by_the_late_finish(app_factory):
    release = threading.Event()
    entered = threading.Event()

    class Slow(Sender):
        name = "slow"

        def send(self, notice: Any) -> None:
            entered.set()
            assert release.wait(timeout=20)

    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, NOTICE_SENDERS=[], **CORE)
    app.notices.register_sender(Slow())
    with app.app_context():
        notice_event(1, subject="s", content="")
    assert entered.wait(timeout=20)
    # the lease "ran out": another worker takes the row over and records its outcome
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.begin() as conn:
        conn.execute(sa.update(d).values(claim_token="thief", last_error="the thief's"))
    release.set()
    app.notices.state(app).dispatcher.shutdown()  # waits for the batch in flight
    [row] = _deliveries(app)
    assert (row.status, row.claim_token, row.last_error) == ("Wait", "thief", "the thief's")


def test_a_notice_with_one_delivery_taken_over_is_rolled_up_from_the_table(app_factory):
    """One of a notice's two deliveries is taken over (and sent) by another worker while
    we send: the finish records the other and works the notice's status out from both
    rows; the new owner's roll-up saw ours still Wait, so ours must make it Sent."""
    release = threading.Event()
    entered = threading.Event()

    class Slow(Sender):
        name = "slow"

        def send(self, notice: Any) -> None:
            entered.set()
            assert release.wait(timeout=20)

    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, **CORE)
    app.notices.register_sender(Slow())
    with app.app_context():
        n = notice_event(1, subject="s", content="")
    assert entered.wait(timeout=20)
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.begin() as conn:
        conn.execute(
            sa.update(d)
            .where(d.c.channel == "slow")
            .values(status="Sent", claim_token=None, last_error="the thief's")
        )
    release.set()
    app.notices.state(app).dispatcher.shutdown()  # waits for the batch in flight
    rows = {r.channel: r for r in _deliveries(app)}
    assert (rows["memory"].status, rows["memory"].claim_token) == ("Sent", None)
    assert (rows["slow"].status, rows["slow"].last_error) == ("Sent", "the thief's")
    with app.app_context():
        assert app.db.session.get(app.notices.Notice, n.id).send_status == "Sent"


def test_no_preference_query_when_no_choice_is_stored(app_factory):
    app = app_factory(NOTICE_DISPATCH="sync", **CORE)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="warm-up", content="")
        with recording(app) as statements:
            notice_event(2, NoticeType.COMMENT, subject="s", content="")
            notice_event([3, 4], NoticeType.COMMENT, subject="s", content="")
        assert [s for s in statements if "notice_preference" in s] == []
        # a choice stored through this process is seen by the next publish
        app.notices.preferences.set(5, "Comment", "memory", False)
        with recording(app) as statements:
            notice_event([5, 6], NoticeType.COMMENT, subject="s", content="")
        assert len([s for s in statements if "notice_preference" in s]) == 1
    sent = sorted(n.user_id for n in app.notices.state(app).sender("memory").outbox)
    assert sent == [1, 2, 3, 4, 6]


def test_thread_dispatch_groups_queued_emits_into_one_send_and_one_finish(app_factory):
    release = threading.Event()
    entered = threading.Event()

    class Gate(Sender):
        name = "gate"
        sent: list[int] = []

        def send(self, notice: Any) -> None:
            if notice.user_id == 0:
                entered.set()
                assert release.wait(timeout=20)
            Gate.sent.append(notice.user_id)

    app = app_factory(NOTICE_DISPATCH="thread", NOTICE_THREADS=1, NOTICE_SENDERS=[], **CORE)
    app.notices.register_sender(Gate())
    dispatcher = app.notices.state(app).dispatcher
    with app.app_context():
        notice_event(0, subject="first", content="")
        assert entered.wait(timeout=20)
        with recording(app) as statements:
            # the caller waits for its write only: these queue behind the first send
            for user in range(1, 6):
                notice_event(user, subject="s", content="")
            writes = statements.count("COMMIT")
            release.set()
            assert wait_for(lambda: len(Gate.sent) == 6, timeout=20)
            assert wait_for(
                lambda: app.notices.Notice.query.filter_by(send_status="Sent").count() == 6,
                timeout=20,
            )
            dispatcher.shutdown()
    assert writes == 5
    # (on PostgreSQL the finish's notice lock rides in front: "WITH locked AS ... UPDATE")
    sent_updates = [s for s in statements if "UPDATE notice_delivery SET status" in s]
    # the first emit's finish, then one finish for the five queued behind it
    assert statements.count("COMMIT") - writes == 2
    assert len(sent_updates) == 2
    assert Gate.sent == [0, 1, 2, 3, 4, 5]


def test_a_fan_out_is_written_and_sent_in_chunks(app_factory, monkeypatch):
    from notice import publish

    monkeypatch.setattr(publish, "STREAM_CHUNK", 3)
    app = app_factory(NOTICE_DISPATCH="sync", NOTICE_BATCH_SIZE=4, **CORE)
    with app.app_context(), recording(app) as statements:
        ids = notice_event(range(1, 11), subject="s", content="", dedupe_key="k")
        again = notice_event(range(8, 13), subject="s", content="", dedupe_key="k")
    # chunks of at most 3 recipients, a delivery INSERT each: four for the first call;
    # the second call's first chunk (8, 9, 10) is all deduplicated, its second writes
    inserts = [s for s in statements if s.startswith("INSERT INTO notice_delivery")]
    assert len(inserts) == 4 + 1
    assert len(ids) == 10 and ids == sorted(ids) and len(again) == 2
    sent = sorted(n.user_id for n in app.notices.state(app).sender("memory").outbox)
    assert sent == list(range(1, 13))
    with app.app_context():
        Notice = app.notices.Notice
        assert Notice.query.filter_by(send_status="Sent").count() == 12


def test_claimed_batches_split_and_merge_in_order():
    from notice.claimed import ClaimedBatch, ClaimedSegment

    def segment(first: int, n: int) -> ClaimedSegment:
        ids = list(range(first, first + n))
        return ClaimedSegment({}, ids, ids, ids, ["c"] * n, [""] * n)

    batch = ClaimedBatch("t", 1.0, [segment(1, 5), segment(6, 2), segment(8, 4)])
    parts = batch.split(3)
    assert [p.ids for p in parts] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]
    merged = ClaimedBatch.merge(parts)
    assert merged.ids == list(range(1, 12)) and len(merged) == 11
    other = ClaimedBatch("u", 0.5, [segment(20, 1)])
    with pytest.raises(ValueError, match="one claim token"):
        ClaimedBatch.merge([batch, other])


def test_a_notice_cut_by_the_split_is_complete_in_neither_part():
    from notice.claimed import ClaimedBatch, ClaimedSegment
    from notice.delivery import _complete

    def segment(notice_ids: list[int]) -> ClaimedSegment:
        n = len(notice_ids)
        return ClaimedSegment({}, list(range(n)), notice_ids, notice_ids, ["c"] * n, [""] * n)

    # two emits merged (the thread dispatcher's group); notice 2's three deliveries span
    # the first two parts
    batch = ClaimedBatch("t", 1.0, [segment([1, 1, 2, 2, 2, 3, 4]), segment([5, 5])])
    parts = batch.split(3)
    assert [[n for s in p.segments for n in s.notice_ids] for p in parts] == [
        [1, 1, 2],
        [2, 2, 3],
        [4, 5, 5],
    ]
    assert [_complete(parts, i) for i in range(3)] == [{1}, {3}, {4, 5}]
    # parts finished together: a notice cut between two of them is complete in both
    assert _complete(parts, 0, 1) == {1, 2, 3}
    assert _complete(parts, 1, 2) == {3, 4, 5}
    assert _complete(parts, 0, 2) == {1, 2, 3, 4, 5}
    assert _complete(ClaimedBatch("t", 1.0, [segment([7, 7])]).split(3), 0) == {7}


def test_the_linger_gathers_a_burst_of_emits_into_one_finish(app_factory):
    """NOTICE_DISPATCH_LINGER: a thread that took an emit waits for the ones behind it
    (here long enough for five quick emits), so the burst is one send pass and one
    finish; the other threads do not split it among themselves."""
    app = app_factory(
        NOTICE_DISPATCH="thread", NOTICE_THREADS=4, NOTICE_DISPATCH_LINGER=1.0, **CORE
    )
    with app.app_context(), recording(app) as statements:
        memory = app.notices.sender("memory")
        for user in range(5):
            notice_event(user, subject="s", content="")
        writes = statements.count("COMMIT")
        assert wait_for(lambda: len(memory.outbox) == 5, timeout=20)
        assert wait_for(
            lambda: app.notices.Notice.query.filter_by(send_status="Sent").count() == 5,
            timeout=20,
        )
    assert writes == 5
    assert len([s for s in statements if "UPDATE notice_delivery SET status" in s]) == 1
    assert sorted(n.user_id for n in memory.outbox) == [0, 1, 2, 3, 4]


def test_shutdown_during_the_linger_sends_what_the_thread_holds(app_factory):
    """A thread lingering for more emits when the app shuts down sends the ones it
    took (nothing is left leased until the lease runs out)."""
    app = app_factory(
        NOTICE_DISPATCH="thread", NOTICE_THREADS=1, NOTICE_DISPATCH_LINGER=1.0, **CORE
    )
    with app.app_context():
        memory = app.notices.sender("memory")
        notice_event(1, subject="s", content="")
        app.notices.state(app).dispatcher.shutdown()  # within the linger
        assert [n.user_id for n in memory.outbox] == [1]
        app.db.session.rollback()
        rows = app.notices.Delivery.query.all()
        assert [(d.status, d.claim_token) for d in rows] == [("Sent", None)]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_lone_emit_commits_its_one_statement_itself_and_only_then(app_factory):
    """commit=True with nothing else in the session's transaction: the one-statement
    write runs in autocommit mode. Not when the caller's transaction already ran
    something, holds pending objects, or another receiver could write in it."""
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    Notice = app.notices.Notice

    def lone(**call: Any) -> bool:
        autocommitted: list[str] = []
        with recording(app, autocommitted) as statements:
            notice_event(1, subject="s", content="", **call)
        inserts = [s for s in statements if s.startswith("WITH n AS")]
        assert len(inserts) == 1
        return inserts[0] in autocommitted

    with app.app_context():
        # (the first emit asks whether any preference is stored: a read first)
        notice_event(1, subject="warm-up", content="")
        assert lone()
        assert lone()  # the previous emit's returned Notice in the session changes nothing
        assert not lone(commit=False)
        app.db.session.commit()
        app.db.session.execute(sa.text("SELECT 1"))  # the caller's transaction ran
        assert not lone()
        app.db.session.add(Notice(user_id=9, subject="pending", notice_type="System"))
        assert not lone()
        seen: list[Any] = []
        on_created = lambda sender, **kw: seen.append(kw)  # noqa: E731
        notice_created.connect(on_created)
        try:
            assert not lone()
        finally:
            notice_created.disconnect(on_created)
        assert lone()
        assert Notice.query.count() == 9 and seen


def test_claimed_pairs_are_the_rows_and_views_the_constructors_build():
    from notice.claimed import ClaimedDelivery, ClaimedSegment
    from notice.models import VIEW_COLUMNS, NoticeView

    now = utcnow()
    shared: dict[str, Any] = dict.fromkeys(VIEW_COLUMNS[:-2])
    for name in ("id", "user_id", "send_status"):
        del shared[name]
    shared.update(subject="s", content="c", notice_type="Comment", read_status="Unread")
    shared.update(create_at=now, update_at=now, category="info", data={"k": [1]})
    segment = ClaimedSegment(
        shared, [10, 11, 12], [1, 1, 2], [7, 7, "8"], ["a", "b", "a"], ["", "t", ""]
    )
    pairs = segment.pairs()
    assert pairs == [
        (
            ClaimedDelivery(d, n, c, t, 1, 0),
            NoticeView(id=n, user_id=u, send_status="Wait", **shared),
        )
        for d, n, u, c, t in zip(
            segment.delivery_ids,
            segment.notice_ids,
            segment.user_ids,
            segment.channels,
            segment.targets,
            strict=True,
        )
    ]
    assert all(type(d) is ClaimedDelivery for d, _ in pairs)
    assert pairs[0][1] is pairs[1][1]  # one view per notice
    assert pairs[0][1].group_count is None and pairs[0][1].is_read is False
    with pytest.raises(AttributeError):
        pairs[0][1].subject = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError, match="bogus"):
        ClaimedSegment({**shared, "bogus": 1}, [1], [1], [1], ["a"], [""]).pairs()
