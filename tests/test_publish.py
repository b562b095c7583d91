from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from notice import (
    NoRecipientError,
    NoticeType,
    PermanentError,
    ReadStatus,
    Sender,
    SendStatus,
    TransientError,
    notice_event,
)
from notice.filters import from_sender, of_type, to_user


def test_single_notice_is_written_and_sent(app, notices):
    n = notice_event(
        7,
        NoticeType.COMMENT,
        subject="Ana commented",
        content="Nice work!",
        url="/posts/3#c9",
        sender_id=2,
    )
    assert n.id is not None
    assert (n.user_id, n.notice_type, n.sender_id, n.url) == (7, "Comment", 2, "/posts/3#c9")
    assert n.read_status == ReadStatus.UNREAD
    assert n.send_status == SendStatus.SENT
    assert n.create_at.tzinfo is not None and n.update_at.tzinfo is not None
    outbox = notices.sender("memory").outbox
    assert [o.id for o in outbox] == [n.id]
    assert outbox[0].subject == "Ana commented"


def test_fan_out_returns_ids_in_order_and_counts(app, notices):
    ids = notice_event([3, 1, 2], NoticeType.POST, subject="New post", content="")
    assert len(ids) == 3 and ids == sorted(ids)
    rows = notices.Notice.query.order_by(notices.Notice.id).all()
    assert [r.user_id for r in rows] == [3, 1, 2]
    assert len(notices.sender("memory").outbox) == 3
    assert all(r.send_status == "Sent" for r in rows)


def test_rollback_means_no_row_and_no_send(app, notices, db):
    notice_event(1, subject="s", content="c", commit=False)
    assert notices.sender("memory").outbox == []  # nothing before commit
    db.session.rollback()
    assert notices.Notice.query.count() == 0
    assert (
        db.session.execute(
            sa.select(sa.func.count()).select_from(notices.Delivery.__table__)
        ).scalar()
        == 0
    )
    assert notices.sender("memory").outbox == []


def test_commit_false_sends_after_callers_commit(app, notices, db):
    n = notice_event(1, subject="s", content="c", commit=False)
    assert notices.sender("memory").outbox == []
    db.session.commit()
    assert [o.id for o in notices.sender("memory").outbox] == [n.id]


def test_unknown_type_lists_known_ones():
    with pytest.raises(ValueError, match="known types: .*Comment.*System"):
        NoticeType("Nope")


