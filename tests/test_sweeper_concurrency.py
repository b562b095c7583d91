"""Sweepers as real processes: many at once, one killed mid-batch, one cut off from
PostgreSQL. The workers are ``flask notice sweep`` / ``worker`` commands on
:mod:`tests.support.sweepapp`, whose senders append a line per send to a shared file.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.columns import utcnow
from notice.sweeper import sweep
from tests.support.sweepapp import RECORDING_SENDERS, read_log
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ["rec_a", "rec_b"]


def _spawn(db_url: str, log: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """``flask notice <args>`` in a new process; stderr goes to ``<log>.<n>.err``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("NOTICE_TEST_")}
    full_env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "NOTICE_TEST_DB_URL": db_url,
        "NOTICE_TEST_LOG": str(log),
        **env,
    }
    err = open(f"{log}.{len(glob.glob(f'{log}.*.err'))}.err", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "tests.support.sweepapp", "notice", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    proc.err_path = err.name  # type: ignore[attr-defined]
    err.close()
    return proc


@contextmanager
def _worker(
    db_url: str, log: Path, interval: str = "0.1", **env: str
) -> Iterator[subprocess.Popen[str]]:
    """``flask notice worker --interval <interval>``, killed on exit if still running."""
    proc = _spawn(db_url, log, "worker", "--interval", interval, **env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def _stderr(proc: subprocess.Popen[str]) -> str:
    return Path(proc.err_path).read_text()  # type: ignore[attr-defined]


def _app(app_factory: Any, **config: Any) -> Any:
    return app_factory(NOTICE_SENDERS=RECORDING_SENDERS, NOTICE_DISPATCH="none", **config)


def _publish(app: Any, users: int, subject: str) -> list[int]:
    with app.app_context():
        ids: list[int] = notice_event(
            list(range(1, users + 1)), subject=subject, content="", channels=CHANNELS
        )
    return ids


def _statuses(app: Any) -> Counter[str]:
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        return Counter(
            {
                s: n
                for s, n in conn.execute(
                    sa.select(d.c.status, sa.func.count()).group_by(d.c.status)
                )
            }
        )


def _leased(app: Any) -> int:
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        stmt = sa.select(sa.func.count()).where(d.c.status == "Wait", d.c.claimed_until > utcnow())
        return int(conn.execute(stmt).scalar_one())


@pytest.mark.parametrize("run", [1, 2, 3])
def test_many_sweepers_send_every_delivery_exactly_once(app_factory, db_url, tmp_path, run):
    workers = 8 if db_url.startswith("postgresql") else 4
    app = _app(app_factory)
    ids = _publish(app, 2500, f"run {run}")
    expected = {(c, i) for i in ids for c in CHANNELS}
    assert len(expected) == 5000
    log, start = tmp_path / "sent.log", tmp_path / "start"
    procs = [
        _spawn(
            db_url, log, "sweep", "--json", NOTICE_TEST_BATCH="100", NOTICE_TEST_START=str(start)
        )
        for _ in range(workers)
    ]
    try:
        # every worker has built its app; let them go at once
        assert wait_for(lambda: len(glob.glob(f"{start}.*")) == workers, timeout=30)
        start.touch()
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p in procs:
        err = _stderr(p)
        assert p.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
    reports = [json.loads(out) for out in outs]
    sent = read_log(str(log))
    counts = Counter(sent)
    lost = expected - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    senders = Counter(line.split()[2] for line in log.read_text().splitlines())
    print(f"\n{workers} sweepers, run {run}: sends per process {sorted(senders.values())}")
    assert not lost and duplicates == 0 and set(counts) == expected
    assert sum(r["sent"] for r in reports) == 5000
    assert sum(r["claimed"] for r in reports) == 5000
    assert len(senders) >= 2  # the work really was shared
    assert _statuses(app) == Counter({"Sent": 5000})
    with app.app_context():
        n = app.notices.Notice.__table__
        assert app.db.session.execute(
            sa.select(n.c.send_status, sa.func.count()).group_by(n.c.send_status)
        ).all() == [("Sent", 2500)]


def test_killed_worker_is_finished_after_its_lease(app_factory, db_url, tmp_path, monkeypatch):
    lease = 300
    app = _app(app_factory, NOTICE_CLAIM_TIMEOUT=lease)
    ids = _publish(app, 300, "crash")
    expected = {(c, i) for i in ids for c in CHANNELS}
    log = tmp_path / "sent.log"
    with _worker(db_url, log, NOTICE_TEST_BATCH="100", NOTICE_TEST_SEND_DELAY="0.005") as proc:
        # past the first batch, inside a later one: some of it sent, none recorded
        assert wait_for(lambda: len(read_log(str(log))) >= 150, timeout=30), _stderr(proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    in_flight = _leased(app)
    assert 0 < in_flight <= 100
    statuses = _statuses(app)
    # the killed worker's rows are untouchable until the lease runs out
    monkeypatch.setenv("NOTICE_TEST_LOG", str(log))
    monkeypatch.delenv("NOTICE_TEST_SEND_DELAY", raising=False)
    report = sweep(app)
    assert report.claimed == statuses["Wait"] - in_flight
    assert _leased(app) == in_flight
    report = sweep(app, now=utcnow() + timedelta(seconds=lease + 1))
    assert report.claimed == report.sent == in_flight
    assert _statuses(app) == Counter({"Sent": 600})
    counts = Counter(read_log(str(log)))
    duplicates = sum(n - 1 for n in counts.values())
    print(f"\nSIGKILL mid-batch: {in_flight} deliveries in flight, {duplicates} sent twice")
    assert set(counts) == expected
    assert duplicates <= in_flight


def test_sigterm_stops_after_the_sends_in_flight(app_factory, db_url, tmp_path):
    app = _app(app_factory)
    _publish(app, 100, "stop")
    log = tmp_path / "sent.log"
    with _worker(db_url, log, NOTICE_TEST_BATCH="50", NOTICE_TEST_SEND_DELAY="0.01") as proc:
        assert wait_for(lambda: len(read_log(str(log))) >= 10, timeout=30), _stderr(proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, _stderr(proc)
    statuses = _statuses(app)
    # every send it made is recorded, it stopped early, and what it had claimed but not
    # sent is back in the queue (not leased, attempt undone)
    assert statuses["Sent"] == len(read_log(str(log)))
    assert 0 < statuses["Sent"] < 200 and statuses["Sent"] + statuses["Wait"] == 200
    assert _leased(app) == 0
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        waiting = conn.execute(sa.select(d.c.attempts).where(d.c.status == "Wait")).scalars()
        assert set(waiting) <= {0}
    assert "SIGTERM received: stopping once the sends in flight end" in _stderr(proc)


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_worker_rides_out_a_database_outage(app_factory, db_url, tmp_path):
    app = _app(app_factory)
    url = sa.make_url(db_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    log = tmp_path / "sent.log"
    worker_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    first = _publish(app, 100, "before the outage")
    try:
        with _worker(worker_url, log, "0.2") as proc:
            assert wait_for(lambda: _statuses(app)["Sent"] == 200, timeout=20), _stderr(proc)
            proxy.stop()  # PostgreSQL keeps running; only this worker loses it
            second = _publish(app, 100, "during the outage")
            assert wait_for(lambda: _stderr(proc).count("database error") >= 2, timeout=20)
            assert _statuses(app) == Counter({"Sent": 200, "Wait": 200})
            proxy.start()
            assert wait_for(lambda: _statuses(app)["Sent"] == 400, timeout=30), _stderr(proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
    finally:
        proxy.stop()
    err = _stderr(proc)
    assert "retrying in" in err and "recovered after" in err
    assert "SIGTERM received" in err and "worker stopped" in err
    assert "Traceback" not in err
    counts = Counter(read_log(str(log)))
    assert set(counts) == {(c, i) for i in first + second for c in CHANNELS}
    assert max(counts.values()) == 1


def _hung(log: Path) -> list[tuple[int, int]]:
    """``(notice id, pid)`` of every send that hung (tests.support.sweepapp)."""
    try:
        lines = Path(f"{log}.hung").read_text().splitlines()
    except FileNotFoundError:
        return []
    return [(int(a), int(b)) for a, b in (line.split() for line in lines)]


def _row(app: Any, channel: str, notice_id: int) -> Any:
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        return conn.execute(
            sa.select(d).where(d.c.channel == channel, d.c.notice_id == notice_id)
        ).one()


HANG = {
    "NOTICE_TEST_HANG": "hang",
    "NOTICE_TEST_SEND_TIMEOUT": "0.5",
    "NOTICE_TEST_CLAIM_TIMEOUT": "2",
    "NOTICE_TEST_RETRY_BASE": "0.2",
    "NOTICE_TEST_BATCH": "20",
}


def test_a_hung_send_holds_up_nothing_and_sigterm_still_stops(app_factory, db_url, tmp_path):
    """Two workers and one send hanging for 60 s (NOTICE_SEND_TIMEOUT 0.5 s): it times
    out in each worker once (never retried beside its own abandoned attempt), everything
    else goes out exactly once, and SIGTERM stops both workers."""
    app = _app(app_factory)
    (stuck,) = _publish(app, 1, "hang")
    later = _publish(app, 100, "later")
    log = tmp_path / "sent.log"
    expected = {(c, i) for i in later for c in CHANNELS} | {("rec_b", stuck)}
    with _worker(db_url, log, **HANG) as one, _worker(db_url, log, **HANG) as two:
        assert wait_for(lambda: set(read_log(str(log))) == expected, timeout=60), _stderr(one)
        # after its backoff the other worker takes it and hangs too; then neither may
        # take it while its own abandoned send may still be running
        assert wait_for(lambda: len(_hung(log)) == 2, timeout=30), _stderr(one)
        for proc in (one, two):
            proc.send_signal(signal.SIGTERM)
        for proc in (one, two):
            assert proc.wait(timeout=20) == 0, _stderr(proc)
    hung = _hung(log)
    assert [n for n, _ in hung] == [stuck, stuck]
    assert {pid for _, pid in hung} == {one.pid, two.pid}
    row = _row(app, "rec_a", stuck)
    assert (row.status, row.attempts, row.claim_token) == ("Error", 2, None)
    assert row.last_error == "timed out after 0.5 s"
    counts = Counter(read_log(str(log)))
    assert set(counts) == expected and max(counts.values()) == 1
    assert _statuses(app) == Counter({"Sent": 201, "Error": 1})
    for proc in (one, two):
        err = _stderr(proc)
        assert "Traceback" not in err and "timed out after 0.5 s" in err


def test_a_second_sigterm_exits_at_once_after_recording(app_factory, db_url, tmp_path):
    """The first SIGTERM waits for the send in flight (here up to 60 s); a second one
    exits at once, after recording the batch: the hung send as interrupted, what was sent
    as Sent, the rest given back, nothing left leased."""
    app = _app(app_factory)
    (stuck,) = _publish(app, 1, "hang")
    others = _publish(app, 5, "other")
    log = tmp_path / "sent.log"
    env = {**HANG, "NOTICE_TEST_SEND_TIMEOUT": "60", "NOTICE_TEST_CLAIM_TIMEOUT": "120"}
    with _worker(db_url, log, **env) as proc:
        # rec_a's other sends queue behind the hung one; rec_b's go out
        sent = {("rec_b", i) for i in [stuck, *others]}
        assert wait_for(lambda: len(_hung(log)) == 1, timeout=30), _stderr(proc)
        assert wait_for(lambda: set(read_log(str(log))) == sent, timeout=30), _stderr(proc)
        proc.send_signal(signal.SIGTERM)
        assert wait_for(lambda: "SIGTERM received" in _stderr(proc), timeout=20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM, _stderr(proc)
    row = _row(app, "rec_a", stuck)
    assert (row.status, row.claim_token, row.lease_expiries) == ("Error", None, 0)
    assert row.last_error == "interrupted by SystemExit while sending"
    assert set(read_log(str(log))) == sent
    # rec_a's queued sends were given back: due again, never tried
    assert _statuses(app) == Counter({"Sent": 6, "Wait": 5, "Error": 1})
    assert _leased(app) == 0
