"""What the test kit costs a test: publishing under ``capture_notices`` against the same
publishing to the plain memory sender.

Run from the repository root::

    python bench/testing_kit.py                 # SQLite (file) and PostgreSQL
    python bench/testing_kit.py --only sqlite

For each database and dispatch mode (``sync``, ``thread``) it prints, measured in this
run: the seconds to publish ``N`` single notices and see all ``N`` sent, once into the
memory sender (the reference: polling its outbox for the thread pool) and once captured
(``outbox.assert_count(N)``, which waits for the pool itself), and the ratio
captured / reference. Each figure is the best of a few repetitions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database  # noqa: E402
from notice import Notices, NoticeType, notice_event  # noqa: E402
from notice.testing import capture_notices  # noqa: E402

N = 200
REPEAT = 3


def make_app(url: str, dispatch: str) -> Flask:
    app = Flask("bench_testing_kit")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        NOTICE_SENDERS=["memory"],
        NOTICE_DISPATCH=dispatch,
        NOTICE_STREAM=False,
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def publish_all(app: Flask) -> None:
    with app.app_context():
        for user in range(N):
            notice_event(user, NoticeType.COMMENT, subject="Ana commented", content="Nice")


def reference(app: Flask) -> float:
    memory: Any = app.extensions["notice"].state(app).sender("memory")
    memory.reset()
    start = time.perf_counter()
    publish_all(app)
    while len(memory.outbox) < N:  # the thread pool: poll, as tests did before the kit
        time.sleep(0.001)
    return time.perf_counter() - start


def captured(app: Flask) -> float:
    start = time.perf_counter()
    with capture_notices(app) as outbox:
        publish_all(app)
        outbox.assert_count(N)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    for kind in [args.only] if args.only else ["sqlite", "postgresql"]:
        with database(kind) as url:
            for dispatch in ("sync", "thread"):
                app = make_app(url, dispatch)
                ref = min(reference(app) for _ in range(REPEAT))
                cap = min(captured(app) for _ in range(REPEAT))
                app.extensions["notice"].state(app).dispatcher.shutdown()
                print(
                    f"{kind:10} {dispatch:6} {N} notices: memory sender {ref:.3f} s, "
                    f"captured {cap:.3f} s, ratio captured/memory {cap / ref:.2f}"
                )


if __name__ == "__main__":
    main()
