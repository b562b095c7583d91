"""After-commit work belongs to the transaction level that registered it (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from notice import notice_event


def test_rolled_back_savepoint_keeps_the_outer_transactions_dispatch(app, notices, db):
    notice_event(1, subject="outer", content="", commit=False)
    with pytest.raises(sa.exc.IntegrityError):
        with db.session.begin_nested():
            # a duplicate dedupe key inside a SAVEPOINT: the caller's ordinary mistake
            db.session.add(
                notices.Notice(user_id=1, subject="x", notice_type="System", dedupe_key="k")
            )
            db.session.add(
                notices.Notice(user_id=1, subject="y", notice_type="System", dedupe_key="k")
            )
            db.session.flush()
    db.session.commit()
    assert [n.subject for n in notices.sender("memory").outbox] == ["outer"]
    assert notices.Notice.query.one().send_status == "Sent"


def test_work_of_a_rolled_back_savepoint_is_dropped_and_the_rest_runs(app, notices, db):
    notice_event(1, subject="kept", content="", commit=False)
    savepoint = db.session.begin_nested()
    notice_event(2, subject="dropped", content="", commit=False)
    savepoint.rollback()
    with db.session.begin_nested():
        notice_event(3, subject="released", content="", commit=False)
    assert notices.sender("memory").outbox == []  # a released SAVEPOINT is no commit
    db.session.commit()
    assert sorted(n.subject for n in notices.sender("memory").outbox) == ["kept", "released"]


def test_outer_rollback_drops_work_of_released_savepoints(app, notices, db):
    notice_event(1, subject="a", content="", commit=False)
    with db.session.begin_nested():
        notice_event(2, subject="b", content="", commit=False)
    db.session.rollback()
    db.session.commit()
    assert notices.sender("memory").outbox == []
    assert notices.Notice.query.count() == 0
