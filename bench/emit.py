"""How fast ``notice_event`` writes and sends, against raw ``executemany`` inserts.

Run from the repository root::

    python bench/emit.py                 # SQLite (file) and PostgreSQL
    python bench/emit.py --only sqlite   # one backend

For each database it prints, measured in this run on this machine:

* single ``notice_event`` calls/s (sync dispatch, memory sender: write, commit, claim,
  send, record);
* fan-out rows/s: one ``notice_event`` to 10,000 recipients, deliveries included;
* the reference: the DBAPI driver's own ``executemany`` (sqlite3 / psycopg) inserting
  10,000 equivalent rows into a plain table with the notice table's columns;

* single calls/s with dispatch none and thread (what the caller waits for);
* the single-emit floor: raw driver SQL on the same tables doing what a sync emit must
  (insert notice + leased delivery, commit; send; mark both sent, commit);

and the ratios against them. Targets: single sync >= 0.5 of the 2-commit floor; fan-out
write only >= 30 % of raw, sync fan-out >= 15 % of raw. ``--memory`` instead prints the
peak RSS of a 10,000 and a 100,000-recipient fan-out, each in a fresh subprocess
(target: 100k <= 1.5x 10k). DNH comparisons live in ``bench/peer.py``.
PostgreSQL runs in a private database created in the ``test`` cluster on 127.0.0.1 and
dropped afterwards (``--pg-admin-url`` to change). Each figure is the best of three
rounds that take every measurement, references included, in turn (the load of a shared
machine drifts; the ratios should not); the whole run takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notice import Notices, NoticeType, notice_event  # noqa: E402

FAN_OUT = 10_000
REPEAT = 3
SINGLE_SECONDS = 2.0

RAW_COLUMNS = (
    "user_id, sender_id, subject, content, notice_type, read_status, send_status, url, "
    "data, dedupe_key, expires_at, read_at, emailed_at, create_at, update_at"
)


def raw_row(user_id: int, now: Any) -> tuple[Any, ...]:
    """The values ``notice_event`` writes for one recipient (JSON data as text)."""
    return (
        user_id,
        2,
        "Ana commented on your post",
        "Nice work!",
        "Comment",
        "Unread",
        "Wait",
        "/posts/3#c9",
        json.dumps({"post": 3}),
        None,
        None,
        None,
        None,
        now,
        now,
    )


# --- the reference: the driver's executemany --------------------------------------


@contextmanager
def raw_sqlite(path: str) -> Iterator[Callable[[], float]]:
    """One run of the reference at a time (seconds), on a connection of its own."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE raw_notice (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, "
        "sender_id INTEGER, subject VARCHAR(255) NOT NULL, content TEXT NOT NULL, "
        "notice_type VARCHAR(32) NOT NULL, read_status VARCHAR(8) NOT NULL, "
        "send_status VARCHAR(8) NOT NULL, url VARCHAR(2048), data JSON, "
        "dedupe_key VARCHAR(255), expires_at DATETIME, read_at DATETIME, "
        "emailed_at DATETIME, create_at DATETIME NOT NULL, update_at DATETIME NOT NULL)"
    )
    conn.commit()
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(" ")
    sql = f"INSERT INTO raw_notice ({RAW_COLUMNS}) VALUES ({', '.join('?' * 15)})"

    def once() -> float:
        rows = [raw_row(u, now) for u in range(FAN_OUT)]
        start = time.perf_counter()
        conn.executemany(sql, rows)
        conn.commit()
        return time.perf_counter() - start

    try:
        yield once
    finally:
        conn.close()


