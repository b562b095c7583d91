"""notice/models.py: the tables, the user foreign key, and timezone-aware timestamps.
Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Mapped, mapped_column

from notice import notice_event
from notice.columns import UTCDateTime

CORE = {"NOTICE_STREAM": False}


def _with_users(db) -> None:
    class User(db.Model):
        __tablename__ = "user"
        id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(50))

    db.User = User


def test_deleting_a_user_deletes_their_notices_and_deliveries(app_factory):
    app = app_factory(notices_options={"user_table": "user.id"}, setup=_with_users, **CORE)
    db, notices = app.db, app.notices
    with app.app_context():
        db.session.add_all([db.User(id=1, name="ana"), db.User(id=2, name="bo")])
        db.session.commit()
        notice_event([1, 1, 2], subject="s", content="")
        assert notices.Delivery.query.count() == 3
        # a bulk DELETE, so only the database's ON DELETE CASCADE can remove the rows
        db.session.execute(sa.delete(db.User).where(db.User.id == 1))
        db.session.commit()
        assert [n.user_id for n in notices.Notice.query] == [2]
        assert notices.Delivery.query.count() == 1
        fks = sa.inspect(db.engine).get_foreign_keys("notice")
        assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in fks] == [
            ("user", "CASCADE")
        ]


def test_notice_for_an_unknown_user_is_refused(app_factory):
    app = app_factory(notices_options={"user_table": "user.id"}, setup=_with_users, **CORE)
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            notice_event(99, subject="s", content="")
        app.db.session.rollback()
        assert app.notices.Notice.query.count() == 0
        assert app.notices.sender("memory").outbox == []


def test_timestamps_come_back_aware_in_utc(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    plus_two = timezone(timedelta(hours=2))
    expires = datetime(2100, 1, 2, 3, 4, 5, 600000, tzinfo=plus_two)
    with app.app_context():
        n = notice_event(1, subject="s", content="", expires_at=expires)
        app.db.session.expire_all()
        row = app.notices.Notice.query.one()
        assert row.id == n.id
        assert row.expires_at == expires and row.expires_at.utcoffset() == timedelta(0)
        assert row.create_at.tzinfo is not None and row.update_at.tzinfo is not None
        d = app.notices.Delivery.query.one()
        assert d.next_attempt_at.tzinfo is not None


def test_naive_datetimes_are_refused(app_factory):
    app = app_factory(NOTICE_DISPATCH="none", **CORE)
    with app.app_context():
        n = notice_event(1, subject="s", content="")
        n.expires_at = datetime(2100, 1, 1)
        with pytest.raises(StatementError, match="naive datetime"):
            app.db.session.commit()
        app.db.session.rollback()
        assert app.notices.Notice.query.one().expires_at is None


@pytest.mark.parametrize(
    "dialect", [sa.dialects.sqlite.dialect(), sa.dialects.postgresql.dialect()]
)
def test_utc_datetime_binds_utc(dialect):
    t = UTCDateTime()
    local = datetime(2030, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    bound = t.process_bind_param(local, dialect)
    if dialect.name == "sqlite":
        assert bound == datetime(2030, 5, 1, 17, 0) and bound.tzinfo is None
    else:
        assert bound == local and bound.utcoffset() == timedelta(0)
    assert t.process_bind_param(None, dialect) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        t.process_bind_param(datetime(2030, 5, 1), dialect)
    back = t.process_result_value(datetime(2030, 5, 1, 17, 0), dialect)
    assert back == local and back.tzinfo is timezone.utc


def test_to_dict_is_json_ready(app_factory):
    import json

    app = app_factory(**CORE)
    with app.app_context():
        n = notice_event(
            3, "Like", subject="s", content="c", url="/x", sender_id=4, data={"k": [1]}
        )
        d = n.to_dict()
        assert json.loads(json.dumps(d)) == d
        assert (d["user_id"], d["notice_type"], d["data"], d["read_status"]) == (
            3,
            "Like",
            {"k": [1]},
            "Unread",
        )
        assert d["create_at"].endswith("+00:00") and d["read_at"] is None


def test_digest_partial_index_exists_and_search_is_right(app_factory):
    """``ix_notice_undigested`` is created on both databases, and the digest's
    candidate search (which it serves) finds exactly the users with unread mail."""
    from notice import notice_event
    from notice.columns import utcnow
    from notice.preferences.digest import candidates

    app = app_factory(NOTICE_DIGEST_DEFAULT="daily")
    with app.app_context():
        state = app.notices.state(app)
        indexes = {i["name"] for i in sa.inspect(state.engine).get_indexes("notice")}
        assert "ix_notice_undigested" in indexes
        notice_event([1, 2, 3], subject="s", content="c")
        app.notices.mark_read(2)
        app.db.session.execute(
            sa.update(app.notices.Notice.__table__)
            .where(app.notices.Notice.user_id == 3)
            .values(emailed_at=utcnow())
        )
        app.db.session.commit()
        assert candidates(state, "daily", utcnow()) == [1]


def test_notice_view_is_read_only_and_matches_the_row(app, notices):
    import dataclasses

    from notice import notice_event
    from notice.models import NoticeView

    stored = notice_event(7, subject="s", content="c", data={"a": 1})
    view = NoticeView.of(stored)
    assert view.to_dict() == stored.to_dict()
    assert repr(view) == repr(stored)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.subject = "changed"  # type: ignore[misc]
    assert not hasattr(view, "__dict__")  # slots: cheap for a large fan-out


#: tables whose ids are referenced (a delivery's target) or shown to clients
NEVER_REUSED = (
    "notice",
    "notice_delivery",
    "notice_push_subscription",
    "notice_topic",
    "notice_topic_subscription",
    "notice_topic_message",
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_tables_never_reuse_ids(app_factory):
    """Without AUTOINCREMENT SQLite gives a deleted row's id (the largest) to the next
    row: a queued push reached another user's device, a stream replay skipped a notice."""
    app = app_factory(**CORE)
    with app.app_context():
        ddl = dict(
            app.db.session.execute(
                sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            ).all()
        )
    for table in NEVER_REUSED:
        assert "id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl[table], table
    # the table arguments next to it are still there
    assert "CONSTRAINT uq_delivery_channel UNIQUE" in ddl["notice_delivery"]
    # (uq_notice_user_dedupe is a partial index since revision 0008, not a constraint)
    assert "uq_notice_user_dedupe" not in ddl["notice"]
    assert "CONSTRAINT ck_topic_subscriber CHECK" in ddl["notice_topic_subscription"]
