"""The unread digest, through a real SMTP server: idempotent re-runs, overlapping runs
and a run that fails half way."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, notice_event, store
from notice.columns import utcnow
from notice.preferences.digest import DigestReport, run_digest
from tests.support.emailapp import address, deliveries, email_app
from tests.support.smtpserver import SMTPServer
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def _app(app_factory: Any, smtp: SMTPServer, **config: Any) -> Any:
    # notices are kept in the inbox only (memory sender); email goes out as a digest
    return email_app(app_factory, smtp, NOTICE_SENDERS=["memory"], **config)


def _digests(smtp: SMTPServer) -> dict[str, list[str]]:
    """Recipient -> the text parts of the digests they received, in order."""
    out: dict[str, list[str]] = {}
    for mail in smtp.messages:
        [to] = mail.rcpt_tos
        out.setdefault(to, []).append(mail.message.get_body(("plain",)).get_content())
    return out


def _emailed(app: Any) -> dict[int, bool]:
    Notice = app.notices.Notice
    rows = app.db.session.execute(sa.select(Notice.id, Notice.emailed_at)).all()
    app.db.session.rollback()
    return {i: at is not None for i, at in rows}


def test_digest_lists_unread_unemailed_notices_once(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        prefs = app.notices.preferences
        for user in (1, 2):
            prefs.set_digest(user, "daily")
        prefs.set_digest(3, "weekly")
        a = notice_event(1, NoticeType.COMMENT, subject="<b>Ana</b> commented", content="hi")
        notice_event(1, NoticeType.LIKE, subject="Bo liked", content="", url="/p/1")
        read = notice_event(1, subject="already read", content="")
        app.notices.mark_read(1, [read.id])
        notice_event(2, subject="for two", content="")
        notice_event(3, subject="weekly user", content="")
        notice_event(4, subject="never opted in", content="")

        report = run_digest(app.notices.state(), "daily")
        assert (report.sent, report.notices, report.failed) == (2, 3, 0)
        digests = _digests(smtp)
        assert sorted(digests) == [address(1), address(2)]
        [one] = digests[address(1)]
        assert "You have 2 unread notifications" in one
        assert "<b>Ana</b> commented" in one and "https://app.example/p/1" in one
        assert "already read" not in one
        html = smtp.messages[0].message.get_body(("html",)).get_content()
        assert "&lt;b&gt;Ana&lt;/b&gt;" in html and "<b>Ana" not in html
        msg = smtp.messages[0].message
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Unsubscribe"].startswith("<https://app.example/notices/unsubscribe/")

        emailed = _emailed(app)
        assert emailed[a.id] and not emailed[read.id]
        # re-run: nothing new, nothing sent
        again = run_digest(app.notices.state(), "daily")
        assert (again.sent, again.notices) == (0, 0) and len(smtp.messages) == 2
        # a new notice goes out in the next digest, alone
        notice_event(2, subject="newer", content="")
        run_digest(app.notices.state(), "daily")
        assert len(_digests(smtp)[address(2)]) == 2
        assert "newer" in _digests(smtp)[address(2)][1]
        assert "for two" not in _digests(smtp)[address(2)][1]
        # the weekly user only on the weekly run
        assert run_digest(app.notices.state(), "weekly").sent == 1
        assert "weekly user" in _digests(smtp)[address(3)][0]


def test_digest_lists_each_notices_get_actions_as_links(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        app.notices.preferences.set_digest(1, "daily")
        notice_event(
            1,
            subject="Review requested",
            content="",
            actions=[
                {"label": "Review <now>", "url": "/reviews/4"},
                {"label": "Approve", "url": "/reviews/4/approve", "method": "POST"},
            ],
        )
        notice_event(1, subject="plain", content="")
        assert run_digest(app.notices.state(), "daily").notices == 2
    [text] = _digests(smtp)[address(1)]
    assert "Review <now>: https://app.example/reviews/4" in text and "Approve" not in text
    html = smtp.messages[0].message.get_body(("html",)).get_content()
    assert '<a href="https://app.example/reviews/4">Review &lt;now&gt;</a>' in html
    assert "Approve" not in html


def test_default_frequency_and_email_preferences(app_factory, smtp):
    app = _app(
        app_factory,
        smtp,
        NOTICE_DIGEST_DEFAULT="daily",
        NOTICE_PREFERENCE_DEFAULTS={"Like": {"email": False}},
    )
    with app.app_context():
        app.notices.preferences.set_digest(2, "off")
        notice_event([1, 2], NoticeType.LIKE, subject="a like", content="")
        notice_event([1, 2], NoticeType.COMMENT, subject="a comment", content="")
        report = run_digest(app.notices.state(), "daily")
        assert report.sent == 1
        [text] = _digests(smtp)[address(1)]
        assert "a comment" in text and "a like" not in text  # Likes are off for email


def test_a_run_failing_half_way_leaves_the_rest_for_the_next(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        ids = {}
        for user in (1, 2, 3):
            app.notices.preferences.set_digest(user, "daily")
            ids[user] = notice_event(user, subject=f"for {user}", content="").id
        # user 1 accepted, user 2 refused (temporary), user 3 accepted
        smtp.script_data(["250 OK", "451 4.3.0 Mailbox busy"])
        report = run_digest(app.notices.state(), "daily")
        assert (report.sent, report.failed) == (2, 1)
        assert "451" in report.errors[0]
        assert _emailed(app) == {ids[1]: True, ids[2]: False, ids[3]: True}
        retry = run_digest(app.notices.state(), "daily")
        assert (retry.sent, retry.failed) == (1, 0)
        assert {to: len(texts) for to, texts in _digests(smtp).items()} == {
            address(1): 1,
            address(2): 1,
            address(3): 1,
        }
        assert all(_emailed(app).values())


def test_server_down_sends_nothing_and_marks_nothing(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        for user in (1, 2):
            app.notices.preferences.set_digest(user, "daily")
            notice_event(user, subject="x", content="")
        smtp.stop()
        report = run_digest(app.notices.state(), "daily")
        assert (report.sent, report.failed) == (0, 2)
        assert not any(_emailed(app).values())


def test_overlapping_runs_email_each_user_once(app_factory, smtp):
    """Run A stalls while it holds user 1; run B runs whole meanwhile. B must skip
    user 1 (A's lease) and A must find B's users already emailed."""
    app = _app(app_factory, smtp)
    users = list(range(1, 7))
    with app.app_context():
        for user in users:
            app.notices.preferences.set_digest(user, "daily")
            notice_event(user, subject=f"for {user}", content="")
    a_holds_user_1 = threading.Event()
    b_done = threading.Event()

    def loader(user_id: Any) -> str:
        if user_id == 1 and threading.current_thread().name == "run-a":
            a_holds_user_1.set()
            assert b_done.wait(30), "run B did not finish"
        return address(user_id)

    app.notices.email_loader(loader)
    reports: dict[str, DigestReport] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with app.app_context():
                reports[name] = run_digest(app.notices.state(), "daily")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    a = threading.Thread(target=run, args=("a",), name="run-a", daemon=True)
    a.start()
    assert a_holds_user_1.wait(30)
    b = threading.Thread(target=run, args=("b",), name="run-b", daemon=True)
    b.start()
    b.join(30)
    b_done.set()
    a.join(30)
    assert not a.is_alive() and not b.is_alive() and errors == []
    assert (reports["b"].sent, reports["b"].busy) == (5, 1)
    assert (reports["a"].sent, reports["a"].empty) == (1, 5)
    assert {to: len(t) for to, t in _digests(smtp).items()} == {address(u): 1 for u in users}
    with app.app_context():
        assert run_digest(app.notices.state(), "daily").sent == 0


def test_concurrent_runs_without_a_stall(app_factory, smtp):
    app = _app(app_factory, smtp)
    users = list(range(1, 21))
    with app.app_context():
        for user in users:
            app.notices.preferences.set_digest(user, "daily")
        notice_event(users, subject="hello", content="")
    barrier = threading.Barrier(3)
    reports: list[DigestReport] = []

    def run() -> None:
        with app.app_context():
            barrier.wait(10)
            reports.append(run_digest(app.notices.state(), "daily"))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 3
    assert sum(r.sent for r in reports) == 20
    assert {to: len(t) for to, t in _digests(smtp).items()} == {address(u): 1 for u in users}


def test_cli(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        app.notices.preferences.set_digest(1, "weekly")
        notice_event(1, subject="x", content="")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["notice", "digest"])
    assert result.exit_code == 0 and "digest (daily): 0 emails sent" in result.output
    result = runner.invoke(args=["notice", "digest", "--frequency", "weekly"])
    assert result.exit_code == 0, result.output
    assert "digest (weekly): 1 email sent (1 notice), 0 failed" in result.output
    with app.app_context():
        notice_event(1, subject="y", content="")
    smtp.script_data(["554 5.7.1 Rejected"])
    result = runner.invoke(args=["notice", "digest", "--frequency", "weekly"])
    assert result.exit_code == 1 and "1 failed" in result.output
    with app.app_context():
        notice_event(1, subject="z", content="")
    result = runner.invoke(args=["notice", "digest", "--frequency", "weekly", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["sent"] == 1 and json.loads(result.output)["notices"] == 2
    bad = runner.invoke(args=["notice", "digest", "--frequency", "hourly"])
    assert bad.exit_code == 2


def test_cli_without_mail_config_fails_clearly(app_factory):
    app = app_factory(NOTICE_SENDERS=["memory"])
    result = app.test_cli_runner().invoke(args=["notice", "digest"])
    assert result.exit_code == 1 and "NOTICE_MAIL_SENDER" in result.output


def test_overlapping_runs_in_separate_processes(app_factory, smtp, db_url, tmp_path):
    """Three ``flask notice digest`` processes released at once on one database."""
    app = _app(app_factory, smtp)
    users = list(range(1, 41))
    with app.app_context():
        for user in users:
            app.notices.preferences.set_digest(user, "daily")
        for i in range(3):
            notice_event(users, subject=f"item {i}", content="")
    start = tmp_path / "start"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NOTICE_TEST_")},
        "PYTHONPATH": str(ROOT),
        "NOTICE_TEST_DB_URL": db_url,
        "NOTICE_TEST_SMTP_PORT": str(smtp.port),
        "NOTICE_TEST_START": str(start),
    }
    command = [sys.executable, "-m", "flask", "--app", "tests.support.digestapp"]
    procs = [
        subprocess.Popen(
            [*command, "notice", "digest"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        assert wait_for(lambda: len(glob.glob(f"{start}.*")) == 3, timeout=30)
        start.touch()
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    sent = sum(int(out.split(": ")[1].split()[0]) for out in outs)
    assert sent == len(users), outs
    digests = _digests(smtp)
    assert {to: len(t) for to, t in digests.items()} == {address(u): 1 for u in users}
    assert all(text.count("item ") == 3 for [text] in digests.values())
    with app.app_context():
        assert all(_emailed(app).values())


# --- one email per notice: its own, or a digest line -----------------------------------


def _received(smtp: SMTPServer, text: str) -> int:
    """How many accepted emails mention ``text`` (a notice email or a digest line)."""
    return sum(
        text in (m.message["Subject"] + m.message.get_body(("plain",)).get_content())
        for m in smtp.messages
    )


def test_a_notice_whose_email_waits_for_its_retry_is_mailed_once(app_factory, smtp):
    """451 on the notice's own email, a digest run, then the retry: the notice reaches
    the inbox once (the digest used to list it and the retry mailed it again)."""
    app = email_app(app_factory, smtp)  # per-notice emails, and a digest
    with app.app_context():
        app.notices.preferences.set_digest(1, "daily")
        smtp.script_data(["451 4.3.0 Try again later"])
        notice_event(1, subject="waiting for its retry", content="")
        other = notice_event(1, subject="emailed at once", content="")
        [retrying, sent] = deliveries(app, "email")
        assert (retrying.status, sent.status) == ("Error", "Sent")
        state = app.notices.state()

        # while a worker holds the row for its retry, and before: no digest line
        _token, claimed = store.claim(
            state.engine,
            app.notices.Delivery.__table__,
            now=retrying.next_attempt_at,
            lease=state.lease,
            limit=10,
        )
        assert claimed == [retrying.id]
        report = run_digest(state, "daily")
        assert (report.sent, report.notices) == (0, 0)
        # the worker gives it back unsent (its lease ran out): still not in the digest
        report = run_digest(state, "daily", now=retrying.next_attempt_at + state.lease)
        assert (report.sent, report.notices) == (0, 0)

        later = retrying.next_attempt_at + state.lease + timedelta(seconds=1)
        sweep = app.notices.sweep(now=later)
        assert (sweep.claimed, sweep.sent) == (1, 1)
        assert run_digest(state, "daily", now=later).sent == 0
        [retried, _] = deliveries(app, "email")
        # three attempts: the 451, the worker that gave up its lease, the retry
        assert (retried.status, retried.attempts) == ("Sent", 3)
        assert all(_emailed(app).values()) and other.id in _emailed(app)
    assert _received(smtp, "waiting for its retry") == 1
    assert _received(smtp, "emailed at once") == 1
    assert len(smtp.messages) == 2


def test_a_notice_whose_email_died_goes_in_the_digest_once(app_factory, smtp):
    """An email that ended Dead leaves its notice to the digest (not lost); an operator
    re-queueing that email afterwards does not mail it a second time."""
    app = email_app(app_factory, smtp)
    with app.app_context():
        app.notices.preferences.set_digest(1, "daily")
        smtp.script_data(["554 5.6.0 Message content rejected"])
        notice = notice_event(1, subject="its email died", content="")
        [dead] = deliveries(app, "email")
        assert dead.status == "Dead"
        dead_id = dead.id
        state = app.notices.state()
        report = run_digest(state, "daily")
        assert (report.sent, report.notices) == (1, 1)
        assert _emailed(app)[notice.id]

    requeued = app.test_cli_runner().invoke(args=["notice", "retry", "--id", str(dead_id)])
    assert requeued.exit_code == 0, requeued.output
    with app.app_context():
        sweep = app.notices.sweep(now=utcnow() + timedelta(minutes=5))
        assert (sweep.claimed, sweep.skipped) == (1, 1)
        [skipped] = deliveries(app, "email")
        assert skipped.status == "Skipped" and "already emailed" in skipped.last_error
    assert _received(smtp, "its email died") == 1


# --- an address refused for good is recorded once, and does not fail later runs -------


def _refusal(app: Any, user_id: int) -> tuple[str | None, str | None]:
    Digest = app.notices.preferences.DigestSetting
    row = app.db.session.execute(
        sa.select(Digest.refused_address, Digest.refused_error).where(Digest.user_id == user_id)
    ).one()
    app.db.session.rollback()
    return row.refused_address, row.refused_error


def test_refused_address_is_recorded_once_and_later_runs_exit_0(app_factory, smtp):
    app = _app(app_factory, smtp)
    moved: dict[int, str] = {}
    app.notices.email_loader(lambda user_id: moved.get(user_id, address(user_id)))
    with app.app_context():
        for user in (1, 2):
            app.notices.preferences.set_digest(user, "daily")
            notice_event(user, subject=f"first for {user}", content="")
    smtp.refuse_rcpt(address(2), "550 5.1.1 No such user")
    runner = app.test_cli_runner()

    first = runner.invoke(args=["notice", "digest"])
    assert first.exit_code == 0, first.output
    assert "1 email sent (1 notice), 0 failed, 1 refused for good" in first.stdout
    assert "only failures are addresses refused for good" in first.stdout
    assert "user 2: PermanentError: recipient refused: 550" in first.stderr
    with app.app_context():
        refused, error = _refusal(app, 2)
        assert refused == address(2) and "550 5.1.1 No such user" in (error or "")
        assert _refusal(app, 1) == (None, None)
        notice_event(2, subject="second for 2", content="")
    connections = smtp.connections

    # the next runs skip the refused address without asking the server again
    for _ in range(2):
        again = runner.invoke(args=["notice", "digest", "--json"])
        assert again.exit_code == 0, again.output
        counts = json.loads(again.stdout)
        assert (counts["sent"], counts["failed"], counts["refused"]) == (0, 0, 0)
        assert counts["refused_before"] == 1
    assert smtp.connections == connections

    # the user's address changes: the digest goes out and the record is cleared
    moved[2] = "new2@example.com"
    changed = runner.invoke(args=["notice", "digest"])
    assert changed.exit_code == 0, changed.output
    assert "1 email sent (2 notices), 0 failed, 0 refused for good" in changed.stdout
    with app.app_context():
        assert _refusal(app, 2) == (None, None)
    [digest] = _digests(smtp)["new2@example.com"]
    assert "first for 2" in digest and "second for 2" in digest
    assert address(2) not in _digests(smtp)


def test_retry_refused_tries_recorded_addresses_again(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        app.notices.preferences.set_digest(1, "daily")
        notice_event(1, subject="hello", content="")
    smtp.refuse_rcpt(address(1), "550 5.1.1 No such user")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["notice", "digest"]).exit_code == 0
    smtp.reset()  # the mailbox exists again; the record still holds
    held = runner.invoke(args=["notice", "digest"])
    assert held.exit_code == 0 and "1 skipped (address refused before)" in held.stdout
    assert smtp.messages == []
    retried = runner.invoke(args=["notice", "digest", "--retry-refused"])
    assert retried.exit_code == 0, retried.output
    assert "1 email sent (1 notice)" in retried.stdout
    assert "refused for good" in retried.stdout and "only failures" not in retried.stdout
    with app.app_context():
        assert _refusal(app, 1) == (None, None)
    assert list(_digests(smtp)) == [address(1)]


def test_transient_failures_still_exit_1_and_record_nothing(app_factory, smtp):
    app = _app(app_factory, smtp)
    with app.app_context():
        for user in (1, 2):
            app.notices.preferences.set_digest(user, "daily")
            notice_event(user, subject="hello", content="")
    runner = app.test_cli_runner()
    # user 1's mailbox is busy (4xx), user 2's address is refused for good
    smtp.refuse_rcpt(address(1), "450 4.2.1 Mailbox busy")
    smtp.refuse_rcpt(address(2), "550 5.1.1 No such user")
    mixed = runner.invoke(args=["notice", "digest"])
    assert mixed.exit_code == 1, mixed.output
    assert "0 emails sent (0 notices), 1 failed, 1 refused for good" in mixed.stdout
    assert "only failures" not in mixed.stdout
    with app.app_context():
        assert _refusal(app, 1) == (None, None)
        assert _refusal(app, 2)[0] == address(2)
    # the server is down: connection refused is transient as well
    smtp.stop()
    down = runner.invoke(args=["notice", "digest"])
    assert down.exit_code == 1, down.output
    assert "1 failed" in down.stdout and "1 skipped (address refused before)" in down.stdout
    assert "cannot connect to SMTP server" in down.stderr
    with app.app_context():
        assert _refusal(app, 1) == (None, None)


def test_an_invalid_address_counts_as_refused_without_failing_the_run(app_factory, smtp):
    app = _app(app_factory, smtp)
    app.notices.email_loader(lambda user_id: "not an address")
    with app.app_context():
        app.notices.preferences.set_digest(1, "daily")
        notice_event(1, subject="hello", content="")
        report = run_digest(app.notices.state(), "daily")
        assert (report.failed, report.refused) == (0, 1)
        assert _refusal(app, 1)[0] == "not an address"
        again = run_digest(app.notices.state(), "daily")
        assert (again.failed, again.refused, again.refused_before) == (0, 0, 1)
    assert smtp.connections == 0