@contextmanager
def raw_postgres(url: str) -> Iterator[Callable[[], float]]:
    """One run of the reference at a time (seconds), on a connection of its own."""
    import psycopg

    dsn = sa.make_url(url).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        conn.execute(
            "CREATE TABLE raw_notice (id BIGSERIAL PRIMARY KEY, user_id INTEGER NOT NULL, "
            "sender_id INTEGER, subject VARCHAR(255) NOT NULL, content TEXT NOT NULL, "
            "notice_type VARCHAR(32) NOT NULL, read_status VARCHAR(8) NOT NULL, "
            "send_status VARCHAR(8) NOT NULL, url VARCHAR(2048), data JSON, "
            "dedupe_key VARCHAR(255), expires_at TIMESTAMPTZ, read_at TIMESTAMPTZ, "
            "emailed_at TIMESTAMPTZ, create_at TIMESTAMPTZ NOT NULL, "
            "update_at TIMESTAMPTZ NOT NULL)"
        )
        conn.commit()
        now = datetime.now(timezone.utc)
        sql = f"INSERT INTO raw_notice ({RAW_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"

        def once() -> float:
            rows = [raw_row(u, now) for u in range(FAN_OUT)]
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.executemany(sql, rows)
            conn.commit()
            return time.perf_counter() - start

        yield once


# --- notice -------------------------------------------------------------------------


def make_app(url: str, **config: Any) -> Flask:
    app = Flask("bench_emit")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        NOTICE_SENDERS=["memory"],
        NOTICE_DISPATCH="sync",
        # the core alone: no live-stream channel (the web layer's own cost)
        NOTICE_STREAM=False,
    )
    app.config.update(config)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    app.extensions["bench"] = (db, notices)
    with app.app_context():
        db.create_all()
    return app


def publish(user_id: Any) -> Any:
    return notice_event(
        user_id,
        NoticeType.COMMENT,
        subject="Ana commented on your post",
        content="Nice work!",
        url="/posts/3#c9",
        sender_id=2,
        data={"post": 3},
    )


def single_calls_per_second(app: Flask) -> float:
    with app.app_context():
        memory = app.extensions["bench"][1].sender("memory")
        for u in range(20):  # warm up connections and statement caches
            publish(u)
        calls = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SINGLE_SECONDS:
            publish(calls % 1000)
            calls += 1
        memory.reset()
        return calls / elapsed


def floor_calls_per_second(app: Flask) -> float:
    """The 2-commit floor: raw driver SQL on the app's own tables doing what a sync emit
    has to (notice + delivery already leased in one commit, the send, both marked sent in
    a second commit), with nothing else around it."""
    with app.app_context():
        engine = app.extensions["bench"][0].engine
        pg = engine.dialect.name == "postgresql"
        raw = engine.raw_connection()
    q = "%s" if pg else "?"
    now: Any = datetime.now(timezone.utc)
    if not pg:
        now = now.replace(tzinfo=None).isoformat(" ")
    insert_notice = (
        f"INSERT INTO notice ({RAW_COLUMNS}) VALUES ({', '.join([q] * 15)}) RETURNING id"
    )
    insert_delivery = (
        "INSERT INTO notice_delivery (notice_id, channel, target, status, attempts, "
        "lease_expiries, next_attempt_at, claimed_until, claim_token, create_at, update_at) "
        f"VALUES ({q}, 'memory', '', 'Wait', 1, 0, {q}, {q}, 'tok', {q}, {q}) RETURNING id"
    )
    mark_sent = (
        f"UPDATE notice_delivery SET status = 'Sent', sent_at = {q}, claimed_until = NULL, "
        f"claim_token = NULL WHERE id = {q} AND claim_token = 'tok'"
    )
    roll_up = f"UPDATE notice SET send_status = 'Sent', update_at = {q} WHERE id = {q}"
    outbox: list[tuple[int, int]] = []

    def once(user_id: int) -> None:
        cur = raw.cursor()
        cur.execute(insert_notice, raw_row(user_id, now))
        notice_id = cur.fetchone()[0]
        cur.execute(insert_delivery, (notice_id, now, now, now, now))
        delivery_id = cur.fetchone()[0]
        raw.commit()
        outbox.append((notice_id, delivery_id))  # the send
        cur.execute(mark_sent, (now, delivery_id))
        cur.execute(roll_up, (now, notice_id))
        raw.commit()
        cur.close()

    try:
        for u in range(20):
            once(u)
        calls = 0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SINGLE_SECONDS:
            once(calls % 1000)
            calls += 1
        return calls / elapsed
    finally:
        raw.close()


