"""Issue 13: the statements every emit runs are compiled once and run through
``exec_driver_sql`` (store.common.Prepared): values bind as with ``execute``, and the
engine's events still see every statement, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.store.common import prepared


def test_a_prepared_insert_binds_as_execute_does(app):
    db, Notice = app.db, app.notices.Notice
    table = Notice.__table__
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=timezone(timedelta(hours=2)))
    values = {
        "user_id": 7,
        "subject": "s",
        "notice_type": "Comment",
        "read_status": "Unread",
        "send_status": "Wait",
        "data": {"post": 3, "tags": ["a"]},
        "create_at": when,
        "update_at": when,
        "category": "info",
    }
    keys = tuple(values)

    def build():
        c = table.c
        binds = {k: sa.bindparam(k, type_=c[k].type) for k in keys}
        # a constant bind too: it carries its own value through the type's processor
        binds["content"] = sa.literal("fixed", type_=c.content.type)
        return sa.insert(table).values(binds).returning(c.id)

    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    stmt = prepared(table, "test:insert", db.engine.dialect, build)
    assert stmt is not None
    assert prepared(table, "test:insert", db.engine.dialect, build) is stmt  # built once
    [(notice_id,)] = stmt.run(db.session.connection(), values)
    db.session.commit()
    assert seen == [stmt.sql]  # the engine's events saw it
    row = db.session.get(Notice, notice_id)
    assert (row.user_id, row.content, row.data) == (7, "fixed", {"post": 3, "tags": ["a"]})
    # the aware datetime went through the column type (stored as UTC) as execute's would
    assert row.create_at == when
    assert row.create_at.utcoffset() == timedelta(0)


def test_prepared_is_none_for_no_statement(app):
    table = app.notices.Notice.__table__
    assert prepared(table, "test:none", app.db.engine.dialect, lambda: None) is None


def test_a_sync_emit_runs_its_writes_prepared(app):
    """The notice, its delivery and the finish go out as the prepared texts, the same
    texts every time (no statement built per call)."""
    db = app.db
    seen: list[str] = []
    sa.event.listen(db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    for n in range(3):
        notice_event(n + 1, subject="s", content="c")
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))]
    per_emit = len(writes) // 3
    assert per_emit >= 2 and len(writes) == 3 * per_emit
    assert writes[:per_emit] == writes[per_emit : 2 * per_emit] == writes[2 * per_emit :]


def _insert_subject(table):
    c = table.c
    return (
        sa.insert(table)
        .values(
            user_id=sa.bindparam("user_id", type_=c.user_id.type),
            subject=sa.bindparam("subject", type_=c.subject.type),
            content="",
            notice_type="Comment",
            read_status="Unread",
            send_status="Wait",
            category="info",
            create_at=sa.bindparam("now", type_=c.create_at.type),
            update_at=sa.bindparam("now", type_=c.update_at.type),
        )
        .returning(c.id)
    )


def test_a_driver_error_comes_out_as_sqlalchemys(app):
    """Without listeners the statement goes straight to the driver's cursor; its errors
    still reach callers (run_transaction's retry rules) as SQLAlchemy's."""
    db, table = app.db, app.notices.Notice.__table__
    stmt = prepared(table, "test:subject", db.engine.dialect, lambda: _insert_subject(table))
    assert stmt is not None
    conn = db.session.connection()
    assert not (conn._has_events or conn.engine._has_events)  # the driver path
    now = datetime.now(timezone.utc)
    [(ok,)] = stmt.run(conn, {"user_id": 1, "subject": "s", "now": now})
    assert ok > 0
    with pytest.raises(sa.exc.IntegrityError):
        stmt.run(conn, {"user_id": 1, "subject": None, "now": now})  # NOT NULL
    db.session.rollback()


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_lost_connection_is_invalidated_on_the_driver_path(app_factory):
    """The server ends our backend: the error says the connection was invalidated, and
    the pool hands out a live one next (as execute() would leave it)."""
    app = app_factory()
    db, table = app.db, app.notices.Notice.__table__
    now = datetime.now(timezone.utc)
    with app.app_context():
        build = lambda: _insert_subject(table)  # noqa: E731
        stmt = prepared(table, "test:subject", db.engine.dialect, build)
        assert stmt is not None
        conn = db.session.connection()
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with db.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            other.commit()
        with pytest.raises(sa.exc.DBAPIError) as caught:
            stmt.run(conn, {"user_id": 1, "subject": "s", "now": now})
        assert caught.value.connection_invalidated
        db.session.rollback()
        [(new_id,)] = stmt.run(db.session.connection(), {"user_id": 1, "subject": "s", "now": now})
        db.session.commit()
        assert new_id > 0


def test_a_prepared_write_on_a_fresh_connection_is_committed_by_its_commit(app):
    """On a connection nothing has begun yet, the driver path begins SQLAlchemy's
    transaction as execute() would: ``conn.commit()`` then commits the row (it used to
    be left to the pool's rollback on PostgreSQL)."""
    db, table = app.db, app.notices.Notice.__table__
    now = datetime.now(timezone.utc)
    stmt = prepared(table, "test:subject", db.engine.dialect, lambda: _insert_subject(table))
    assert stmt is not None
    with db.engine.connect() as conn:
        assert not conn.in_transaction()
        [(notice_id,)] = stmt.run(conn, {"user_id": 5, "subject": "kept", "now": now})
        conn.commit()
    with db.engine.connect() as other:
        subject = other.execute(
            sa.select(table.c.subject).where(table.c.id == notice_id)
        ).scalar_one_or_none()
    assert subject == "kept"
