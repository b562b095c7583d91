"""Issue 13: the live stream's reads bind an id list as ONE parameter and reuse one
statement, whatever the list's length, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from notice import notice_event
from notice.store.common import CHUNK
from notice.store.reads import Counts, badge_counts, notices_by_ids


def test_notices_by_ids_and_badge_counts_take_one_array_parameter(app):
    notices, db = app.notices, app.db
    notice_event([1, 1, 2], subject="s", content="")
    table = notices.Notice.__table__
    ids = [n.id for n in notices.Notice.query.order_by(notices.Notice.id)]
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with db.engine.connect() as conn:
        # ids beyond CHUNK and missing ones: found ones in id order, the others skipped
        asked = ids + list(range(ids[-1] + 1, ids[-1] + CHUNK + 10))
        assert [r.id for r in notices_by_ids(conn, table, asked)] == ids
        assert [r.id for r in notices_by_ids(conn, table, ids[:1])] == ids[:1]
        assert badge_counts(conn, notices.Notice, [1, 2, 3]) == {
            1: Counts(2, 2),
            2: Counts(1, 1),
            3: Counts(0, 0),
        }
        assert badge_counts(conn, notices.Notice, [2]) == {2: Counts(1, 1)}
    reads = [s for s in seen if "FROM notice" in s]
    # two statement texts in all, however many ids were asked for: nothing expanded
    assert len(set(reads)) == 2, reads
    assert all("POSTCOMPILE" not in s and "?, ?" not in s and "s, %" not in s for s in reads)


def test_insert_one_fills_in_scalar_defaults_and_steps_aside_for_callable_ones(db_url):
    """``insert_one`` writes a notice and its deliveries in one statement on PostgreSQL,
    where SQLAlchemy cannot apply Python-side defaults: scalar ones are written in as
    constants; a column with a callable default the caller left out makes it take the
    two-statement path, which applies it."""
    from sqlalchemy.orm import Session

    from notice.store.writes import insert_one

    md = sa.MetaData()
    notice = sa.Table(
        "n_defaults",
        md,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.Integer, nullable=False, default=7),
        sa.Column("stamp", sa.String(8), nullable=False, default=lambda: "called"),
    )
    delivery = sa.Table(
        "d_defaults",
        md,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("notice_id", sa.ForeignKey("n_defaults.id"), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("lease_expiries", sa.Integer, nullable=False, default=0),
    )
    engine = sa.create_engine(db_url)
    md.create_all(engine)
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    pairs = [("memory", ""), ("webpush", "12"), ("webpush", "13")]
    try:
        with Session(engine) as session:
            given = insert_one(
                session,
                notice,
                delivery,
                {"user_id": 1, "stamp": "given"},
                {"status": "Wait"},
                pairs,
            )
            writes_given = len(seen)
            missing = insert_one(session, notice, delivery, {"user_id": 2}, {"status": "Wait"}, [])
            left_out = insert_one(
                session, notice, delivery, {"user_id": 3}, {"status": "Wait"}, pairs[:1]
            )
            session.commit()
        with engine.connect() as conn:
            notices = conn.execute(sa.select(notice).order_by(notice.c.id)).all()
            deliveries = conn.execute(sa.select(delivery).order_by(delivery.c.id)).all()
    finally:
        md.drop_all(engine)
        engine.dispose()
    postgres = engine.dialect.name == "postgresql"
    assert writes_given == (1 if postgres else 2)
    assert [(n.user_id, n.flag, n.stamp) for n in notices] == [
        (1, 7, "given"),
        (2, 7, "called"),
        (3, 7, "called"),
    ]
    assert given == (notices[0].id, [d.id for d in deliveries[:3]])
    assert missing == (notices[1].id, []) and left_out == (notices[2].id, [deliveries[3].id])
    assert [(d.notice_id, d.channel, d.target, d.lease_expiries) for d in deliveries] == [
        (notices[0].id, "memory", "", 0),
        (notices[0].id, "webpush", "12", 0),
        (notices[0].id, "webpush", "13", 0),
        (notices[2].id, "memory", "", 0),
    ]