def fan_out_once(app: Flask) -> float:
    """Seconds of one ``notice_event`` to :data:`FAN_OUT` recipients."""
    sends = app.config["NOTICE_DISPATCH"] == "sync"
    with app.app_context():
        memory = app.extensions["bench"][1].sender("memory")
        memory.reset()
        start = time.perf_counter()
        ids = publish(range(FAN_OUT))
        elapsed = time.perf_counter() - start
        if len(ids) != FAN_OUT or len(memory.outbox) != (FAN_OUT if sends else 0):
            raise SystemExit("fan-out did not write and send every notice")
        return elapsed


def fan_out_rate(app: Flask) -> float:
    return FAN_OUT / fan_out_once(app)


def warm_up_fan_out(app: Flask) -> None:
    fan_out_once(app)
    with app.app_context():
        db = app.extensions["bench"][0]
        if db.engine.dialect.name == "postgresql":
            # fresh tables have no planner statistics yet; autovacuum would gather them
            # on a live server, and without them PostgreSQL seq-scans the deliveries
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("ANALYZE notice; ANALYZE notice_delivery")


#: single-emit variants measured besides sync dispatch: what the caller waits for
SINGLE_VARIANTS = {
    "single, dispatch none (write only)": {"NOTICE_DISPATCH": "none"},
    "single, dispatch thread": {"NOTICE_DISPATCH": "thread"},
}

#: fan-out variants measured besides the default configuration
VARIANTS = {
    "fan-out, NOTICE_BATCH_SIZE=2000": {"NOTICE_BATCH_SIZE": 2000},
    "fan-out write only (dispatch none)": {"NOTICE_DISPATCH": "none"},
}


def run_notice(url: str, raw_once: Callable[[], float]) -> dict[str, float]:
    """Every measurement of one database, by label (calls/s or rows/s; "raw": the
    reference's rows/s).

    Taken in :data:`REPEAT` rounds, each measuring everything once in turn, the best of
    each kept: on a shared machine the load drifts over a run, and measuring each figure
    only apart from its reference would put the drift into the ratios.
    """
    configs = {"sync": {}, **SINGLE_VARIANTS, **VARIANTS}
    apps = {name: make_app(url, **config) for name, config in configs.items()}
    fan_outs = ["sync", *VARIANTS]
    steps: dict[str, Callable[[], float]] = {
        "raw": lambda: FAN_OUT / raw_once(),
        "floor": lambda: floor_calls_per_second(apps["sync"]),
        "single sync": lambda: single_calls_per_second(apps["sync"]),
        **{name: partial(single_calls_per_second, apps[name]) for name in SINGLE_VARIANTS},
        **{
            ("fan-out sync" if name == "sync" else name): partial(fan_out_rate, apps[name])
            for name in fan_outs
        },
    }
    try:
        for name in fan_outs:
            warm_up_fan_out(apps[name])
        out: dict[str, float] = {}
        for _ in range(REPEAT):
            for label, step in steps.items():
                out[label] = max(out.get(label, 0.0), step())
        return out
    finally:
        for app in apps.values():
            app.extensions["notice"].state(app).dispatcher.shutdown()
            with app.app_context():
                app.extensions["bench"][0].engine.dispose()


# --- databases ----------------------------------------------------------------------


@contextmanager
def sqlite_urls() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="notice-bench-") as tmp:
        yield f"sqlite:///{tmp}/notice.db", f"{tmp}/raw.db"


