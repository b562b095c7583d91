"""What scheduling costs when publishing.

Run from the repository root::

    python bench/schedule.py                  # SQLite (file) and PostgreSQL
    python bench/schedule.py --only sqlite    # one backend

1. A scheduled emit. Single-user ``notice_event(..., deliver_at=1 hour)`` calls/s
   against the same call without ``deliver_at`` (the reference), both with
   ``NOTICE_DISPATCH="none"`` so neither sends: the difference is the scheduler's
   decision and its separate delivery insert. Target: ratio >= 0.8.
2. Quiet hours on a fan-out. One 10,000-recipient ``notice_event`` (dispatch none) when
   every recipient stored quiet hours (half of them inside their window, in four
   zones) against the same fan-out with no quiet hours stored (the reference: one
   "any stored?" query, then none). Prints how many deliveries were held back
   (expected: half of each measured fan-out). Target: one query per 10,000
   recipients, ratio >= 0.5.

Each pair is measured alternately in the same run; medians are printed with the ratio.
PostgreSQL runs in a private database created in the ``test`` cluster on 127.0.0.1
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database  # noqa: E402
from notice import Notices, NoticeType, notice_event  # noqa: E402
from notice.store import schedule as schedule_store  # noqa: E402

FAN_OUT = 10_000
ROUNDS = 5
SINGLE_SECONDS = 1.0
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


def make_app(url: str) -> Flask:
    app = Flask("bench_schedule")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="bench",
        NOTICE_SENDERS=["memory"],
        NOTICE_DISPATCH="none",
        NOTICE_QUIET_HOURS_CHANNELS=["memory"],
        NOTICE_STREAM=False,
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    app.notices = notices  # type: ignore[attr-defined]
    with app.app_context():
        db.create_all()
    return app


def calls_per_second(call: Any) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < SINGLE_SECONDS:
        call()
        calls += 1
    return calls / (time.perf_counter() - start)


def single(app: Flask) -> tuple[float, float]:
    def plain() -> None:
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")

    def scheduled() -> None:
        notice_event(1, NoticeType.COMMENT, subject="s", content="c", deliver_at=timedelta(hours=1))

    ref: list[float] = []
    got: list[float] = []
    with app.app_context():
        plain(), scheduled()  # warm up the statement caches
        for _ in range(ROUNDS):
            ref.append(calls_per_second(plain))
            got.append(calls_per_second(scheduled))
    return statistics.median(ref), statistics.median(got)


def _windows(users: range) -> list[tuple[int, str, str, str]]:
    """Quiet hours for every user; every other one's window holds the current time."""
    rows = []
    for u in users:
        tz = ZONES[u % len(ZONES)]
        local = datetime.now(ZoneInfo(tz))
        if u % 2:
            start, end = local - timedelta(hours=1), local + timedelta(hours=1)
        else:
            start, end = local + timedelta(hours=2), local + timedelta(hours=3)
        rows.append((u, tz, start.strftime("%H:%M"), end.strftime("%H:%M")))
    return rows


def fan_out(app: Flask) -> tuple[float, float, int]:
    users = range(1, FAN_OUT + 1)
    notices = app.notices  # type: ignore[attr-defined]
    quiet_table = notices.preference_models.QuietHours.__table__
    now = datetime.now(timezone.utc)
    with app.app_context():
        rows = [
            {
                "user_id": u,
                "timezone": tz,
                "start_minute": int(s[:2]) * 60 + int(s[3:]),
                "end_minute": int(e[:2]) * 60 + int(e[3:]),
                "update_at": now,
            }
            for u, tz, s, e in _windows(users)
        ]
        session = notices.db.session
        ref: list[float] = []
        got: list[float] = []
        for _ in range(ROUNDS):
            session.execute(sa.delete(quiet_table))
            session.commit()
            # forget what the publish cache knows, both ways: the reference asks once
            # and finds none stored; the measured run asks and finds them
            schedule_store._stored.clear()
            start = time.perf_counter()
            notice_event(list(users), NoticeType.COMMENT, subject="s", content="c")
            ref.append(FAN_OUT / (time.perf_counter() - start))
            session.execute(quiet_table.insert(), rows)
            session.commit()
            schedule_store._stored.clear()
            start = time.perf_counter()
            notice_event(list(users), NoticeType.COMMENT, subject="s", content="c")
            got.append(FAN_OUT / (time.perf_counter() - start))
        delivery = notices.Delivery.__table__
        # every other recipient's window holds the publish time: ROUNDS x FAN_OUT / 2
        held = session.execute(
            sa.select(sa.func.count()).where(
                delivery.c.create_at >= now,
                delivery.c.next_attempt_at > now + timedelta(minutes=1),
            )
        ).scalar_one()
    return statistics.median(ref), statistics.median(got), int(held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql"):
        if args.only and kind != args.only:
            continue
        with database(kind) as url:
            app = make_app(url)
            ref, got = single(app)
            print(
                f"{kind}: scheduled emit {got:,.0f} calls/s vs plain {ref:,.0f} calls/s "
                f"(ratio {got / ref:.2f})"
            )
            ref, got, held = fan_out(app)
            print(
                f"{kind}: fan-out with quiet hours {got:,.0f} rows/s vs none stored "
                f"{ref:,.0f} rows/s (ratio {got / ref:.2f}); {held:,} deliveries held back "
                f"(expected: {ROUNDS * FAN_OUT // 2:,})"
            )
            with app.app_context():
                app.notices.db.engine.dispose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
