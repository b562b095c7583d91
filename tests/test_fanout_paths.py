"""The fast fan-out paths: column-wise inserts (constant columns bound once) and the
detached notices senders get; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from notice import NoticeType, Sender, notice_event
from notice.filters import to_user


class DeviceSender(Sender):
    """Two devices for even users, none for odd ones: deliveries vary in target."""

    name = "devices"

    def __init__(self) -> None:
        self.sent: list[tuple[object, str]] = []

    def targets(self, user_ids):
        return {u: [f"dev-{u}-a", f"dev-{u}-b"] for u in user_ids if u % 2 == 0}

    def send_to(self, notice, target):
        self.sent.append((notice, target))

    def send(self, notice):
        raise AssertionError("send_to is used")


def _deliveries(app):
    d = app.notices.Delivery.__table__
    with app.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(d.c.notice_id, d.c.channel, d.c.target, d.c.status).order_by(d.c.id)
        ).all()
    return [tuple(r) for r in rows]


class PickySender(Sender):
    """One delivery per user, only for the users its filter lets through."""

    name = "picky"

    def send(self, notice):
        pass


def test_mixed_channels_targets_and_statuses_are_stored_row_by_row(app_factory):
    app = app_factory(NOTICE_SENDERS=[], NOTICE_DISPATCH="none")
    with app.app_context():
        app.notices.register_sender(DeviceSender())
        app.notices.register_sender(PickySender(), when=to_user(0, 1, 2, 4))
        users = [0, 1, 2, 3, 4, 5]
        ids = notice_event(users, NoticeType.POST, subject="s", content="c")
        by_user = dict(zip(users, ids, strict=True))
        notice = app.notices.Notice
        status = dict(app.db.session.execute(sa.select(notice.user_id, notice.send_status)).all())
        # 3 and 5: odd (no device) and filtered out of "picky", so nothing to send
        assert status == {0: "Wait", 1: "Wait", 2: "Wait", 3: "Sent", 4: "Wait", 5: "Sent"}
        expected = [(by_user[u], "picky", "", "Wait") for u in (0, 1, 2, 4)]
        for u in (0, 2, 4):
            expected += [
                (by_user[u], "devices", f"dev-{u}-a", "Wait"),
                (by_user[u], "devices", f"dev-{u}-b", "Wait"),
            ]
        assert sorted(_deliveries(app)) == sorted(expected)


def test_one_channel_fan_out_binds_the_constant_columns_once(app_factory):
    # every notice Wait and every delivery on one channel and target: only user_id and
    # notice_id vary; the stored rows must still be complete and in order
    app = app_factory(NOTICE_DISPATCH="none")
    with app.app_context():
        users = [9, 3, 7, 3]
        ids = notice_event(users, subject="s", content="c", sender_id=4)
        notice = app.notices.Notice
        rows = app.db.session.execute(
            sa.select(notice.id, notice.user_id, notice.sender_id, notice.send_status).order_by(
                notice.id
            )
        ).all()
        assert [tuple(r) for r in rows] == [
            (i, u, 4, "Wait") for i, u in zip(ids, users, strict=True)
        ]
        assert sorted(_deliveries(app)) == sorted((i, "memory", "", "Wait") for i in ids)


def test_senders_get_a_detached_copy_with_the_notice_contract(app_factory):
    app = app_factory()
    with app.app_context():
        ids = notice_event(
            [7, 8],
            NoticeType.COMMENT,
            subject="Ana commented",
            content="Nice",
            url="/p/1",
            data={"post": 1, "tags": ["a"]},
            expires_at=timedelta(hours=1),
        )
        outbox = app.notices.sender("memory").outbox
        assert [n.id for n in outbox] == ids
        sent = outbox[0]
        stored = app.db.session.get(app.notices.Notice, ids[0])
        # the copy was taken before the roll-up: the same notice, still Wait then
        assert sent.to_dict() == {
            **stored.to_dict(),
            "send_status": "Wait",
            "update_at": sent.to_dict()["update_at"],
        }
        assert stored.send_status == "Sent"
        assert sent.data == {"post": 1, "tags": ["a"]}
        assert sent.is_expired() is False
        assert sent.is_expired(sent.expires_at + timedelta(seconds=1)) is True
        assert sent.is_read is False
        assert repr(sent) == repr(stored)
        assert sa.inspect(sent, raiseerr=False) is None  # not an ORM instance
