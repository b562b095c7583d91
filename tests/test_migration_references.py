"""Migration 0005 (references, category, actions) on SQLite and PostgreSQL: notices
written before it keep their rows and become ``info`` with no references; down and up
again is lossless for the older columns."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from notice import notice_event
from notice.migrations import runner
from tests.test_migrations import _columns, _differences, app  # noqa: F401

NEW = {
    "actor_type",
    "actor_id",
    "target_type",
    "target_id",
    "action_object_type",
    "action_object_id",
    "category",
    "actions",
}


def _indexes(app: Flask) -> set[str]:  # noqa: F811
    with app.app_context():
        inspector = sa.inspect(app.db.engine)  # type: ignore[attr-defined]
        return {ix["name"] for ix in inspector.get_indexes("notice")}


def test_0005_upgrades_old_notices_to_info_and_downgrades_cleanly(app: Flask) -> None:  # noqa: F811
    runner.upgrade(app, "0003")
    assert not NEW & _columns(app, "notice")
    with app.app_context(), app.db.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("INSERT INTO app_user (id) VALUES (7)")
        conn.execute(
            sa.text(
                "INSERT INTO notice (user_id, subject, content, notice_type, read_status,"
                " send_status, create_at, update_at) VALUES (7, 'old', '', 'System',"
                " 'Unread', 'Sent', :now, :now)"
            ),
            {"now": "2026-11-30 10:00:00+00:00"},
        )
    runner.upgrade(app, "0005")
    assert NEW <= _columns(app, "notice")
    assert {"ix_notice_target", "ix_notice_actor", "ix_notice_action_object"} <= _indexes(app)
    # the models are the newest revision's: compare (and publish) there
    runner.upgrade(app)
    assert _differences(app) == []
    with app.app_context():
        notices = app.notices  # type: ignore[attr-defined]
        (old,) = notices.list_notices(7)
        data = old.to_dict()
        assert (data["category"], data["actor"], data["target"], data["actions"]) == (
            "info",
            None,
            None,
            [],
        )
        notice_event(7, subject="new", content="", target=("post", 1), category="error")
        assert [n.subject for n in notices.list_notices(7, target=("post", "1"))] == ["new"]
    runner.downgrade(app, "0003")
    assert not NEW & _columns(app, "notice")
    assert "ix_notice_target" not in _indexes(app)
    with app.app_context():
        subjects = app.db.session.execute(sa.text("SELECT subject FROM notice")).scalars()  # type: ignore[attr-defined]
        assert sorted(subjects) == ["new", "old"]
    runner.upgrade(app)
    assert runner.current(app) == (runner.head(),)
