"""What Prometheus metrics cost, on SQLite and PostgreSQL: publishing with metrics on
against the same app with them off, and one scrape of the backlog gauges against the
same grouped query as bare SQL.

1. ``publish``: notices/s of ``notice_event`` (the memory sender, sync dispatch, so
   each notice is also delivered, timed and counted) with ``NOTICE_METRICS = True``;
   reference: the same loop with metrics off, in the same run (alternated rounds,
   the best of each). A ratio near 1.0 means
   the signals and the timing proxy cost nothing that matters.
2. ``scrape``: seconds of one scrape of the app's registry with ``--pending`` pending
   deliveries; reference: the grouped backlog query as bare SQL text through the same
   engine (:data:`GROUPED`), so the ratio is what the collector, the app context and
   the text exposition add.

    python bench/metrics.py [--n 2000] [--pending 50000] [--rounds 3] [--only sqlite]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import database  # noqa: E402


def make_app(url: str, metrics: bool) -> Any:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    from notice import Notices

    app = Flask(f"bench_metrics_{metrics}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        NOTICE_SENDERS=["memory"],
        NOTICE_DISPATCH="sync",
        NOTICE_METRICS=metrics,
    )
    db = SQLAlchemy(app)
    Notices(app, db=db)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def publish_rate(url: str, n: int, metrics: bool) -> float:
    from notice import notice_event

    app = make_app(url, metrics)
    with app.app_context():
        notice_event(1, subject="warm-up", content="x")
        start = time.perf_counter()
        for i in range(n):
            notice_event(i % 50 + 1, subject=f"n{i}", content="x")
        elapsed = time.perf_counter() - start
        app.extensions["sqlalchemy"].engine.dispose()
    return n / elapsed


def scrape_times(url: str, pending: int, repeat: int = 5) -> tuple[float, float]:
    import sqlalchemy as sa
    from prometheus_client import generate_latest

    from notice.metrics import registry_of

    app = make_app(url, True)
    db = app.extensions["sqlalchemy"]
    with app.app_context():
        notices = app.extensions["notice"]
        rows = [
            {"user_id": 1, "notice_type": "System", "subject": "s", "content": ""}
            for _ in range(pending)
        ]
        with db.engine.begin() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    sa.insert(notices.Notice.__table__).returning(notices.Notice.id), rows
                )
            ]
            conn.execute(
                sa.insert(notices.Delivery.__table__),
                [{"notice_id": i, "channel": "memory"} for i in ids],
            )
        engine = db.engine
    registry = registry_of(app)
    generate_latest(registry)  # warm-up: connection, statement cache
    start = time.perf_counter()
    for _ in range(repeat):
        generate_latest(registry)
    scrape = (time.perf_counter() - start) / repeat
    start = time.perf_counter()
    for _ in range(repeat):
        with engine.connect() as conn:
            conn.execute(sa.text(GROUPED)).all()
    reference = (time.perf_counter() - start) / repeat
    return scrape, reference


#: the backlog query as bare SQL: the floor a scrape of the gauges cannot go below
GROUPED = (
    "SELECT channel, count(*), min(create_at) FROM notice_delivery"
    " WHERE status IN ('Wait', 'Error') GROUP BY channel"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="notices published per run")
    parser.add_argument("--pending", type=int, default=50_000, help="pending deliveries")
    parser.add_argument("--rounds", type=int, default=3, help="alternated on/off rounds")
    parser.add_argument("--only", choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    for kind in [args.only] if args.only else ["sqlite", "postgresql"]:
        # alternated rounds, best of each: the machine is shared, and a load spike
        # during one run would otherwise decide the ratio
        offs, ons = [], []
        for _ in range(args.rounds):
            with database(kind) as url:
                offs.append(publish_rate(url, args.n, metrics=False))
                ons.append(publish_rate(url, args.n, metrics=True))
        off, on = max(offs), max(ons)
        print(
            f"{kind:10} publish  metrics on {on:8.0f} notices/s   off {off:8.0f} notices/s"
            f"   ratio on/off {on / off:.2f}"
        )
        with database(kind) as url:
            scrape, reference = scrape_times(url, args.pending)
        print(
            f"{kind:10} scrape   {scrape * 1000:8.1f} ms with {args.pending} pending"
            f"   bare query {reference * 1000:8.1f} ms   ratio {scrape / reference:.2f}"
        )


if __name__ == "__main__":
    main()
