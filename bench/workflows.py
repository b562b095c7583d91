"""What grouping costs: 10,000 likes on one post within a window, against plain
``notice_event`` calls in the same run.

Run from the repository root::

    python bench/workflows.py                 # SQLite (file) and PostgreSQL
    python bench/workflows.py --only sqlite   # one backend

For each database it prints, measured in this run on this machine:

* the grouped run: 10,000 ``notice_event(..., group_key="like:post:1")`` calls for one
  user (sync dispatch, the email sender to a loopback SMTP server), then the window's
  send (one sweeper pass at the window end); it checks the outcome: one inbox item
  with ``group_count`` 10,000 and one email;
* the reference: 10,000 plain ``notice_event`` calls on the same app, same type,
  without the email channel (``channels=["memory"]``, so no SMTP round trip is in it);
  each call writes a notice and a delivery and sends it to the memory sender;

and the cost per folded notice as a ratio to the plain call, with both absolute
figures (microseconds per call). PostgreSQL runs in a private database created in the
``test`` cluster on 127.0.0.1 and dropped afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, mail_app  # noqa: E402
from notice import NoticeType, notice_event  # noqa: E402
from notice.sweeper import sweep  # noqa: E402
from tests.support.smtpserver import SMTPServer  # noqa: E402

LIKES = 10_000


def make_app(url: str, smtp: SMTPServer) -> Flask:
    senders = ["memory", "email"]
    app: Flask = mail_app("bench_workflows", url, smtp, senders=senders, dispatch="sync")
    return app


def grouped(app: Flask, smtp: SMTPServer, likes: int) -> float:
    """Seconds for ``likes`` folded likes; checks one item and, at the window end, one
    email."""
    with app.app_context():
        start = time.perf_counter()
        for n in range(likes):
            notice_event(
                1,
                NoticeType.LIKE,
                subject=f"user{n} liked “Weekend photos”",
                content="",
                url="/posts/1",
                group_key="like:post:1",
                group_window=timedelta(hours=1),
                actor_name=f"user{n}",
            )
        elapsed = time.perf_counter() - start
        notice = app.notices.models.Notice  # type: ignore[attr-defined]
        [row] = app.db.session.execute(  # type: ignore[attr-defined]
            sa.select(notice.id, notice.group_count, notice.group_until, notice.subject)
        ).all()
        assert row.group_count == likes, row
        report = sweep(app, now=row.group_until)
        assert report.sent == 2, report  # memory and email, once each
        assert len(smtp.messages) == 1
        print(f"    one item: {row.subject!r}; one email: {smtp.messages[0].message['Subject']!r}")
    return elapsed


def plain(app: Flask, likes: int) -> float:
    """Seconds for ``likes`` plain ``notice_event`` calls (memory sender only)."""
    with app.app_context():
        start = time.perf_counter()
        for n in range(likes):
            notice_event(
                2,
                NoticeType.LIKE,
                subject=f"user{n} liked “Weekend photos”",
                content="",
                url="/posts/1",
                channels=["memory"],
            )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--likes", type=int, default=LIKES)
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    with SMTPServer() as smtp:
        for kind in kinds:
            smtp.reset()
            print(f"{kind}:")
            with database(kind) as url:
                app = make_app(url, smtp)
                try:
                    fold_s = grouped(app, smtp, args.likes)
                    plain_s = plain(app, args.likes)
                finally:
                    with app.app_context():
                        app.db.session.remove()  # type: ignore[attr-defined]
                        app.db.engine.dispose()  # type: ignore[attr-defined]
            per_fold, per_plain = fold_s / args.likes * 1e6, plain_s / args.likes * 1e6
            n = args.likes
            print(f"    {n} folded likes        {fold_s:6.2f} s  ({per_fold:6.0f} µs each)")
            print(f"    {n} plain notice_event  {plain_s:6.2f} s  ({per_plain:6.0f} µs each)")
            print(f"    ratio folded / plain  {fold_s / plain_s:6.2f}")


if __name__ == "__main__":
    main()
