"""Sweeper throughput: deliveries/s for 1 and 4 worker processes, PostgreSQL and SQLite.

Each run fills ``notice_delivery`` with N due deliveries for a no-op sender, starts the
worker processes together, and times until every delivery is Sent. The reference, in
the same run and on the same rows, is the bare minimum a sweeper must do through the
DBAPI: ``UPDATE ... RETURNING`` claims of the same batch size (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and one ``UPDATE`` marking the
batch Sent. The ratio is what the library's claim, load, send, record and roll-up cost
on top of that.

    python bench/sweep.py [--n 20000] [--batch 200] [--workers 1,4] [--only postgresql]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get(
    "NOTICE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def make_app(url: str, batch: int) -> Any:
    os.environ.update(
        NOTICE_TEST_DB_URL=url,
        NOTICE_TEST_SENDERS="tests.support.sweepapp:NoopSender",
        NOTICE_TEST_BATCH=str(batch),
    )
    from tests.support.sweepapp import create_app

    return create_app()


def fill(url: str, n: int, batch: int) -> None:
    """Recreate the tables and insert ``n`` notices with one due delivery each."""
    app = make_app(url, batch)
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        db.drop_all()
        db.create_all()
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    "INSERT INTO notice (id, user_id, subject, content, notice_type, read_status,"
                    " send_status, create_at, update_at) SELECT g, g, 's', '', 'System', 'Unread',"
                    " 'Wait', now(), now() FROM generate_series(1, %(n)s) g",
                    {"n": n},
                )
                conn.exec_driver_sql(
                    "INSERT INTO notice_delivery (notice_id, channel, target, status, attempts,"
                    " next_attempt_at, create_at, update_at) SELECT g, 'noop', '', 'Wait', 0,"
                    " now() - interval '1 minute', now(), now() FROM generate_series(1, %(n)s) g",
                    {"n": n},
                )
                conn.exec_driver_sql("SELECT setval('notice_id_seq', %(n)s)", {"n": n})
            else:
                series = (
                    "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?)"
                )
                conn.exec_driver_sql(
                    f"{series} INSERT INTO notice (id, user_id, subject, content, notice_type,"
                    " read_status, send_status, create_at, update_at) SELECT i, i, 's', '',"
                    " 'System', 'Unread', 'Wait', datetime('now'), datetime('now') FROM g",
                    (n,),
                )
                conn.exec_driver_sql(
                    f"{series} INSERT INTO notice_delivery (notice_id, channel, target, status,"
                    " attempts, next_attempt_at, create_at, update_at) SELECT i, 'noop', '',"
                    " 'Wait', 0, datetime('now', '-1 minute'), datetime('now'), datetime('now')"
                    " FROM g",
                    (n,),
                )
        db.engine.dispose()


def _notice_worker(url: str, batch: int, ready: Any, go: Any, done: Any) -> None:
    from notice.sweeper import sweep

    app = make_app(url, batch)
    ready.put(os.getpid())
    go.wait()
    sent = 0
    while True:
        report = sweep(app, limit=batch)
        sent += report.sent
        if report.claimed < batch:
            break
    done.put(sent)


def _raw_worker(url: str, batch: int, ready: Any, go: Any, done: Any) -> None:
    pg = url.startswith("postgresql")
    if pg:
        import psycopg

        conn: Any = psycopg.connect(
            sa.make_url(url).set(drivername="postgresql").render_as_string(False)
        )
        mark = "%s"
        lock = "FOR UPDATE SKIP LOCKED"
        now = "now()"
        lease = "now() + interval '5 minutes'"
    else:
        import sqlite3

        conn = sqlite3.connect(sa.make_url(url).database or "", timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        mark = "?"
        lock = ""
        now = "datetime('now')"
        lease = "datetime('now', '+5 minutes')"
    claim = (
        f"UPDATE notice_delivery SET claimed_until = {lease}, claim_token = {mark},"
        " attempts = attempts + 1, update_at = " + now + " WHERE id IN (SELECT id FROM"
        " notice_delivery WHERE status IN ('Wait', 'Error') AND next_attempt_at <= " + now + ""
        " AND (claimed_until IS NULL OR claimed_until <= " + now + ") ORDER BY"
        f" next_attempt_at, id LIMIT {batch} {lock}) RETURNING id"
    )
    ready.put(os.getpid())
    go.wait()
    sent = 0
    while True:
        token = uuid.uuid4().hex
        if not pg:
            conn.execute("BEGIN IMMEDIATE")
        ids = [row[0] for row in conn.execute(claim, (token,)).fetchall()]
        conn.commit() if pg else conn.execute("COMMIT")
        if ids:
            marks = ", ".join([mark] * len(ids))
            if not pg:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE notice_delivery SET status = 'Sent', sent_at = " + now + ", claimed_until"
                f" = NULL, claim_token = NULL WHERE claim_token = {mark} AND id IN ({marks})",
                (token, *ids),
            )
            conn.commit() if pg else conn.execute("COMMIT")
        sent += len(ids)
        if len(ids) < batch:
            break
    conn.close()
    done.put(sent)


def run(target: Any, url: str, workers: int, batch: int, n: int) -> float:
    """Deliveries/s of ``workers`` processes running ``target`` over ``n`` due rows."""
    fill(url, n, batch)
    ctx = mp.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, args=(url, batch, ready, go, done)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    start = time.perf_counter()
    go.set()
    sent = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(timeout=30)
    if sent != n:
        raise SystemExit(f"expected {n} deliveries sent, got {sent}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="deliveries per run")
    parser.add_argument("--batch", type=int, default=200, help="NOTICE_BATCH_SIZE")
    parser.add_argument("--workers", default="1,4", help="worker process counts")
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    backends = [args.only] if args.only else ["postgresql", "sqlite"]
    tmp = tempfile.mkdtemp(prefix="bench_sweep_")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    pg_name = f"bench_sweep_{os.getpid()}"
    rows = []
    try:
        for backend in backends:
            if backend == "postgresql":
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'CREATE DATABASE "{pg_name}"')
                url = sa.make_url(PG_ADMIN_URL).set(database=pg_name).render_as_string(False)
            else:
                url = f"sqlite:///{tmp}/bench.db"
            for workers in counts:
                lib = run(_notice_worker, url, workers, args.batch, args.n)
                raw = run(_raw_worker, url, workers, args.batch, args.n)
                rows.append((backend, workers, lib, raw))
                print(
                    f"{backend:<10} workers={workers}  notice {lib:8.0f} deliveries/s   "
                    f"raw DBAPI claim+finish {raw:8.0f}/s   ratio {lib / raw:.2f}",
                    flush=True,
                )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        admin.dispose()
    print(f"\nn={args.n} per run, batch={args.batch}, cpus={os.cpu_count()}")
    for backend in backends:
        mine = {w: lib for b, w, lib, _ in rows if b == backend}
        if 1 in mine and len(mine) > 1:
            top = max(mine)
            print(f"{backend}: {top} workers / 1 worker = {mine[top] / mine[1]:.2f}x")
    pg4 = [(lib, raw) for b, w, lib, raw in rows if b == "postgresql" and w == 4]
    if pg4:
        lib, raw = pg4[0]
        verdict = "met" if lib >= 10_000 else "NOT met"
        print(
            f"target (issue 13) >= 10,000 deliveries/s with 4 workers on PostgreSQL: {verdict} "
            f"({lib:.0f}/s; {lib / raw:.2f}x the raw claim+finish loop's {raw:.0f}/s)"
        )


if __name__ == "__main__":
    main()
