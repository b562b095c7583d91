"""How fast the unread count and the badge counts are, with 1,000,000 notices over
10,000 users.

Run from the repository root::

    python bench/unread.py                  # SQLite (file) and PostgreSQL
    python bench/unread.py --only sqlite    # one backend

For each database it bulk-loads the notices (SQLite: ``executemany`` in one
transaction; PostgreSQL: ``COPY``), about 10 % unread, then times, on one SQLAlchemy
session, ``notice.store.unread_count`` (the query behind ``notices.unread_count``, the
badge and the ``count`` events) for random users, against a reference measured the
same way in the same run: the ``SELECT 1`` round trip. It prints the medians, the
p99, the ratio to the reference and the query plan. Target: median <= 1 ms.

It also times ``notice.store.badge_count`` (unread and unseen in one statement: what
the count API, the mark answers and the stream's ``count`` events send since issue
17), which reads ``seen_at`` from the unread rows, so it is not index-only: printed
as its ratio to ``unread_count`` and to ``SELECT 1``. About 10 % of the unread
notices are left unseen.

PostgreSQL runs in a private database created in the ``test`` cluster on 127.0.0.1 and
dropped afterwards. The run takes about a minute.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, percentile  # noqa: E402
from notice import Notices  # noqa: E402
from notice.store import badge_count, unread_count  # noqa: E402

COLUMNS = (
    "user_id",
    "subject",
    "content",
    "notice_type",
    "read_status",
    "send_status",
    "create_at",
    "update_at",
    "seen_at",
)


def rows(notices: int, users: int, unread: float, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rnd = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(notices):
        when = start + timedelta(seconds=i)
        status = "Unread" if rnd.random() < unread else "Read"
        seen = None if status == "Unread" and rnd.random() < 0.1 else when
        yield (
            rnd.randrange(1, users + 1),
            f"subject {i}",
            "",
            "Comment",
            status,
            "Sent",
            when,
            when,
            seen,
        )


def make_app(url: str) -> tuple[Flask, Any]:
    app = Flask("bench_unread")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, NOTICE_SENDERS=[], NOTICE_WEB=False)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    with app.app_context():
        db.create_all()
    return app, notices


def load_sqlite(path: str, data: Iterator[tuple[Any, ...]]) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    marks = ", ".join("?" for _ in COLUMNS)
    naive = (
        (*r[:6], *(None if t is None else t.replace(tzinfo=None) for t in r[6:])) for r in data
    )
    with conn:
        conn.executemany(f"INSERT INTO notice ({', '.join(COLUMNS)}) VALUES ({marks})", naive)
    conn.execute("ANALYZE")
    conn.close()


def load_pg(url: str, data: Iterator[tuple[Any, ...]]) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"COPY notice ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in data:
                    copy.write_row(row)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the visibility map makes the count an index-only scan, as autovacuum would
        conn.execute("VACUUM ANALYZE notice")


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def measure(name: str, url: str, args: argparse.Namespace) -> None:
    app, notices = make_app(url)
    started = time.perf_counter()
    data = rows(args.notices, args.users, args.unread)
    (load_sqlite(url.removeprefix("sqlite:///"), data) if name == "sqlite" else load_pg(url, data))
    loaded = time.perf_counter() - started
    rnd = random.Random(11)
    users = [rnd.randrange(1, args.users + 1) for _ in range(args.queries)]
    with app.app_context():
        engine = notices.db.engine
        with Session(engine) as session:
            Notice = notices.Notice
            total = session.execute(sa.select(sa.func.count()).select_from(Notice)).scalar()
            it = iter(users * 2)
            # warm the cache and the connection the way a running app would be
            timed(lambda: unread_count(session, Notice, next(it)), args.queries)
            counts = timed(lambda: unread_count(session, Notice, next(it)), args.queries)
            it = iter(users * 2)
            timed(lambda: badge_count(session, Notice, next(it)), args.queries)
            badges = timed(lambda: badge_count(session, Notice, next(it)), args.queries)
            ref = timed(lambda: session.execute(sa.text("SELECT 1")).scalar(), args.queries)
            stmt = (
                sa.select(sa.func.count())
                .select_from(Notice)
                .where(Notice.user_id == users[0], Notice.read_status == "Unread")
            )
            compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
            explain = "EXPLAIN QUERY PLAN " if name == "sqlite" else "EXPLAIN "
            plan = [str(r[-1]) for r in session.execute(sa.text(explain + str(compiled)))]
        engine.dispose()
    med, med_ref = statistics.median(counts), statistics.median(ref)
    p99, p99_ref = percentile(counts, 99), percentile(ref, 99)
    print(f"\n{name}: {total:,} notices over {args.users:,} users loaded in {loaded:.1f} s")
    print(f"  unread_count   median {med * 1e3:7.3f} ms   p99 {p99 * 1e3:7.3f} ms")
    med_b, p99_b = statistics.median(badges), percentile(badges, 99)
    print(f"  badge_count    median {med_b * 1e3:7.3f} ms   p99 {p99_b * 1e3:7.3f} ms")
    print(f"  SELECT 1 (ref) median {med_ref * 1e3:7.3f} ms   p99 {p99_ref * 1e3:7.3f} ms")
    print(
        f"  ratio badge_count / unread_count (median): {med_b / med:.2f}x;"
        f" badge_count / SELECT 1: {med_b / med_ref:.2f}x"
    )
    print(f"  ratio unread_count / SELECT 1 (median): {med / med_ref:.2f}x")
    print(f"  target median <= 1 ms: {'met' if max(med, med_b) <= 0.001 else 'NOT met'}")
    print("  plan: " + " | ".join(p.strip() for p in plan[:3]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--notices", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--unread", type=float, default=0.1, help="share of unread notices")
    parser.add_argument("--queries", type=int, default=2_000)
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql"):
        if args.only in (None, kind):
            with database(kind) as url:
                measure(kind, url, args)


if __name__ == "__main__":
    main()
