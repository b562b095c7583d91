"""Archive and seen through the ``Notices`` façade on SQLite and PostgreSQL: archived
notices leave the inbox list, the unread count and the digest's selection, are listed
on request, come back on unarchive and are purged by archive age; seen is not read."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from notice import notice_event
from notice.columns import utcnow

CORE = {"NOTICE_STREAM": False, "NOTICE_DISPATCH": "none"}


def _ids(notices):
    return [n.id for n in notices]


def test_archived_notices_leave_the_inbox_and_its_count_until_unarchived(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices = app.notices
        a, b, c = notice_event([1, 1, 1], subject="s", content="", channels=[])
        assert notices.unread_count(1) == 3
        assert notices.archive(1, [b]) == 1
        assert _ids(notices.list_notices(1)) == [c, a]
        assert notices.unread_count(1) == 2  # an unread archived notice no longer counts
        assert _ids(notices.list_notices(1, archived=True)) == [b]
        assert _ids(notices.list_notices(1, archived=None)) == [c, b, a]
        assert notices.unarchive(1, [b]) == 1
        assert _ids(notices.list_notices(1)) == [c, b, a]
        assert notices.unread_count(1) == 3
        assert notices.list_notices(1, archived=True) == []


def test_archive_all_read_keeps_unread_and_other_users_notices(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices = app.notices
        mine = notice_event([1, 1, 1], subject="s", content="", channels=[])
        theirs = notice_event(2, subject="s", content="", channels=[]).id
        notices.mark_read(1, mine[:2])
        notices.mark_read(2)
        assert notices.archive(1, only_read=True) == 2
        assert _ids(notices.list_notices(1)) == [mine[2]]
        assert _ids(notices.list_notices(2)) == [theirs]
        # another user's id changes nothing: the owner check is the store's WHERE
        assert notices.archive(1, [theirs]) == 0
        assert notices.unarchive(2, mine[:2]) == 0
        assert _ids(notices.list_notices(2)) == [theirs]


def test_seen_is_not_read_and_keeps_the_first_time(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices = app.notices
        a, b = notice_event([1, 1], subject="s", content="", channels=[])
        other = notice_event(2, subject="s", content="", channels=[]).id
        assert notices.mark_seen(1, [a, other]) == 1
        first = notices.get(1, a).seen_at
        assert first is not None and notices.get(1, b).seen_at is None
        assert notices.get(2, other).seen_at is None
        assert notices.unread_count(1) == 2  # seen, still unread
        assert notices.mark_seen(1) == 1  # only b was unseen
        app.db.session.expire_all()
        assert notices.get(1, a).seen_at == first


def test_purge_takes_archived_notices_by_the_time_they_were_archived(app_factory):
    app = app_factory(**CORE)
    with app.app_context():
        notices = app.notices
        old, recent, kept = notice_event([1, 1, 1], subject="s", content="", channels=[])
        notices.archive(1, [old, recent])  # archived while unread
        table = notices.Notice.__table__
        with app.db.engine.begin() as conn:
            conn.execute(
                sa.update(table)
                .where(table.c.id == old)
                .values(archived_at=utcnow() - timedelta(days=100))
            )
    result = app.test_cli_runner().invoke(
        args=["notice", "purge", "--read-older-than", "90d"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "deleted 1 notice\n" in result.output
    with app.app_context():
        left = app.db.session.execute(sa.select(app.notices.Notice.id)).scalars().all()
        assert sorted(left) == sorted([recent, kept])
