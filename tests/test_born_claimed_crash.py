"""The born-claimed path under a crash: a publisher with sync or thread dispatch killed
(-9) while it sends its own fan-out; concurrent sweeper processes finish the rest once the lease
runs out. Nothing is lost; only the batch in flight may be sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.sweepapp import RECORDING_SENDERS, read_log
from tests.support.waiting import wait_for
from tests.test_sweeper_concurrency import CHANNELS, _app, _statuses, _stderr, _worker

ROOT = Path(__file__).resolve().parent.parent
USERS = 200
BATCH = 50
LEASE = 4

PUBLISHER = """
import os, sys, time
sys.path.insert(0, {root!r})
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from notice import Notices, notice_event

app = Flask("publisher")
app.config.update(
    SQLALCHEMY_DATABASE_URI={url!r}, NOTICE_SENDERS={senders!r}, NOTICE_STREAM=False,
    NOTICE_DISPATCH={dispatch!r}, NOTICE_THREADS=1, NOTICE_BATCH_SIZE={batch},
    NOTICE_CLAIM_TIMEOUT={lease}, NOTICE_SEND_TIMEOUT=1,
)
db = SQLAlchemy()
notices = Notices(db=db)
db.init_app(app)
notices.init_app(app)
with app.app_context():
    notice_event(list(range(1, {users} + 1)), subject="crash", content="", channels={channels!r})
time.sleep(60)  # a thread dispatcher sends in the background until the kill
"""


@pytest.mark.parametrize("dispatch", ["sync", "thread"])
def test_a_publisher_killed_mid_send_leaves_its_deliveries_to_the_sweepers(
    app_factory, db_url, tmp_path, dispatch
):
    app = _app(app_factory)  # creates the tables
    log = tmp_path / "sent.log"
    script = PUBLISHER.format(
        root=str(ROOT),
        url=db_url,
        dispatch=dispatch,
        senders=RECORDING_SENDERS,
        batch=BATCH,
        lease=LEASE,
        users=USERS,
        channels=CHANNELS,
    )
    env = {**os.environ, "NOTICE_TEST_LOG": str(log), "NOTICE_TEST_SEND_DELAY": "0.005"}
    err = tmp_path / "publisher.err"
    with err.open("w") as stderr:
        publisher = subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stderr=stderr
        )
    try:
        # the write committed and some batches went out: kill it inside a later one
        sent = wait_for(lambda: len(read_log(str(log))) >= 2 * BATCH + 10, timeout=60)
        assert sent, err.read_text()
        publisher.send_signal(signal.SIGKILL)
        publisher.wait(timeout=10)
    finally:
        if publisher.poll() is None:
            publisher.kill()
    assert publisher.returncode == -signal.SIGKILL
    total = USERS * len(CHANNELS)
    statuses = _statuses(app)
    assert sum(statuses.values()) == total  # every row was written before any send
    # the unsent rows are still the dead publisher's: born leased, not given back
    d = app.notices.Delivery.__table__
    with app.app_context(), app.db.engine.connect() as conn:
        leased = conn.execute(
            sa.select(sa.func.count()).where(d.c.status == "Wait", d.c.claim_token.is_not(None))
        ).scalar_one()
    assert 0 < leased <= statuses["Wait"]
    with app.app_context():
        ids = [n.id for n in app.notices.Notice.query]
    expected = {(c, i) for i in ids for c in CHANNELS}
    sent_before = Counter(read_log(str(log)))
    workers = [
        _worker(
            db_url,
            log,
            "0.2",
            NOTICE_TEST_BATCH="50",
            NOTICE_TEST_CLAIM_TIMEOUT=str(LEASE),
            NOTICE_TEST_SEND_TIMEOUT="1",
        )
        for _ in range(4)
    ]
    procs = [w.__enter__() for w in workers]
    try:
        done = wait_for(lambda: _statuses(app) == Counter({"Sent": total}), timeout=90)
        assert done, [_stderr(p) for p in procs]
    finally:
        for w in workers:
            w.__exit__(None, None, None)
    counts = Counter(read_log(str(log)))
    duplicates = sum(n - 1 for n in counts.values())
    print(
        f"\nborn claimed ({dispatch}), publisher killed: {leased} left leased, "
        f"{duplicates} sent twice"
    )
    assert set(counts) == expected  # zero lost
    # sent twice: only what the killed batch had sent without recording it
    assert duplicates <= BATCH
    assert set(counts) - set(sent_before)  # the sweepers did send the rest
    with app.app_context(), app.db.engine.connect() as conn:
        lost_leases = conn.execute(
            sa.select(sa.func.count()).where(d.c.lease_expiries > 0)
        ).scalar_one()
    assert lost_leases >= 1
