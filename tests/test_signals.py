"""Signal semantics: ``notification`` receivers share the caller's transaction; the
after-the-fact signals only observe. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.signals import notice_created, notice_sent, notification


class Veto(Exception):
    pass


def _counts(notices: Any, db: Any) -> tuple[int, int]:
    n = db.session.execute(sa.select(sa.func.count()).select_from(notices.Notice)).scalar()
    d = db.session.execute(sa.select(sa.func.count()).select_from(notices.Delivery)).scalar()
    return int(n), int(d)


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
@pytest.mark.parametrize("commit", [True, False])
def test_failing_notification_receiver_leaves_nothing_written_nor_sent(
    app_factory, dispatch, commit
):
    app = app_factory(NOTICE_DISPATCH=dispatch)
    notices, db = app.notices, app.db
    calls: list[Any] = []

    def veto(sender: Any, *, event: Any, **_: Any) -> None:
        calls.append(event)
        raise Veto("audit log is down")

    with app.app_context():
        notification.connect(veto, sender=app)
        try:
            with pytest.raises(Veto):
                notice_event([1, 2], subject="s", content="c", commit=commit)
            with pytest.raises(Veto):
                notice_event(3, subject="t", content="c", commit=commit)
            if not commit:
                db.session.commit()  # the caller's transaction goes on and commits
        finally:
            notification.disconnect(veto, sender=app)
        assert len(calls) == 2
        assert _counts(notices, db) == (0, 0)
        state = notices.state(app)
        state.dispatcher.shutdown(wait=True)
        assert notices.sender("memory").outbox == []
        # the app still publishes normally once the receiver is gone
        notice_event(4, subject="u", content="c")
        assert _counts(notices, db) == (1, 1)


def test_failing_receiver_keeps_the_callers_own_work_with_commit_false(app_factory):
    app = app_factory()
    notices, db = app.notices, app.db

    def veto(sender: Any, **_: Any) -> None:
        raise Veto("no")

    with app.app_context():
        notice_event(1, subject="before", content="", commit=False)  # the caller's work
        notification.connect(veto, sender=app)
        try:
            with pytest.raises(Veto):
                notice_event(2, subject="vetoed", content="", commit=False)
        finally:
            notification.disconnect(veto, sender=app)
        db.session.commit()
        subjects = [n.subject for n in notices.Notice.query.all()]
        assert subjects == ["before"]
        assert [n.subject for n in notices.sender("memory").outbox] == ["before"]


def test_receiver_runs_inside_the_callers_transaction(app_factory):
    """An app receiver can write its own rows atomically with the notice."""
    app = app_factory()
    notices, db = app.notices, app.db
    seen: list[int] = []

    def audit(sender: Any, *, event: Any, **_: Any) -> None:
        # uncommitted rows of the same transaction are visible to the receiver
        seen.append(
            int(db.session.execute(sa.select(sa.func.count()).select_from(notices.Notice)).scalar())
        )

    with app.app_context():
        notification.connect(audit, sender=app)
        try:
            notice_event(1, subject="s", content="")
        finally:
            notification.disconnect(audit, sender=app)
        assert len(seen) == 1 and seen[0] in (0, 1)  # before or after ours: same transaction
        assert _counts(notices, db) == (1, 1)


@pytest.mark.parametrize("signal", [notice_created, notice_sent])
def test_failing_observer_neither_blocks_nor_duplicates(app_factory, signal, caplog):
    app = app_factory()
    notices, db = app.notices, app.db
    calls: list[Any] = []

    def broken(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        raise RuntimeError("observer bug")

    with app.app_context():
        signal.connect(broken, sender=app)
        try:
            with caplog.at_level(logging.ERROR, logger="notice"):
                ids = notice_event([1, 2], subject="s", content="c")
        finally:
            signal.disconnect(broken, sender=app)
        assert len(ids) == 2
        assert _counts(notices, db) == (2, 2)
        outbox = notices.sender("memory").outbox
        assert sorted(n.id for n in outbox) == sorted(ids)  # each sent exactly once
        assert all(n.send_status == "Sent" for n in notices.Notice.query.all())
        assert calls  # the observer ran
        assert "observer bug" in caplog.text  # and its failure was logged, not raised
