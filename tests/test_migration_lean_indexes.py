"""Migration 0008 (issue 13, fewer index entries per notice and delivery) on SQLite and
PostgreSQL: ``uq_notice_user_dedupe`` is a partial unique index and
``ix_notice_delivery_notice_id`` is gone, in a ``create_all`` schema and a migrated one
alike; keys still dedupe, NULL keys never collide; lookups by notice still use an index
(``uq_delivery_channel``); down to 0007 restores the old schema exactly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import IntegrityError

from notice import notice_event
from notice.migrations import VERSION_TABLE, runner
from notice.store.common import in_list
from tests.test_migrations import _differences, _schema, app  # noqa: F401


def _build(app: Flask, how: str) -> None:  # noqa: F811
    if how == "create_all":
        with app.app_context():
            app.db.create_all()  # type: ignore[attr-defined]
    else:
        runner.upgrade(app)


def _inspect(app: Flask) -> Any:  # noqa: F811
    return sa.inspect(app.db.engine)  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["create_all", "upgrade"])
def test_the_dedupe_index_is_partial_and_the_notice_id_index_gone(app: Flask, how: str) -> None:  # noqa: F811
    _build(app, how)
    with app.app_context():
        inspector = _inspect(app)
        delivery_indexes = {ix["name"] for ix in inspector.get_indexes("notice_delivery")}
        assert "ix_notice_delivery_notice_id" not in delivery_indexes
        assert "uq_notice_user_dedupe" not in {
            uq["name"] for uq in inspector.get_unique_constraints("notice")
        }
        (dedupe,) = [
            ix for ix in inspector.get_indexes("notice") if ix["name"] == "uq_notice_user_dedupe"
        ]
        dialect = app.db.engine.dialect.name  # type: ignore[attr-defined]
    assert dedupe["unique"] and dedupe["column_names"] == ["user_id", "dedupe_key"]
    where = str(dedupe["dialect_options"][f"{dialect}_where"])
    assert where.strip("()") == "dedupe_key IS NOT NULL"
    if how == "upgrade":
        assert _differences(app) == []
    else:
        # a create_all database is told apart from a 0007 one (flask notice db upgrade
        # says what to stamp)
        assert runner.unrecorded_revision(app) == "0008"

    with app.app_context():
        db, notice = app.db, app.notices.Notice.__table__  # type: ignore[attr-defined]
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO app_user (id) VALUES (7), (8), (9)"))
        row = {"user_id": 7, "subject": "s", "content": "", "notice_type": "Comment"}
        # NULL keys never collide (and have no entry in the index)
        with db.engine.begin() as conn:
            conn.execute(sa.insert(notice), [row, row])
        # a repeated key is still refused by the index itself...
        with db.engine.begin() as conn:
            conn.execute(sa.insert(notice), {**row, "dedupe_key": "k"})
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.insert(notice), {**row, "dedupe_key": "k"})
        # ...and deduplicated by publishing (ON CONFLICT on the partial index), one
        # recipient and a fan-out alike
        first = notice_event(8, subject="a", content="", dedupe_key="d")
        assert notice_event(8, subject="a", content="", dedupe_key="d").id == first.id
        ids = notice_event([8, 9], subject="a", content="", dedupe_key="d")
        assert len(ids) == 1 and ids[0] != first.id
        assert notice_event(9, subject="a", content="", dedupe_key="d").id == ids[0]
        db.session.commit()
        counts = dict(
            db.session.execute(
                sa.select(notice.c.dedupe_key, sa.func.count()).group_by(notice.c.dedupe_key)
            ).all()
        )
    assert counts == {None: 2, "k": 1, "d": 2}


def test_0008_keeps_rows_and_downgrades_to_0007_exactly(app: Flask) -> None:  # noqa: F811
    runner.upgrade(app, "0007")
    at_0007 = _schema(app)
    with app.app_context():
        # a 0007 database of create_all is stamped 0007, not 0008
        with app.db.engine.begin() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql(f"DROP TABLE {VERSION_TABLE}")
    assert runner.unrecorded_revision(app) == "0007"
    runner.stamp(app, "0007")
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("INSERT INTO app_user (id) VALUES (7)"))
        for key in (None, None, "k"):
            conn.execute(
                sa.text(
                    "INSERT INTO notice (user_id, subject, content, notice_type, read_status,"
                    " send_status, dedupe_key, create_at, update_at) VALUES"
                    " (7, 's', '', 'Comment', 'Unread', 'Wait', :key, :now, :now)"
                ),
                {"key": key, "now": "2026-11-30 10:00:00+00:00"},
            )
        conn.execute(
            sa.text(
                "INSERT INTO notice_delivery (notice_id, channel, target, status, attempts,"
                " next_attempt_at, create_at, update_at) VALUES"
                " (3, 'memory', '', 'Wait', 0, :now, :now, :now)"
            ),
            {"now": "2026-11-30 10:00:00+00:00"},
        )

    def rows() -> tuple[list[Any], list[Any]]:
        with app.app_context(), app.db.engine.connect() as conn:  # type: ignore[attr-defined]
            notices = conn.execute(sa.text("SELECT id, dedupe_key FROM notice ORDER BY id"))
            deliveries = conn.execute(sa.text("SELECT id, notice_id FROM notice_delivery"))
            return [tuple(r) for r in notices], [tuple(r) for r in deliveries]

    before = rows()
    assert before == ([(1, None), (2, None), (3, "k")], [(1, 3)])
    runner.upgrade(app)
    assert runner.current(app) == ("0008",) and _differences(app) == []
    # the SQLite rebuild kept every notice and the delivery (no cascade on the copy)
    assert rows() == before
    runner.downgrade(app, "0007")
    assert _schema(app) == at_0007
    assert rows() == before
    runner.upgrade(app)
    assert _differences(app) == []
    with app.app_context():
        # SQLite: still AUTOINCREMENT; the next id is 4 everywhere
        assert notice_event(7, subject="after", content="").id == 4
        app.db.session.commit()  # type: ignore[attr-defined]


@contextmanager
def _explained(conn: sa.Connection) -> Iterator[None]:
    """Statements run on ``conn`` return their plan instead (EXPLAIN QUERY PLAN on
    SQLite); on PostgreSQL sequential scans are priced out, so a tiny table shows
    whether an index *can* serve the statement."""
    sqlite = conn.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "

    def explain(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> Any:
        return prefix + statement, parameters

    if not sqlite:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    sa.event.listen(conn, "before_cursor_execute", explain, retval=True)
    try:
        yield
    finally:
        sa.event.remove(conn, "before_cursor_execute", explain)


def test_lookups_by_notice_and_the_cascade_use_an_index(app: Flask) -> None:  # noqa: F811
    """ix_notice_delivery_notice_id is gone: uq_delivery_channel (notice_id, channel,
    target) serves the deliveries of given notices, their deletion and ON DELETE
    CASCADE; the dedupe lookups use the partial index."""
    runner.upgrade(app)
    with app.app_context():
        notice = app.notices.Notice.__table__  # type: ignore[attr-defined]
        delivery = app.notices.Delivery.__table__  # type: ignore[attr-defined]
        engine = app.db.engine  # type: ignore[attr-defined]
        dialect = engine.dialect.name
        by_notice = [
            (sa.select(delivery.c.id).where(delivery.c.notice_id == 5), {}),
            (
                sa.delete(delivery).where(in_list(delivery.c.notice_id, "ids", dialect)),
                {"ids": [1, 2]},
            ),
            (sa.delete(delivery).where(delivery.c.notice_id.in_([1, 2])), {}),
        ]
        dedupe = [
            (
                sa.select(notice.c.id).where(
                    in_list(notice.c.user_id, "users", dialect), notice.c.dedupe_key == "k"
                ),
                {"users": [1, 2]},
            ),
        ]
        with engine.connect() as conn:
            plans = []
            with _explained(conn):
                for stmt, params in by_notice + dedupe:
                    plans.append(" ".join(str(row[-1]) for row in conn.execute(stmt, params)))
            if dialect == "sqlite":
                # SQLite's plan of a DELETE includes the foreign key's cascade
                with _explained(conn):
                    cascade = conn.execute(sa.delete(notice).where(notice.c.id == 7))
                    plans.append(" ".join(str(row[-1]) for row in cascade))
            else:
                # PostgreSQL's cascade runs this statement (ri_triggers.c)
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                cascade = conn.exec_driver_sql(
                    "EXPLAIN DELETE FROM ONLY notice_delivery WHERE 7 = notice_id"
                )
                plans.append(" ".join(str(row[0]) for row in cascade))
            conn.rollback()
    delivery_index = (
        "sqlite_autoindex_notice_delivery_1" if dialect == "sqlite" else "uq_delivery_channel"
    )
    for plan in plans[: len(by_notice)] + plans[len(by_notice) + len(dedupe) :]:
        assert delivery_index in plan and "SCAN notice_delivery" not in plan, plan
    for plan in plans[len(by_notice) : len(by_notice) + len(dedupe)]:
        assert "uq_notice_user_dedupe" in plan, plan
