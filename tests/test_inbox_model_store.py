"""The inbox model's store writes (seen, archived) on SQLite and PostgreSQL: owner
scoping, first-seen kept, "archive all read", and racing archivers losing no update."""

from __future__ import annotations

import threading

from notice import notice_event
from notice.store.inbox import set_archived, set_seen

CORE = {"NOTICE_STREAM": False, "NOTICE_DISPATCH": "none"}


def test_seen_touches_only_the_users_rows_and_keeps_the_first_time(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices, session = app.notices, app.db.session
        mine = notice_event([1] * 3, subject="s", content="", channels=[])
        theirs = notice_event(2, subject="s", content="", channels=[]).id
        assert set_seen(session, notices.Notice, 1, mine[:2] + [theirs]) == 2
        session.commit()
        by_id = {n.id: n for n in notices.Notice.query}
        first = by_id[mine[0]].seen_at
        assert first is not None and by_id[mine[2]].seen_at is None
        assert by_id[theirs].seen_at is None
        # seen again: nothing changes, the first time stays
        assert set_seen(session, notices.Notice, 1, None) == 1
        session.commit()
        session.expire_all()
        assert session.get(notices.Notice, mine[0]).seen_at == first
        assert session.get(notices.Notice, mine[2]).seen_at is not None


def test_archive_unarchive_and_archive_all_read(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices, session = app.notices, app.db.session
        Notice = notices.Notice
        mine = notice_event([1] * 4, subject="s", content="", channels=[])
        theirs = notice_event(2, subject="s", content="", channels=[]).id
        notices.mark_read(2)
        notices.mark_read(1, mine[:2])
        # "archive all read": only the user's read ones
        assert set_archived(session, notices.Notice, 1, None, archived=True, only_read=True) == 2
        session.commit()
        by_id = {n.id: n for n in notices.Notice.query}
        assert [by_id[i].archived_at is not None for i in mine] == [True, True, False, False]
        assert by_id[theirs].archived_at is None
        # another user's id is ignored; archiving an archived one changes nothing
        assert set_archived(session, Notice, 1, [mine[0], mine[2], theirs], archived=True) == 1
        assert set_archived(session, notices.Notice, 1, [mine[0]], archived=False) == 1
        session.commit()
        session.expire_all()
        assert session.get(notices.Notice, mine[0]).archived_at is None
        assert session.get(notices.Notice, mine[2]).archived_at is not None
        assert session.get(notices.Notice, theirs).archived_at is None


def test_racing_archive_all_read_loses_no_update(app_factory):
    """Two tabs archive all read while a third marks more read: every read notice ends
    archived exactly once (the counts add up), none unread is archived."""
    app = app_factory(**CORE)
    with app.app_context():
        ids = notice_event([1] * 40, subject="s", content="", channels=[])
        app.notices.mark_read(1, ids[:20])
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def archive() -> None:
        try:
            with app.app_context():
                barrier.wait()
                session = app.db.session
                Notice = app.notices.Notice
                counts.append(set_archived(session, Notice, 1, None, archived=True, only_read=True))
                session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def read_more() -> None:
        try:
            with app.app_context():
                barrier.wait()
                app.notices.mark_read(1, ids[20:30])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (archive, archive, read_more)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with app.app_context():
        rows = app.notices.Notice.query.all()
        archived = [n for n in rows if n.archived_at is not None]
        assert sum(counts) == len(archived)
        assert all(n.is_read for n in archived)
        assert {n.id for n in archived} >= set(ids[:20])
