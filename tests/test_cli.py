"""``flask notice sweep | retry | stats | purge | send-test`` through Flask's CLI runner.

(``worker`` runs as a real process in tests/test_sweeper_concurrency.py.)
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, PermanentError, Sender, notice_event
from notice.cli.duration import parse_duration
from notice.columns import utcnow


class Boom(Sender):
    """Fails for good until ``fixed`` is set."""

    name = "boom"

    def __init__(self) -> None:
        self.fixed = False
        self.sent: list[int] = []

    def send(self, notice: Any) -> None:
        if not self.fixed:
            raise PermanentError("mailbox does not exist")
        self.sent.append(notice.id)


@pytest.fixture
def make(app_factory):
    def build(**config: Any):
        app = app_factory(**config)
        boom = Boom()
        app.notices.register_sender(boom)
        return app, boom

    return build


def invoke(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["notice", *args])


def rows(app: Any) -> list[Any]:
    d, n = app.notices.Delivery.__table__, app.notices.Notice.__table__
    stmt = (
        sa.select(d, n.c.user_id)
        .join(n, n.c.id == d.c.notice_id)
        .order_by(n.c.user_id, d.c.channel)
    )
    with app.app_context(), app.db.engine.connect() as conn:
        return list(conn.execute(stmt))


def publish(app: Any, users: Any, **kw: Any) -> Any:
    kw.setdefault("channels", ["memory", "boom"])
    with app.app_context():
        return notice_event(users, subject="s", content="c", **kw)


def test_sweep_sends_what_is_due(make):
    app, boom = make(NOTICE_DISPATCH="none")
    publish(app, [1, 2, 3], channels=["memory"])
    result = invoke(app, "sweep", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["claimed"], report["sent"]) == (3, 3)
    with app.app_context():
        assert len(app.notices.sender("memory").outbox) == 3
    result = invoke(app, "sweep")
    assert result.exit_code == 0
    assert result.stdout.strip().startswith("claimed 0, sent 0")


def test_sweep_limit(make):
    app, boom = make(NOTICE_DISPATCH="none")
    publish(app, [1, 2, 3], channels=["memory"])
    report = json.loads(invoke(app, "sweep", "--limit", "2", "--json").stdout)
    assert report["claimed"] == 2
    assert json.loads(invoke(app, "sweep", "--json").stdout)["claimed"] == 1


def test_retry_dry_run_changes_nothing_then_retry_requeues(make):
    app, boom = make()
    publish(app, [1, 2])  # sync dispatch: memory Sent, boom Dead
    before = rows(app)
    assert [(r.user_id, r.channel, r.status) for r in before] == [
        (1, "boom", "Dead"),
        (1, "memory", "Sent"),
        (2, "boom", "Dead"),
        (2, "memory", "Sent"),
    ]
    result = invoke(app, "retry", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would re-queue 2 deliveries" in result.stdout
    assert result.stdout.count("boom Dead attempts=1 error=PermanentError: mailbox") == 2
    assert rows(app) == before

    result = invoke(app, "retry", "--channel", "boom", "--user", "1")
    assert result.exit_code == 0, result.output
    assert "re-queued 1 delivery;" in result.stdout
    after = {(r.user_id, r.channel): r for r in rows(app)}
    requeued = after[(1, "boom")]
    assert (requeued.status, requeued.attempts) == ("Error", 0)
    assert requeued.last_error == "PermanentError: mailbox does not exist"  # kept
    assert requeued.next_attempt_at <= utcnow()
    assert after[(2, "boom")].status == "Dead"

    boom.fixed = True
    report = json.loads(invoke(app, "sweep", "--json").stdout)
    assert (report["claimed"], report["sent"]) == (1, 1)
    assert len(boom.sent) == 1
    with app.app_context():
        assert len(app.notices.sender("memory").outbox) == 2  # Sent rows never resent


@pytest.mark.parametrize(
    ("args", "matched"),
    [
        ((), 3),
        (("--type", "Comment"), 1),
        (("--type", "Comment", "--type", "Like"), 2),
        (("--user", "2"), 2),
        (("--status", "dead"), 3),
        (("--status", "error"), 0),
        (("--since", "1h"), 3),
        (("--channel", "memory"), 0),
    ],
)
def test_retry_filters(make, args, matched):
    app, boom = make()
    publish(app, 1, notice_type=NoticeType.COMMENT)
    publish(app, 2, notice_type=NoticeType.LIKE)
    publish(app, 2, notice_type=NoticeType.POST)
    result = invoke(app, "retry", "--dry-run", *args)
    assert result.exit_code == 0, result.output
    if matched:
        word = "delivery" if matched == 1 else "deliveries"
        assert f"would re-queue {matched} {word}:" in result.stdout
    else:
        assert "no failed deliveries match" in result.stdout


def test_retry_by_id_and_recent_failures_only(make):
    app, boom = make()
    publish(app, [1, 2, 3])
    dead = [r for r in rows(app) if r.channel == "boom"]
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.begin() as conn:
        conn.execute(
            sa.update(d).where(d.c.id == dead[0].id).values(update_at=utcnow() - timedelta(hours=3))
        )
    result = invoke(app, "retry", "--since", "2h")
    assert "re-queued 2 deliveries" in result.stdout
    result = invoke(app, "retry", "--id", str(dead[0].id))
    assert "re-queued 1 delivery;" in result.stdout
    assert {r.status for r in rows(app) if r.channel == "boom"} == {"Error"}


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("retry", "--since", "soon"), "'soon' is not a duration"),
        (("retry", "--since", "0h"), "must be longer than zero"),
        (("retry", "--channel", "pigeon"), "no sender named 'pigeon'"),
        (("retry", "--type", "Nope"), "unknown notice type 'Nope'"),
        (("retry", "--user", "ana"), "'ana' is not a valid user id"),
        (("retry", "--id", "x"), "'x' is not a valid integer"),
        (("purge",), "Missing option '--read-older-than'"),
        (("purge", "--read-older-than", "90x"), "'90x' is not a duration"),
        (("purge", "--read-older-than", "90d", "--batch-size", "0"), "--batch-size"),
        (("worker", "--interval", "0"), "--interval"),
        (("sweep", "--limit", "-1"), "--limit"),
        (("send-test", "bob"), "'bob' is not a valid user id"),
        (("send-test",), "Missing argument 'USER_ID'"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(make, args, complaint):
    app, _ = make()
    result = invoke(app, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and complaint in errors[0], result.output


def test_stats(make):
    app, boom = make(NOTICE_DISPATCH="none")
    publish(app, [1, 2])
    invoke(app, "sweep")  # memory Sent, boom Dead
    publish(app, [3])  # two pending
    d = app.notices.Delivery.__table__
    pending = [r for r in rows(app) if r.status == "Wait"]
    old = pending[0]
    with app.app_context(), app.db.engine.begin() as conn:
        conn.execute(
            sa.update(d).where(d.c.id == old.id).values(create_at=utcnow() - timedelta(hours=2))
        )
    with app.app_context():
        app.notices.mark_read(1)
    result = invoke(app, "stats", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    dl = data["deliveries"]
    assert dl["total"] == 6
    assert dl["by_status"] == {"Wait": 2, "Sent": 2, "Error": 0, "Dead": 2, "Skipped": 0}
    assert dl["by_channel"] == {"boom": {"Dead": 2, "Wait": 1}, "memory": {"Sent": 2, "Wait": 1}}
    assert dl["pending_by_age"] == {"<1m": 1, "1m-1h": 0, "1h-1d": 1, ">=1d": 0}
    assert dl["due_now"] == 2 and dl["in_flight"] == 0
    assert dl["oldest_pending"]["id"] == old.id
    assert 7100 < dl["oldest_pending"]["age_seconds"] < 7300
    assert data["notices"] == {"total": 3, "unread": 2}

    text = invoke(app, "stats").stdout
    assert "notices: 3 (2 unread)" in text
    assert "deliveries: 6  due now: 2  in flight: 0" in text
    assert any(line.split()[:3] == ["boom", "1", "0"] for line in text.splitlines())
    assert f"oldest pending: #{old.id} ({old.channel})" in text


def test_stats_on_an_empty_database(make):
    app, _ = make()
    data = json.loads(invoke(app, "stats", "--json").stdout)
    assert data["deliveries"]["total"] == 0 and data["deliveries"]["oldest_pending"] is None
    assert "oldest pending: none" in invoke(app, "stats").stdout


def test_purge_in_batches(make):
    app, boom = make()
    Notice = app.notices.Notice
    ids = publish(app, [1, 2, 3, 4, 5, 6])
    ages = {0: 100, 1: 100, 2: 100, 3: 400, 4: 10, 5: 400}  # days, by position
    n = Notice.__table__
    with app.app_context(), app.db.engine.begin() as conn:
        for pos, days in ages.items():
            conn.execute(
                sa.update(n)
                .where(n.c.id == ids[pos])
                .values(create_at=utcnow() - timedelta(days=days))
            )
    with app.app_context():
        app.notices.mark_read(1)
        app.notices.mark_read(2)
        app.notices.mark_read(3)
        app.notices.mark_read(5)
        app.notices.mark_read(6)

    result = invoke(app, "purge", "--read-older-than", "90d", "--dry-run")
    assert result.exit_code == 0 and "would delete 4 notices" in result.stdout
    assert len(rows(app)) == 12

    result = invoke(app, "purge", "--read-older-than", "90d", "--batch-size", "3")
    assert result.exit_code == 0, result.output
    assert "deleted 4 notices" in result.stdout
    left = {r.notice_id for r in rows(app)}
    assert left == {ids[3], ids[4]}  # unread and old; read and recent
    assert len(rows(app)) == 4  # their deliveries went with them

    result = invoke(app, "purge", "--read-older-than", "90d", "--unread-older-than", "365d")
    assert "deleted 1 notice\n" in result.stdout
    with app.app_context():
        assert [x.id for x in app.db.session.execute(sa.select(Notice)).scalars()] == [ids[4]]
    assert {r.notice_id for r in rows(app)} == {ids[4]}


@pytest.mark.parametrize("dispatch", ["sync", "none"])
def test_send_test_reports_each_channel(make, dispatch):
    app, boom = make(NOTICE_DISPATCH=dispatch, NOTICE_SENDERS=["memory"])
    result = invoke(app, "send-test", "7")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("notice #") and lines[0].endswith("to user 7:")
    assert "  memory: Sent" in lines
    assert "  boom: Dead: PermanentError: mailbox does not exist" in lines
    with app.app_context():
        (sent,) = app.notices.sender("memory").outbox
        assert (sent.user_id, sent.notice_type, sent.subject) == (7, "System", "Test notice")

    boom.fixed = True
    result = invoke(app, "send-test", "7")
    assert result.exit_code == 0, result.output
    assert "  boom: Sent" in result.stdout.splitlines()


def test_database_error_is_one_line_and_exit_1(make):
    app, _ = make()
    with app.app_context():
        app.notices.Delivery.__table__.drop(app.db.engine)
    for args in (("stats",), ("sweep",), ("retry",)):
        result = invoke(app, *args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: database error: ")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * 86400),
        ("2h", 7200),
        ("30m", 1800),
        ("45s", 45),
        ("1.5h", 5400),
        ("2w", 1209600),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)