@contextmanager
def postgres_urls(admin_url: str) -> Iterator[tuple[str, str]]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names = [f"notice_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}_{i}" for i in (0, 1)]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.make_url(admin_url)
    try:
        yield tuple(  # type: ignore[misc]
            base.set(database=n).render_as_string(hide_password=False) for n in names
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def report(label: str, m: dict[str, float]) -> None:
    raw_rate, floor = m["raw"], m["floor"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"{label}:")
    print(f"  raw executemany insert ({FAN_OUT:,} rows)     {raw_rate:10,.0f} rows/s  (reference)")
    print(f"  raw 2-commit single-emit floor          {floor:10,.0f} calls/s (reference)")
    single = m["single sync"]
    print(
        f"  single notice_event, sync, memory       {single:10,.0f} calls/s "
        f"{single / floor:5.2f}x floor (target >= 0.5: {verdict(single >= 0.5 * floor)})"
    )
    for name in SINGLE_VARIANTS:
        rate = m[name]
        print(f"  {name:<40}{rate:10,.0f} calls/s {rate / floor:5.2f}x floor")
    fan = m["fan-out sync"]
    print(
        f"  fan-out {FAN_OUT:,}, sync, memory sender     {fan:10,.0f} rows/s  "
        f"{fan / raw_rate:6.1%} of raw (target >= 15%: {verdict(fan >= 0.15 * raw_rate)})"
    )
    for name in VARIANTS:
        rate = m[name]
        target = ""
        if "write only" in name:
            target = f" (target >= 30%: {verdict(rate >= 0.3 * raw_rate)})"
        print(f"  {name:<40}{rate:10,.0f} rows/s  {rate / raw_rate:6.1%} of raw{target}")


def peak_rss_kib(url: str, recipients: int) -> int:
    """Peak RSS (KiB) of a fresh process that sets up the app and fans out once."""
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(recipients), "--url", url],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


def rss_child(url: str, recipients: int) -> None:
    import resource

    app = make_app(url)
    with app.app_context():
        # a no-op send: the memory sender's outbox would itself grow with recipients
        app.extensions["bench"][1].sender("memory").send_to = lambda notice, target: None
        publish(range(recipients))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def memory_report(label: str, url_for: Callable[[int], str]) -> None:
    small, large = (peak_rss_kib(url_for(n), n) for n in (FAN_OUT, 10 * FAN_OUT))
    print(f"{label}: peak RSS of one fan-out, fresh process each")
    print(f"  {FAN_OUT:>7,} recipients {small / 1024:8.1f} MiB (reference)")
    print(
        f"  {10 * FAN_OUT:>7,} recipients {large / 1024:8.1f} MiB  {large / small:4.2f}x "
        f"(target <= 1.5x: {'met' if large <= 1.5 * small else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--memory", action="store_true", help="peak RSS, 10k vs 100k")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument(
        "--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.url, args.rss_child)
        return
    if args.memory:
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory(prefix="notice-bench-") as tmp:
                memory_report("SQLite", lambda n: f"sqlite:///{tmp}/rss{n}.db")
        if args.only in (None, "postgresql"):
            with postgres_urls(args.pg_admin_url) as (url, _):
                memory_report("PostgreSQL", lambda n: url)
        return
    print(
        f"fan-out of {FAN_OUT:,}; single calls for {SINGLE_SECONDS:.0f} s; best of "
        f"{REPEAT} rounds, each figure and its references taken in turn"
    )
    if args.only in (None, "sqlite"):
        with sqlite_urls() as (url, raw_path), raw_sqlite(raw_path) as raw_once:
            report("SQLite (file, WAL)", run_notice(url, raw_once))
    if args.only in (None, "postgresql"):
        with postgres_urls(args.pg_admin_url) as (url, raw_url), raw_postgres(raw_url) as raw_once:
            report("PostgreSQL (127.0.0.1, psycopg 3)", run_notice(url, raw_once))


if __name__ == "__main__":
    main()
