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
