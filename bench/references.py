"""What the inbox model's references cost: publishing with them, naming a page, and
listing by target.

Run from the repository root::

    python bench/references.py                  # SQLite (file) and PostgreSQL
    python bench/references.py --only sqlite    # one backend

For each database, each figure against a reference measured the same way in the same
run:

1. a fan-out of ``--fanout`` recipients with actor, target, action object, category
   and two actions, against the same fan-out without them (the new columns and the
   partial indexes are the cost);
2. ``notices.notice_dicts`` of a 50-notice page with a resolver (user actors, post
   targets, comment action objects: 3 calls), against the page without one; and the
   resolver calls a per-notice design would make (150);
3. ``list_notices(user, target=...)`` and ``actor=...`` among ``--rows`` notices of
   one user (250 with that target, 250 by that actor), against the plain newest-first
   page of the same user.

PostgreSQL runs in a private database created in the ``test`` cluster on 127.0.0.1 and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database  # noqa: E402
from notice import Notices, notice_event  # noqa: E402

ACTIONS = [{"label": "Reply", "url": "/posts/1#reply"}, {"label": "Mute", "url": "/mute"}]


def make_app(url: str) -> tuple[Flask, Any]:
    app = Flask("bench_references")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url, NOTICE_SENDERS=[], NOTICE_WEB=False, NOTICE_STREAM=False
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    with app.app_context():
        db.create_all()
    return app, notices


def median_ms(fn: Callable[[], Any], n: int) -> float:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000


def measure(kind: str, args: argparse.Namespace) -> None:
    with database(kind) as url:
        app, notices = make_app(url)
        with app.app_context():
            users = list(range(1, args.fanout + 1))
            plain = median_ms(lambda: notice_event(users, subject="s", content=""), args.repeat)
            about = median_ms(
                lambda: notice_event(
                    users,
                    subject="s",
                    content="",
                    actor=("user", 7),
                    target=("post", 3),
                    action_object=("comment", 9),
                    category="warning",
                    actions=ACTIONS,
                ),
                args.repeat,
            )
            print(
                f"{kind}: fan-out of {args.fanout}: {about:.1f} ms with references, "
                f"{plain:.1f} ms without: ratio {about / plain:.2f}"
            )

            for n in range(50):
                notice_event(
                    0,
                    subject=f"p{n}",
                    content="",
                    actor=("user", n % 10),
                    target=("post", n % 7),
                    action_object=("comment", n),
                )
            page = notices.list_notices(0, limit=50)
            calls: list[str] = []
            bare = median_ms(lambda: notices.notice_dicts(page), 50)

            @notices.reference_resolver
            def names(type_: str, ids: list[str]) -> dict[str, Any]:
                calls.append(type_)
                return {i: (f"{type_} {i}", f"/{type_}s/{i}") for i in ids}

            named = median_ms(lambda: notices.notice_dicts(page), 50)
            per_page = len(calls) // 50
            print(
                f"{kind}: a 50-notice page: {named:.2f} ms named ({per_page} resolver calls; "
                f"one per notice and reference: 150), {bare:.2f} ms unnamed: "
                f"ratio {named / bare:.2f}"
            )

            owner = 10**6
            batch = [owner] * 1000
            for start in range(0, args.rows, 1000):
                notice_event(batch, subject="bulk", content="")
                if start % 5000 == 0:
                    notice_event(
                        batch[:250], subject="t", content="", target=("post", start)
                    )
                    notice_event(batch[:250], subject="a", content="", actor=("user", start))
            # statistics, as autovacuum keeps them (a fresh table has none)
            notices.db.session.execute(sa.text("ANALYZE"))
            notices.db.session.commit()
            target = ("post", "0")
            by_target = median_ms(lambda: notices.list_notices(owner, target=target), 50)
            newest = median_ms(lambda: notices.list_notices(owner, limit=50), 50)
            print(
                f"{kind}: list by target among {args.rows} notices of one user: "
                f"{by_target:.2f} ms, the newest 50: {newest:.2f} ms: "
                f"ratio {by_target / newest:.2f}"
            )
            by_actor = median_ms(lambda: notices.list_notices(owner, actor=("user", "0")), 50)
            print(
                f"{kind}: list by actor among {args.rows} notices of one user: "
                f"{by_actor:.2f} ms: ratio {by_actor / newest:.2f}"
            )
            if args.plan:
                print(plan(notices, owner, target))


def plan(notices: Any, owner: int, target: tuple[str, str]) -> str:
    """The query plan of the list by target."""
    from notice.store import NoticeQuery
    from notice.store.reads import list_query

    session = notices.db.session
    dialect = session.get_bind().dialect.name
    stmt = list_query(notices.Notice, owner, NoticeQuery(target=target), dialect)
    compiled = stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
    rows = session.execute(sa.text(explain + str(compiled))).all()
    return "\n".join("  " + " ".join(str(c) for c in row) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--fanout", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--plan", action="store_true", help="print the list query's plan")
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql"):
        if args.only in (None, kind):
            measure(kind, args)


if __name__ == "__main__":
    main()