def test_app_defined_types_round_trip(app, notices):
    owner = NoticeType.register("OWNER")
    assert NoticeType.OWNER is owner and owner == "Owner"
    assert NoticeType.register("OWNER") is owner
    n = notice_event(1, "Owner", subject="you created it", content="")
    assert n.notice_type == "Owner" and NoticeType(n.notice_type) is owner


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 256}, "subject"),
        ({"content": 3}, "content"),
        ({"data": {"x": object()}}, "JSON"),
        ({"channels": ["sms"]}, "unknown channel"),
        ({"dedupe_key": ""}, "dedupe_key"),
        ({"expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_bad_arguments_are_refused_clearly(app, notices, kwargs, message):
    args = {"subject": "s", "content": "c", **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        notice_event(1, **args)
    assert notices.Notice.query.count() == 0


def test_content_and_data_are_bounded_in_utf8_bytes(app_factory):
    app = app_factory(NOTICE_MAX_CONTENT=100, NOTICE_MAX_DATA=40)
    with app.app_context():
        notices = app.notices
        # exactly at the limits: accepted
        notice_event(1, subject="s", content="x" * 100, data={"k": "v" * 32})
        # 34 characters, 102 bytes: the limit counts bytes, not characters
        with pytest.raises(ValueError, match=r"limit is 100 bytes \(NOTICE_MAX_CONTENT\)"):
            notice_event(1, subject="s", content="€" * 34)
        with pytest.raises(ValueError, match="NOTICE_MAX_CONTENT"):
            notice_event([1, 2], subject="s", content="x" * 5_000_000)
        with pytest.raises(ValueError, match=r"data is 41 bytes .*\(NOTICE_MAX_DATA\)"):
            notice_event(1, subject="s", content="", data={"k": "v" * 33})
        assert notices.Notice.query.count() == 1


def test_default_content_limit_is_64_kb(app, notices):
    notice_event(1, subject="s", content="x" * 65536)
    with pytest.raises(ValueError, match="the limit is 65536 bytes"):
        notice_event(1, subject="s", content="x" * 65537)
    with pytest.raises(ValueError, match="NOTICE_MAX_DATA"):
        notice_event(1, subject="s", content="", data={"k": "x" * 16384})


def test_no_user_and_nobody_logged_in(app):
    with app.test_request_context():
        with pytest.raises(NoRecipientError, match="user_id"):
            notice_event(subject="s", content="c")


def test_current_user_is_the_default_recipient(app_factory):
    from flask_login import LoginManager, UserMixin, login_user

    app = app_factory()

    class User(UserMixin):
        def __init__(self, id):
            self.id = id

    lm = LoginManager(app)
    lm.user_loader(lambda uid: User(int(uid)))
    with app.test_request_context():
        login_user(User(42))
        n = notice_event(subject="hello", content="")
        assert n.user_id in (42, "42")
        assert int(n.user_id) == 42


class Flaky(Sender):
    name = "flaky"

    def __init__(self, exc):
        self.exc = exc
        self.calls = 0

    def send(self, notice):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    "exc, status, final",
    [
        (TransientError("try later"), "Error", False),
        (RuntimeError("boom"), "Error", False),
        (PermanentError("never"), "Dead", True),
    ],
)
def test_sender_exception_is_recorded_not_raised(app, notices, exc, status, final, caplog):
    from notice.signals import notice_failed

    flaky = notices.register_sender(Flaky(exc))
    seen = []

    def on_failed(sender, **kw):
        seen.append(kw)

    notice_failed.connect(on_failed, sender=app)
    try:
        n = notice_event(1, subject="s", content="c")
    finally:
        notice_failed.disconnect(on_failed, sender=app)
    assert flaky.calls == 1
    assert len(notices.sender("memory").outbox) == 1  # the other sender still ran
    rows = {d.channel: d for d in notices.Delivery.query.filter_by(notice_id=n.id)}
    assert rows["memory"].status == "Sent"
    assert rows["flaky"].status == status
    assert type(exc).__name__ in rows["flaky"].last_error
    assert rows["flaky"].attempts == 1
    assert n.send_status == "Error"
    assert seen and seen[0]["final"] is final and seen[0]["channel"] == "flaky"


def test_filters_route_notices_to_senders(app, notices):
    class Sms(Sender):
        name = "sms"

        def __init__(self):
            self.got = []

        def send(self, notice):
            self.got.append((notice.user_id, notice.notice_type))

    sms = notices.register_sender(
        Sms(), when=(of_type(NoticeType.SYSTEM) | from_sender(9)) & ~to_user(2)
    )
    notice_event(1, NoticeType.SYSTEM, subject="a", content="")
    notice_event(2, NoticeType.SYSTEM, subject="b", content="")
    notice_event(3, NoticeType.LIKE, subject="c", content="", sender_id=9)
    notice_event(4, NoticeType.LIKE, subject="d", content="", sender_id=8)
    assert sms.got == [(1, "System"), (3, "Like")]
    assert len(notices.sender("memory").outbox) == 4


def test_channels_narrow_one_call(app, notices):
    class Other(Sender):
        name = "other"
        sent = 0

        def send(self, notice):
            Other.sent += 1

    notices.register_sender(Other())
    n = notice_event(1, subject="a", content="", channels=["other"])
    assert Other.sent == 1 and notices.sender("memory").outbox == []
    assert [d.channel for d in notices.Delivery.query.filter_by(notice_id=n.id)] == ["other"]


def test_no_sender_needed_means_sent(app, notices):
    n = notice_event(1, subject="a", content="", channels=[])
    assert n.send_status == "Sent"
    assert notices.Delivery.query.count() == 0


def test_expired_notice_is_never_sent(app_factory):
    app = app_factory(NOTICE_DISPATCH="none")
    with app.app_context():
        notices = app.notices
        n = notice_event(1, subject="a", content="", expires_at=timedelta(milliseconds=1))
        import time

        time.sleep(0.01)
        report = notices.deliver_due()
        assert report.expired == 1 and report.sent == 0
        d = notices.Delivery.query.one()
        assert d.status == "Skipped" and "expired" in d.last_error
        assert notices.sender("memory").outbox == []
        assert notices.unread_count(1) == 0
        notices.db.session.refresh(n)
        assert n.send_status == "Sent"


def test_dedupe_returns_existing_and_sends_nothing(app, notices):
    first = notice_event(1, subject="a", content="", dedupe_key="post:3")
    again = notice_event(1, subject="a", content="", dedupe_key="post:3")
    other_user = notice_event(2, subject="a", content="", dedupe_key="post:3")
    assert again.id == first.id and other_user.id != first.id
    assert len(notices.sender("memory").outbox) == 2


def test_reading_api(app, notices):
    ids = [
        notice_event(1, t, subject=f"s{i}", content=f"body {i}").id
        for i, t in enumerate([NoticeType.LIKE, NoticeType.COMMENT, NoticeType.LIKE])
    ]
    notice_event(2, subject="other user", content="")
    assert notices.unread_count(1) == 3
    assert [n.id for n in notices.list_notices(1)] == ids[::-1]
    assert [n.id for n in notices.list_notices(1, types=[NoticeType.LIKE])] == [ids[2], ids[0]]
    assert [n.id for n in notices.list_notices(1, text="BODY 1")] == [ids[1]]
    assert notices.mark_read(1, [ids[0], 999_999]) == 1
    assert notices.unread_count(1) == 2
    assert [n.id for n in notices.list_notices(1, read=True)] == [ids[0]]
    assert notices.mark_read(2, [ids[1]]) == 0  # not theirs
    assert notices.mark_read(1) == 2 and notices.unread_count(1) == 0
    assert notices.mark_unread(1, [ids[2]]) == 1 and notices.unread_count(1) == 1
    page = notices.list_notices(1, limit=2)
    assert [n.id for n in page] == [ids[2], ids[1]]
    assert [n.id for n in notices.list_notices(1, before_id=page[-1].id)] == [ids[0]]


def test_sync_senders_may_use_db_session(app, notices, db):
    """Sync delivery runs in the caller's after-commit hook; a sender that queries
    through ``db.session`` (as an email_loader does) must still work."""

    class Lookup(Sender):
        name = "lookup"
        found: list[int] = []

        def send(self, notice):
            again = db.session.get(notices.Notice, notice.id)
            Lookup.found.append(again.id)

    notices.register_sender(Lookup())
    n = notice_event(1, subject="s", content="c")
    assert Lookup.found == [n.id]
    assert {d.status for d in notices.Delivery.query.filter_by(notice_id=n.id)} == {"Sent"}


def test_user_ids_are_stored_as_the_column_type(app, notices):
    ids = notice_event(["1", 2, "2"], subject="s", content="c")
    rows = notices.Notice.query.filter(notices.Notice.id.in_(ids)).all()
    assert sorted(r.user_id for r in rows) == [1, 2, 2]
    assert notices.unread_count(2) == 2
    single = notice_event("5", subject="s", content="c")
    assert single.user_id == 5


def test_reading_api_takes_ids_in_either_type(app, notices):
    n = notice_event(7, subject="s", content="c")
    assert notices.unread_count("7") == 1
    assert [x.id for x in notices.list_notices("7")] == [n.id]
    assert notices.get("7", n.id).id == n.id
    assert notices.mark_read("7") == 1 and notices.unread_count(7) == 0


def test_racing_dedupe_fan_outs_in_opposite_orders_do_not_deadlock(app_factory):
    """Two callers publish one key to the same users in opposite orders at once:
    every user gets exactly one notice and neither caller fails."""
    import threading

    app = app_factory(NOTICE_DISPATCH="none")
    users = list(range(1, 3001))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def publish(order):
        with app.app_context():
            barrier.wait(timeout=10)
            try:
                notice_event(order, subject="s", content="c", dedupe_key="k")
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=publish, args=(o,)) for o in (users, users[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with app.app_context():
        assert app.notices.Notice.query.count() == 3000


@pytest.mark.parametrize("bad", [True, 2.5, b"7", "seven", [1, True]])
def test_publishing_refuses_values_that_are_not_user_ids(app, notices, bad):
    from notice.errors import InvalidUserId

    with pytest.raises(InvalidUserId):
        notice_event(bad, subject="s", content="")
    assert notices.Notice.query.count() == 0


def test_reading_api_converts_ids_like_publishing(app, notices):
    notice_event(7, subject="s", content="")
    assert notices.unread_count("7") == notices.unread_count(7) == 1
    from notice.errors import InvalidUserId

    with pytest.raises(InvalidUserId):
        notices.unread_count(True)
