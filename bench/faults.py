"""Delivery under ordinary production faults, on PostgreSQL.

Run from the repository root (loopback only; PostgreSQL on 127.0.0.1:5432)::

    python bench/faults.py            # 2,000 deliveries
    python bench/faults.py --short    # 200 deliveries, well under a minute; exits non-zero
                                      # when a delivery is lost or sent twice too often
                                      # (tests/test_faults_short.py)

Two ``flask notice worker`` processes (the app of ``bench/faults_app.py``) deliver N
due deliveries from a private database while, at the same time:

- 1 % of sends hang past ``NOTICE_SEND_TIMEOUT`` and then fail (they end Dead);
- a thread terminates the workers' database connections (``pg_terminate_backend``)
  every ``--kill-every`` seconds;
- a thread marks all notices of the same users read and unread again in a loop;
- once a third of the deliveries are done, one worker is killed with SIGKILL and a
  new one started in its place.

Printed: lost deliveries (must be 0: every delivery ends Sent or Dead, and every Sent
one was recorded by the sender), duplicates (deliveries sent more than once; must be
at most the killed worker's in-flight batch, which is at most ``NOTICE_BATCH_SIZE``),
deadlocks seen by the "mark all read" loop and in the workers' logs, poison rows (Dead
after repeated lease expiries), Dead after timeouts, the time until every delivery was
final, and, as the reference measured in the same run, the same deliveries sent by one
worker with no faults (ratio = faulty / clean).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import pg_database  # noqa: E402
from bench.faults_app import WORKER_APP_NAME  # noqa: E402

USERS = 20


def _env(url: str, log: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FAULTS_DB_URL": url, "FAULTS_LOG": str(log), **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _worker(url: str, log: Path, err: Path, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "bench.faults_app",
            "notice",
            "worker",
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        env=_env(url, log, **extra),
        stdout=subprocess.DEVNULL,
        stderr=open(err, "ab"),  # noqa: SIM115 - closed with the process
    )


def _fill(url: str, n: int) -> None:
    """``n`` notices for :data:`USERS` users, one due delivery each."""
    os.environ["FAULTS_DB_URL"] = url
    from bench.faults_app import create_app
    from notice import notice_event

    app = create_app("notice-faults-fill")
    with app.app_context():
        db = app.extensions["sqlalchemy"]
        db.create_all()
        users = [1 + i % USERS for i in range(n)]
        notice_event(users, subject="fault drill", content="")
        db.engine.dispose()


def _counts(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT status, count(*) FROM notice_delivery GROUP BY status")
        return Counter({status: int(count) for status, count in rows})


def _read_log(log: Path) -> Counter[int]:
    if not log.exists():
        return Counter()
    return Counter(int(line.split()[1]) for line in log.read_text().splitlines() if line.strip())


def _clean_reference(url: str, n: int, tmp: Path) -> float:
    """Seconds one worker takes for the same deliveries with no faults at all."""
    log = tmp / "clean.log"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE notice_delivery SET status = 'Wait', attempts = 0, claimed_until = NULL,"
            " claim_token = NULL, next_attempt_at = now() - interval '1 second'"
        )
    start = time.monotonic()
    proc = _worker(url, log, tmp / "clean.err", FAULTS_HANG_EVERY="0")
    try:
        while _counts(engine).get("Sent", 0) < n and time.monotonic() - start < 300:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        engine.dispose()
    return time.monotonic() - start


def run(n: int, kill_every: float, limit: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="notice-faults-"))
    log = tmp / "sends.log"
    with pg_database() as url:
        _fill(url, n)
        engine = sa.create_engine(url, pool_size=2)
        stop = threading.Event()
        deadlocks = Counter[str]()

        def terminate_backends() -> None:
            admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            while not stop.wait(kill_every):
                try:
                    with admin.connect() as conn:
                        conn.exec_driver_sql(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = %(name)s",
                            {"name": WORKER_APP_NAME},
                        )
                except sa.exc.DBAPIError:
                    pass
            admin.dispose()

        def mark_all_read() -> None:
            os.environ["FAULTS_DB_URL"] = url
            from bench.faults_app import create_app

            app = create_app("notice-faults-reader")
            notices = app.extensions["notice"]
            user = 0
            while not stop.is_set():
                user = 1 + user % USERS
                with app.app_context():
                    try:
                        notices.mark_read(user)
                        notices.mark_unread(user)
                    except sa.exc.DBAPIError as exc:
                        deadlocks["reader" if "deadlock" in str(exc) else "reader-other"] += 1
                        app.extensions["sqlalchemy"].session.rollback()
            with app.app_context():
                app.extensions["sqlalchemy"].engine.dispose()

        threads = [
            threading.Thread(target=terminate_backends, daemon=True),
            threading.Thread(target=mark_all_read, daemon=True),
        ]
        start = time.monotonic()
        workers = [_worker(url, log, tmp / f"worker{i}.err") for i in range(2)]
        for t in threads:
            t.start()
        killed_in_flight = -1
        try:
            while time.monotonic() - start < limit:
                counts = _counts(engine)
                final = counts.get("Sent", 0) + counts.get("Dead", 0) + counts.get("Skipped", 0)
                if killed_in_flight < 0 and final >= n // 3:
                    with engine.connect() as conn:
                        killed_in_flight = int(
                            conn.exec_driver_sql(
                                "SELECT count(*) FROM notice_delivery WHERE claimed_until > now()"
                            ).scalar_one()
                        )
                    workers[0].send_signal(signal.SIGKILL)
                    workers[0].wait()
                    workers[0] = _worker(url, log, tmp / "worker2.err")
                if final >= n:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - start
        finally:
            stop.set()
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    w.kill()
            for t in threads:
                t.join(timeout=10)
        counts = _counts(engine)
        sends = _read_log(log)
        with engine.connect() as conn:
            sent_ids = {
                int(r[0])
                for r in conn.exec_driver_sql(
                    "SELECT notice_id FROM notice_delivery WHERE status = 'Sent'"
                )
            }
            dead = list(
                conn.exec_driver_sql("SELECT last_error FROM notice_delivery WHERE status = 'Dead'")
            )
        engine.dispose()
        for err in tmp.glob("worker*.err"):
            deadlocks["workers"] += err.read_text(errors="replace").count("deadlock detected")
        pending = counts.get("Wait", 0) + counts.get("Error", 0)
        unrecorded = len([i for i in sent_ids if sends[i] == 0])
        poison = sum(1 for (e,) in dead if e and "lease" in e.lower())
        clean = _clean_reference(url, counts.get("Sent", 0), tmp) if not pending else float("nan")
    return {
        "deliveries": n,
        "statuses": dict(counts),
        "lost": pending + unrecorded,
        "duplicates": sum(1 for c in sends.values() if c > 1),
        "killed_in_flight": killed_in_flight,
        "deadlocks": dict(deadlocks),
        "poison_rows": poison,
        "dead_after_timeouts": len(dead) - poison,
        "seconds_until_final": round(elapsed, 2),
        "clean_reference_seconds": round(clean, 2),
        "ratio": round(elapsed / clean, 2) if clean == clean and clean else None,
        "workdir": str(tmp),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="200 deliveries, for the tests")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--kill-every", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    n = 200 if args.short else args.n
    result = run(n, args.kill_every, limit=90 if args.short else 600)
    bound = int(os.environ.get("FAULTS_BATCH", "20"))
    ok = result["lost"] == 0 and result["duplicates"] <= max(bound, result["killed_in_flight"])
    if args.json:
        print(json.dumps({**result, "ok": ok}))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
        print(f"{'duplicate bound':>24}: <= {bound} (NOTICE_BATCH_SIZE, the killed batch)")
        print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
