"""Issue 16, item 8 (part): an expired notice never deduplicates a new one."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.columns import utcnow


def _expire(notices, notice_id):
    table = notices.models.Notice.__table__
    notices.db.session.execute(
        sa.update(table)
        .where(table.c.id == notice_id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    notices.db.session.commit()


def test_expired_notice_frees_its_dedupe_key(app, notices):
    first = notice_event(1, subject="a", content="", dedupe_key="k", expires_at=timedelta(hours=1))
    live = notice_event(1, subject="a", content="", dedupe_key="k")
    assert live.id == first.id  # still live: deduplicated
    _expire(notices, first.id)
    again = notice_event(1, subject="b", content="", dedupe_key="k")
    assert again.id != first.id and again.subject == "b"
    assert len(notices.sender("memory").outbox) == 2
    # the new one now holds the key; the expired one kept its row but not the key
    assert notice_event(1, subject="c", content="", dedupe_key="k").id == again.id
    table = notices.models.Notice.__table__
    keys = dict(notices.db.session.execute(sa.select(table.c.id, table.c.dedupe_key)).all())
    assert keys == {first.id: None, again.id: "k"}


def test_fan_out_frees_only_expired_keys(app, notices):
    a = notice_event(1, subject="a", content="", dedupe_key="k", expires_at=timedelta(hours=1))
    b = notice_event(2, subject="a", content="", dedupe_key="k", expires_at=timedelta(hours=1))
    _expire(notices, a.id)
    new_ids = notice_event([1, 2], subject="b", content="", dedupe_key="k")
    assert len(new_ids) == 1 and new_ids[0] not in (a.id, b.id)
    table = notices.models.Notice.__table__
    owner = notices.db.session.execute(
        sa.select(table.c.user_id).where(table.c.id == new_ids[0])
    ).scalar_one()
    assert str(owner) == "1"


def _age(notices, notice_id, by):
    table = notices.models.Notice.__table__
    notices.db.session.execute(
        sa.update(table).where(table.c.id == notice_id).values(create_at=utcnow() - by)
    )
    notices.db.session.commit()


def test_dedupe_for_lets_the_key_notify_again_after_the_window(app, notices):
    window = timedelta(minutes=10)
    first = notice_event(1, subject="a", content="", dedupe_key="k", dedupe_for=window)
    assert notice_event(1, subject="a", content="", dedupe_key="k", dedupe_for=window).id == (
        first.id
    )
    _age(notices, first.id, timedelta(minutes=11))
    again = notice_event(1, subject="b", content="", dedupe_key="k", dedupe_for=window)
    assert again.id != first.id
    # without a window the key holds for ever, however old the notice
    _age(notices, again.id, timedelta(days=400))
    assert notice_event(1, subject="c", content="", dedupe_key="k").id == again.id
    assert len(notices.sender("memory").outbox) == 2


def test_dedupe_for_is_validated(app, notices):
    with pytest.raises(ValueError, match="dedupe_for must be a positive timedelta"):
        notice_event(1, subject="a", content="", dedupe_key="k", dedupe_for=timedelta(0))
    with pytest.raises(ValueError, match="dedupe_for needs a dedupe_key"):
        notice_event(1, subject="a", content="", dedupe_for=timedelta(minutes=1))
