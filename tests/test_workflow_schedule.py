"""Issue 16, items 1, 2, 5 and 7: delayed deliveries and notices, escalation
(``unless_read``), cancelling, and quiet hours; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, request

from notice import NoticeType, notice_event
from notice.columns import utcnow
from notice.errors import InvalidQuietHours
from notice.schedule.quiet import QuietWindow, parse_clock
from notice.store.schedule import CANCELLED
from notice.web.auth import SESSION_KEY

UTC = timezone.utc
TOKEN = "csrf-test-token"


def _deliveries(app: Flask) -> list[Any]:
    table = app.notices.models.Delivery.__table__  # type: ignore[attr-defined]
    with app.app_context():
        session = app.db.session  # type: ignore[attr-defined]
        rows = session.execute(sa.select(table).order_by(table.c.id)).all()
        session.remove()
    return rows


def _sweep(app: Flask, now: datetime | None = None) -> Any:
    with app.app_context():
        return app.notices.sweep(now=now)  # type: ignore[attr-defined]


def _outbox(app: Flask) -> list[Any]:
    with app.app_context():
        return app.notices.sender("memory").outbox  # type: ignore[attr-defined,no-any-return]


# --- delay -------------------------------------------------------------------------


def test_deliver_at_waits_for_the_sweeper_while_the_notice_shows_at_once(app_factory):
    app = app_factory()
    with app.app_context():
        notice = notice_event(1, subject="later", content="", deliver_at=timedelta(minutes=15))
        # the inbox item is there at once; the delivery waits unleased
        assert app.notices.unread_count(1) == 1
        assert [n.id for n in app.notices.list_notices(1)] == [notice.id]
    (row,) = _deliveries(app)
    assert row.status == "Wait" and row.claim_token is None and row.attempts == 0
    assert row.next_attempt_at > utcnow() + timedelta(minutes=14)
    assert _outbox(app) == []
    assert _sweep(app, now=utcnow() + timedelta(minutes=14)).claimed == 0
    assert _outbox(app) == []
    report = _sweep(app, now=utcnow() + timedelta(minutes=16))
    assert report.sent == 1 and [n.id for n in _outbox(app)] == [notice.id]
    assert _deliveries(app)[0].status == "Sent"


def test_delay_per_channel_leaves_the_others_immediate(app_factory):
    app = app_factory(NOTICE_SENDERS=["memory", "log"])
    at = datetime.now(UTC) + timedelta(hours=2)
    with app.app_context():
        notice_event(1, subject="s", content="", delay={"memory": at})
    rows = {r.channel: r for r in _deliveries(app)}
    assert rows["log"].status == "Sent"
    assert rows["memory"].status == "Wait" and rows["memory"].next_attempt_at == at
    assert _outbox(app) == []
    with app.app_context():
        # the immediate send finished alone: the notice still waits for its memory
        # delivery (the all-Sent finish must not take the notice for complete)
        (notice,) = app.notices.db.session.query(app.notices.Notice).all()
        assert notice.send_status == "Wait"


@pytest.mark.parametrize("fan_out", [False, True])
def test_a_notice_with_a_later_delivery_waits_after_its_first_send(app_factory, fan_out):
    app = app_factory(NOTICE_SENDERS=["memory", "log"])
    with app.app_context():
        users = [1, 2] if fan_out else 1
        notice_event(users, subject="s", content="", delay={"memory": timedelta(hours=1)})
        statuses = {n.send_status for n in app.notices.db.session.query(app.notices.Notice)}
    assert statuses == {"Wait"}


def test_a_fan_out_schedules_every_recipient(app_factory):
    app = app_factory(NOTICE_DISPATCH="thread")
    with app.app_context():
        ids = notice_event(
            list(range(1, 31)), subject="s", content="", deliver_at=timedelta(hours=1)
        )
    assert len(ids) == 30
    rows = _deliveries(app)
    assert len(rows) == 30 and {r.status for r in rows} == {"Wait"}
    assert _sweep(app, now=utcnow() + timedelta(hours=2)).sent == 30
    assert len(_outbox(app)) == 30


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
def test_a_short_delay_is_sent_without_a_sweeper(app_factory, dispatch):
    app = app_factory(NOTICE_DISPATCH=dispatch, NOTICE_SCHEDULE_TIMER=10)
    with app.app_context():
        notice = notice_event(1, subject="soon", content="", deliver_at=timedelta(seconds=1))
    assert _outbox(app) == []  # not at once
    deadline = time.monotonic() + 20
    while _deliveries(app)[0].status != "Sent" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _deliveries(app)[0].status == "Sent"
    assert [n.id for n in _outbox(app)] == [notice.id]


def test_no_timer_past_the_horizon_or_when_turned_off(app_factory):
    app = app_factory(NOTICE_SCHEDULE_TIMER=0)
    with app.app_context():
        notice_event(1, subject="soon", content="", deliver_at=timedelta(seconds=0.2))
    time.sleep(0.6)
    assert _outbox(app) == [] and _deliveries(app)[0].status == "Wait"
    assert _sweep(app).sent == 1  # the row is due: the sweeper sends it


def test_celery_and_none_leave_scheduled_rows_to_the_sweeper(app_factory):
    app = app_factory(NOTICE_DISPATCH="none")
    with app.app_context():
        notice_event(1, subject="s", content="", deliver_at=timedelta(minutes=5))
        notice_event(1, subject="t", content="")
    assert _sweep(app).sent == 1  # only the immediate one is due
    assert _sweep(app, now=utcnow() + timedelta(minutes=6)).sent == 1


def test_timing_arguments_are_checked(app):
    naive = datetime(2030, 1, 1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"deliver_at": naive}, "deliver_at must be a timezone-aware"),
        ({"deliver_at": timedelta(seconds=-1)}, "deliver_at must not be a negative"),
        ({"delay": {"fax": timedelta(1)}}, "delay: unknown channel"),
        ({"unless_read": True}, "unless_read needs a delay"),
        (
            {"unless_read": ["memory"], "delay": {}},
            r"unless_read: channel\(s\) memory have no delay",
        ),
        ({"visible_at": naive}, "visible_at must be a timezone-aware"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            notice_event(1, subject="s", content="", **kwargs)
    with pytest.raises(TypeError):
        notice_event(1, subject="s", content="", delay=[("memory", timedelta(1))])


def test_per_type_defaults_schedule_calls_that_say_nothing(app_factory):
    app = app_factory(
        NOTICE_SENDERS=["memory", "log"],
        NOTICE_DELAY_DEFAULTS={"Comment": {"memory": 600}, "*": {"fax": 5}},
        NOTICE_UNLESS_READ_DEFAULTS={"Comment": ["memory"]},
    )
    with app.app_context():
        comment = notice_event(1, NoticeType.COMMENT, subject="c", content="").id
        plain = notice_event(1, NoticeType.COMMENT, subject="c", content="", unless_read=False).id
        now = notice_event(1, NoticeType.COMMENT, subject="c", content="", delay={}).id
        like = notice_event(1, NoticeType.LIKE, subject="l", content="").id
    rows = {(r.notice_id, r.channel): r for r in _deliveries(app)}
    held = rows[(comment, "memory")]
    assert held.status == "Wait" and held.unless_read
    assert held.next_attempt_at > utcnow() + timedelta(minutes=9)
    assert rows[(comment, "log")].status == "Sent"
    assert rows[(plain, "memory")].status == "Wait" and not rows[(plain, "memory")].unless_read
    assert rows[(now, "memory")].status == "Sent"  # an explicit (empty) delay wins
    assert rows[(like, "memory")].status == "Sent"


@pytest.mark.parametrize(
    "config",
    [
        {"NOTICE_DELAY_DEFAULTS": {"Comment": {"email": -1}}},
        {"NOTICE_DELAY_DEFAULTS": {"Nope": {"email": 1}}},
        {"NOTICE_UNLESS_READ_DEFAULTS": {"Comment": "email"}},
        {"NOTICE_QUIET_HOURS_CHANNELS": "email"},
        {"NOTICE_URGENT_TYPES": ["Nope"]},
        {"NOTICE_SCHEDULE_TIMER": -1},
    ],
)
def test_schedule_settings_are_checked(app_factory, config):
    from notice.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match=next(iter(config))):
        app_factory(**config)


# --- visible_at --------------------------------------------------------------------


def test_visible_at_hides_the_notice_until_then_and_the_sweeper_announces_it(app, notices):
    published: list[list[int]] = []
    state = notices.state()
    submit = state.publisher.submit
    state.publisher.submit = lambda engine, ids: (published.append(list(ids)), submit(engine, ids))
    shown = notice_event(1, subject="now", content="")
    hidden = notice_event(1, subject="later", content="", visible_at=timedelta(hours=1))
    assert published == [[shown.id]]  # no live event for the hidden one
    assert [n.id for n in notices.list_notices(1)] == [shown.id]
    assert [n.id for n in notices.list_notices(1, include_expired=True)] == [shown.id]
    assert notices.unread_count(1) == 1
    # the delivery is not held back: visible_at is about the inbox only
    assert len(notices.sender("memory").outbox) == 2
    # an early sweep announces nothing
    assert notices.sweep().claimed == 0 and published == [[shown.id]]
    table = notices.Notice.__table__
    notices.db.session.execute(
        sa.update(table).where(table.c.id == hidden.id).values(visible_at=utcnow())
    )
    notices.db.session.commit()
    # its time came: listed and counted whether or not a sweeper ran yet
    assert {n.id for n in notices.list_notices(1)} == {shown.id, hidden.id}
    assert notices.unread_count(1) == 2
    notices.sweep()
    assert published == [[shown.id], [hidden.id]]
    notices.sweep()  # announced once
    assert published == [[shown.id], [hidden.id]]
    stored = sa.select(table.c.visible_at).where(table.c.id == hidden.id)
    assert notices.db.session.execute(stored).scalar_one() is None


def test_a_near_visible_at_is_announced_without_a_sweeper(app, notices):
    published: list[list[int]] = []
    state = notices.state()
    state.publisher.submit = lambda engine, ids: published.append(list(ids))
    notice = notice_event(1, subject="soon", content="", visible_at=timedelta(seconds=0.5)).id
    assert published == [] and notices.unread_count(1) == 0
    deadline = time.monotonic() + 20
    while not published and time.monotonic() < deadline:
        time.sleep(0.05)
    assert published == [[notice]]
    assert notices.unread_count(1) == 1


# --- escalation --------------------------------------------------------------------


def test_unless_read_skips_a_notice_read_before_the_delay(app_factory):
    app = app_factory(NOTICE_SENDERS=["memory", "log"])
    with app.app_context():
        read = notice_event(
            1,
            subject="read",
            content="",
            delay={"memory": timedelta(minutes=15)},
            unless_read=True,
        ).id
        unread = notice_event(
            2,
            subject="unread",
            content="",
            delay={"memory": timedelta(minutes=15)},
            unless_read=["memory"],
        ).id
        assert app.notices.mark_read(1, [read]) == 1
    report = _sweep(app, now=utcnow() + timedelta(minutes=16))
    assert report.sent == 1 and report.skipped == 1
    assert [n.id for n in _outbox(app)] == [unread]
    rows = {(r.notice_id, r.channel): r for r in _deliveries(app)}
    assert rows[(read, "memory")].status == "Skipped"
    assert rows[(read, "memory")].last_error == "read before send"
    assert rows[(read, "memory")].unless_read and not rows[(read, "log")].unless_read
    assert rows[(read, "log")].status == "Sent"  # the undelayed channel went at once


def test_without_unless_read_a_read_notice_is_still_sent(app_factory):
    app = app_factory()
    with app.app_context():
        notice = notice_event(1, subject="s", content="", deliver_at=timedelta(minutes=1))
        app.notices.mark_read(1, [notice.id])
    assert _sweep(app, now=utcnow() + timedelta(minutes=2)).sent == 1


# --- cancel ------------------------------------------------------------------------


def test_cancel_by_dedupe_key_ends_pending_deliveries(app_factory):
    app = app_factory()
    with app.app_context():
        like = notice_event(
            1, subject="liked", content="", dedupe_key="like:7", deliver_at=timedelta(minutes=5)
        ).id
        other = notice_event(
            2, subject="liked", content="", dedupe_key="like:7", deliver_at=timedelta(minutes=5)
        ).id
        result = app.notices.cancel(dedupe_key="like:7", user_id=1)
        assert (result.notice_ids, result.cancelled, result.in_flight, result.removed) == (
            [like],
            1,
            0,
            0,
        )
        assert app.notices.unread_count(1) == 1  # the inbox item stays
        assert app.notices.cancel(dedupe_key="like:7", user_id=1).cancelled == 0  # once
    assert _sweep(app, now=utcnow() + timedelta(minutes=6)).sent == 1
    assert [n.id for n in _outbox(app)] == [other]
    rows = {r.notice_id: r for r in _deliveries(app)}
    assert rows[like].status == "Skipped" and rows[like].last_error == CANCELLED
    with app.app_context():
        assert app.notices.db.session.get(app.notices.Notice, like).send_status == "Sent"


def test_cancel_with_remove_deletes_the_inbox_item(app_factory):
    app = app_factory()
    with app.app_context():
        a = notice_event(1, subject="a", content="", deliver_at=timedelta(minutes=5)).id
        b = notice_event(1, subject="b", content="", deliver_at=timedelta(minutes=5)).id
        result = app.notices.cancel(notice_id=a, remove=True)
        assert (result.cancelled, result.removed) == (1, 1)
        assert [n.id for n in app.notices.list_notices(1)] == [b]
        # every user's notices under a key
        notice_event([1, 2], subject="k", content="", dedupe_key="k", deliver_at=timedelta(1))
        assert app.notices.cancel(dedupe_key="k").cancelled == 2
        with pytest.raises(ValueError, match="needs notice_id"):
            app.notices.cancel(user_id=1)
    assert [r.notice_id for r in _deliveries(app) if r.status == "Wait"] == [b]


def test_cancel_by_group_key_ends_the_open_groups_pending_send(app_factory):
    """An "unlike" inside the window: the group's send, due when the window ends, is
    cancelled; a group under another key is not."""
    app = app_factory()
    window = timedelta(minutes=10)
    with app.app_context():
        liked = notice_event(
            1, subject="Ana liked", content="", group_key="like:1", group_window=window
        ).id
        notice_event(1, subject="Ben liked", content="", group_key="like:1", group_window=window)
        other = notice_event(
            1, subject="Cy liked", content="", group_key="like:2", group_window=window
        ).id
        result = app.notices.cancel(group_key="like:1", user_id=1)
        assert (result.notice_ids, result.cancelled) == ([liked], 1)
    assert _sweep(app, now=utcnow() + timedelta(minutes=11)).sent == 1
    assert [n.id for n in _outbox(app)] == [other]
    rows = {r.notice_id: r for r in _deliveries(app)}
    assert rows[liked].status == "Skipped" and rows[liked].last_error == CANCELLED


def test_cancel_leaves_a_delivery_in_flight_to_its_worker(app_factory):
    app = app_factory(NOTICE_DISPATCH="none")
    with app.app_context():
        notice = notice_event(1, subject="s", content="").id
        table = app.notices.Delivery.__table__
        # a worker holds it (its send in progress)
        app.notices.db.session.execute(
            sa.update(table).values(claim_token="x" * 32, claimed_until=utcnow() + timedelta(1))
        )
        app.notices.db.session.commit()
        result = app.notices.cancel(notice_id=notice)
        assert (result.cancelled, result.in_flight) == (0, 1)
    assert _deliveries(app)[0].status == "Wait"


def test_cancel_racing_the_sweeper_sends_or_cancels_never_both(app_factory):
    """Each delivery ends Sent (and is in the outbox) or Skipped "cancelled" (and is
    not): the claim and the cancel exclude each other on the row."""
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_BATCH_SIZE=3)
    with app.app_context():
        ids = [notice_event(1, subject=f"n{i}", content="").id for i in range(40)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def sweeper() -> None:
        try:
            start.wait()
            _sweep(app)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def canceller() -> None:
        try:
            start.wait()
            with app.app_context():
                for notice_id in reversed(ids):
                    app.notices.cancel(notice_id=notice_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweeper), threading.Thread(target=canceller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    _sweep(app)  # anything a claim gave back
    rows = _deliveries(app)
    sent_out = {n.id for n in _outbox(app)}
    assert len(_outbox(app)) == len(sent_out)  # nothing sent twice
    for row in rows:
        if row.status == "Sent":
            assert row.notice_id in sent_out
        else:
            assert (row.status, row.last_error) == ("Skipped", CANCELLED)
            assert row.notice_id not in sent_out
    assert len(rows) == 40


# --- quiet hours -------------------------------------------------------------------


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "released"),
    [
        # outside the window: unchanged
        (_utc(2026, 3, 27, 12, 0), _utc(2026, 3, 27, 12, 0)),
        # 23:00 CET before the spring-forward night: 07:00 CEST is 05:00 UTC
        (_utc(2026, 3, 28, 22, 0), _utc(2026, 3, 29, 5, 0)),
        # 02:30 doesn't exist that night; 01:30 CET (00:30 UTC) still waits for 07:00 CEST
        (_utc(2026, 3, 29, 0, 30), _utc(2026, 3, 29, 5, 0)),
        # an ordinary winter night: 07:00 CET is 06:00 UTC
        (_utc(2026, 1, 10, 23, 0), _utc(2026, 1, 11, 6, 0)),
        # 23:00 CEST before the fall-back night: 07:00 CET is 06:00 UTC
        (_utc(2026, 10, 24, 21, 0), _utc(2026, 10, 25, 6, 0)),
        # in the repeated hour (02:30 CET, the second pass): still 07:00 CET
        (_utc(2026, 10, 25, 1, 30), _utc(2026, 10, 25, 6, 0)),
        # after midnight, before the end: the same morning
        (_utc(2026, 7, 1, 3, 0), _utc(2026, 7, 1, 5, 0)),
        # exactly at the end: free
        (_utc(2026, 7, 1, 5, 0), _utc(2026, 7, 1, 5, 0)),
    ],
)
def test_quiet_window_across_midnight_and_dst(due, released):
    window = QuietWindow("Europe/Berlin", parse_clock("22:00"), parse_clock("07:00"))
    assert window.release(due) == released


def test_quiet_window_ending_inside_the_spring_gap():
    # 01:00-02:30 local: 02:30 does not exist on 29 March; it ends at 03:30 CEST
    # (01:30 UTC), the wall-clock reading zoneinfo gives 02:30 with the CET offset
    window = QuietWindow("Europe/Berlin", 60, 150)
    assert window.release(_utc(2026, 3, 29, 0, 15)) == _utc(2026, 3, 29, 1, 30)
    # a daytime window, not crossing midnight
    day = QuietWindow("America/New_York", parse_clock("12:00"), parse_clock("13:00"))
    assert day.release(_utc(2026, 6, 1, 16, 30)) == _utc(2026, 6, 1, 17, 0)
    assert day.release(_utc(2026, 6, 1, 18, 0)) == _utc(2026, 6, 1, 18, 0)
    assert QuietWindow("UTC", 0, 0).release(_utc(2026, 6, 1)) == _utc(2026, 6, 1)


@pytest.mark.parametrize(
    "bad",
    [
        ("Mars/Olympus", "22:00", "07:00"),
        ("UTC", "24:00", "07:00"),
        ("UTC", "7:00", "08:00"),
        ("", "22:00", "07:00"),
    ],
)
def test_quiet_hours_are_checked(app, notices, bad):
    with pytest.raises(InvalidQuietHours):
        notices.preferences.set_quiet_hours(1, *bad)


def _window_around_now(tz: str) -> tuple[str, str]:
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo(tz))
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=2)).strftime("%H:%M")
    return start, end


def test_quiet_hours_hold_email_and_push_until_the_window_ends(app_factory):
    app = app_factory(
        NOTICE_SENDERS=["memory", "log"],
        NOTICE_QUIET_HOURS_CHANNELS=["memory"],
        NOTICE_URGENT_TYPES=["System"],
    )
    start, end = _window_around_now("Asia/Tokyo")
    with app.app_context():
        app.notices.preferences.set_quiet_hours(1, "Asia/Tokyo", start, end)
        assert app.notices.preferences.get_quiet_hours(1) == {
            "timezone": "Asia/Tokyo",
            "start": start,
            "end": end,
        }
        quiet = notice_event([1, 2], NoticeType.COMMENT, subject="c", content="")
        urgent = notice_event(1, NoticeType.SYSTEM, subject="u", content="").id
    rows = {(r.notice_id, r.channel): r for r in _deliveries(app)}
    held = rows[(quiet[0], "memory")]
    assert held.status == "Wait" and held.claim_token is None
    # the window ends two hours (to the minute) from now
    expected = utcnow() + timedelta(hours=2)
    assert abs((held.next_attempt_at - expected).total_seconds()) < 120
    assert rows[(quiet[0], "log")].status == "Sent"  # not a quiet-hours channel
    assert rows[(quiet[1], "memory")].status == "Sent"  # user 2 has no quiet hours
    assert rows[(urgent, "memory")].status == "Sent"  # urgent types bypass
    assert _sweep(app, now=held.next_attempt_at + timedelta(seconds=1)).sent == 1
    with app.app_context():
        app.notices.preferences.clear_quiet_hours(1)
        assert app.notices.preferences.get_quiet_hours(1) is None


@pytest.mark.parametrize(
    ("deliver_at", "released"),
    [
        # 23:00 CET before the spring-forward night: 07:00 CEST is 05:00 UTC
        (_utc(2027, 3, 27, 22, 0), _utc(2027, 3, 28, 5, 0)),
        # 23:00 CEST before the fall-back night: 07:00 CET is 06:00 UTC
        (_utc(2027, 10, 30, 21, 0), _utc(2027, 10, 31, 6, 0)),
    ],
)
def test_quiet_hours_across_a_dst_change_end_to_end(app_factory, deliver_at, released):
    """Through publish, the stored row and the sweeper: a delivery due inside the quiet
    window on a night the clocks change is due at 07:00 local time, and sent then."""
    app = app_factory(NOTICE_QUIET_HOURS_CHANNELS=["memory"])
    with app.app_context():
        app.notices.preferences.set_quiet_hours(1, "Europe/Berlin", "22:00", "07:00")
        notice_event(1, subject="s", content="", deliver_at=deliver_at)
    (row,) = _deliveries(app)
    assert row.status == "Wait" and row.next_attempt_at == released
    assert _sweep(app, now=released - timedelta(seconds=1)).claimed == 0
    assert _sweep(app, now=released).sent == 1


def test_quiet_hours_push_a_delay_that_ends_inside_the_window(app_factory):
    app = app_factory(NOTICE_QUIET_HOURS_CHANNELS=["memory"])
    tz = "Europe/Berlin"
    start, end = _window_around_now(tz)
    with app.app_context():
        app.notices.preferences.set_quiet_hours(1, tz, start, end)
        notice_event(1, subject="s", content="", deliver_at=timedelta(minutes=30), unless_read=True)
    (row,) = _deliveries(app)
    assert row.unless_read and row.next_attempt_at > utcnow() + timedelta(minutes=100)


# --- preferences API and page ------------------------------------------------------


def _client(app: Flask, user: int) -> Any:
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = TOKEN
    client.environ_base["HTTP_X_USER"] = str(user)
    return client


def _web_app(app_factory: Any) -> Flask:
    app: Flask = app_factory(NOTICE_QUIET_HOURS_CHANNELS=["memory"])
    app.notices.user_loader(lambda: request.headers.get("X-User", type=int))  # type: ignore[attr-defined]
    return app


def test_preferences_json_round_trips_quiet_hours(app_factory):
    app = _web_app(app_factory)
    client = _client(app, 3)
    url, csrf = "/notices/preferences.json", {"X-CSRFToken": TOKEN}
    assert client.get(url).get_json()["quiet_hours"] is None
    quiet = {"timezone": "Europe/Berlin", "start": "22:30", "end": "06:45"}
    assert client.post(url, json={"quiet_hours": quiet}).status_code == 400  # no CSRF
    response = client.post(url, json={"quiet_hours": quiet}, headers=csrf)
    assert response.status_code == 200 and response.get_json()["quiet_hours"] == quiet
    assert client.get(url).get_json()["quiet_hours"] == quiet
    assert _client(app, 4).get(url).get_json()["quiet_hours"] is None  # only the owner's
    for bad in (
        {"timezone": "Nowhere/Land", "start": "22:00", "end": "06:00"},
        {"timezone": "UTC", "start": "25:00", "end": "06:00"},
        {"timezone": "UTC", "start": "22:00"},
        "22-06",
    ):
        r = client.post(url, json={"quiet_hours": bad, "digest": "daily"}, headers=csrf)
        assert r.status_code == 400, bad
    doc = client.get(url).get_json()
    assert doc["quiet_hours"] == quiet and doc["digest"] == "off"  # nothing written
    response = client.post(url, json={"quiet_hours": None}, headers=csrf)
    assert response.get_json()["quiet_hours"] is None


def test_preferences_page_sets_and_clears_quiet_hours(app_factory):
    app = _web_app(app_factory)
    client = _client(app, 5)
    html = client.get("/notices/preferences").get_data(as_text=True)
    assert 'name="quiet_timezone"' in html
    form = {
        "csrf_token": TOKEN,
        "on": ["Comment:memory"],
        "quiet_on": "1",
        "quiet_timezone": "America/New_York",
        "quiet_start": "21:00",
        "quiet_end": "08:00",
    }
    assert client.post("/notices/preferences", data=form).status_code == 303
    with app.app_context():
        assert app.notices.preferences.get_quiet_hours(5) == {
            "timezone": "America/New_York",
            "start": "21:00",
            "end": "08:00",
        }
    html = client.get("/notices/preferences").get_data(as_text=True)
    assert 'value="America/New_York"' in html and "checked" in html
    bad = {**form, "quiet_timezone": "<script>"}
    response = client.post("/notices/preferences", data=bad)
    assert response.status_code == 400 and b"<script>" not in response.data
    off = {k: v for k, v in form.items() if k != "quiet_on"}
    assert client.post("/notices/preferences", data=off).status_code == 303
    with app.app_context():
        assert app.notices.preferences.get_quiet_hours(5) is None
