"""What preferences cost when publishing, and how fast the digest goes out.

Run from the repository root::

    python bench/preferences.py                  # SQLite (file) and PostgreSQL
    python bench/preferences.py --only sqlite    # one backend

1. The routing gate. A 10,000-recipient ``notice_event`` (``NOTICE_DISPATCH="none"``,
   so nothing is sent) with 50,000 stored choices, 1,000 of them turning this type off
   for a recipient, against the same publish with the gate removed (the reference,
   measured alternately in the same run). Prints medians and the ratio. Target: the
   gate adds one query per channel, ratio <= 1.2.
2. The digest. ``run_digest`` for 300 users with 5 unread notices each through the
   loopback SMTP server (aiosmtpd), against the reference of resending the same 300
   messages (the bytes the server received) with plain ``smtplib`` over one
   connection. Prints emails per second and the ratio: what claiming, reading,
   rendering and marking cost on top of SMTP itself.

PostgreSQL runs in a private database created in the ``test`` cluster on 127.0.0.1
and dropped afterwards.
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, mail_app  # noqa: E402
from notice import NoticeType, notice_event  # noqa: E402
from notice.columns import utcnow  # noqa: E402
from notice.preferences.digest import run_digest  # noqa: E402
from tests.support.smtpserver import SMTPServer  # noqa: E402

RECIPIENTS = 10_000
DIGEST_USERS = 300


def make_app(url: str, smtp: SMTPServer) -> Flask:
    app: Flask = mail_app("bench_preferences", url, smtp, senders=["memory"], dispatch="none")
    return app


def seed_choices(app: Flask) -> None:
    prefs = app.notices.preferences  # type: ignore[attr-defined]
    table = prefs.Preference.__table__
    now = utcnow()
    rows: list[dict[str, Any]] = []
    types = ["Comment", "Reply", "Follow", "Post", "Save"]
    for user in range(RECIPIENTS):
        for t in types[: 4 if user % 2 else 5]:
            if len(rows) < 49_000:
                rows.append(
                    dict(user_id=user, notice_type=t, channel="memory", enabled=True, update_at=now)
                )
    rows += [
        dict(user_id=u, notice_type="Like", channel="memory", enabled=False, update_at=now)
        for u in range(0, RECIPIENTS, 10)
    ]
    with app.app_context():
        app.db.session.execute(sa.insert(table), rows)  # type: ignore[attr-defined]
        app.db.session.commit()  # type: ignore[attr-defined]


def time_publish(app: Flask, gated: bool) -> float:
    state = app.notices.state(app)  # type: ignore[attr-defined]
    saved = list(state.gates)
    if not gated:
        state.gates.clear()
    try:
        with app.app_context():
            start = time.perf_counter()
            ids = notice_event(range(RECIPIENTS), NoticeType.LIKE, subject="bench", content="")
            elapsed = time.perf_counter() - start
            assert len(ids) == RECIPIENTS
            Delivery = app.notices.Delivery  # type: ignore[attr-defined]
            made = app.db.session.execute(  # type: ignore[attr-defined]
                sa.select(sa.func.count()).select_from(Delivery).where(Delivery.notice_id.in_(ids))
            ).scalar_one()
            assert made == (RECIPIENTS - RECIPIENTS // 10 if gated else RECIPIENTS), made
    finally:
        state.gates[:] = saved
    return elapsed


def bench_gate(app: Flask, rounds: int) -> None:
    seed_choices(app)
    time_publish(app, True)  # warm up both paths
    time_publish(app, False)
    gated, plain = [], []
    for _ in range(rounds):
        gated.append(time_publish(app, True))
        plain.append(time_publish(app, False))
    g, p = statistics.median(gated), statistics.median(plain)
    print(f"  publish to {RECIPIENTS:,} users, 50,000 stored choices:")
    print(f"    with the preference gate   median {g * 1000:8.1f} ms")
    print(f"    reference (gate removed)   median {p * 1000:8.1f} ms")
    print(f"    ratio                      {g / p:8.2f}")


def bench_digest(app: Flask, smtp: SMTPServer) -> None:
    with app.app_context():
        prefs = app.notices.preferences  # type: ignore[attr-defined]
        users = list(range(100_000, 100_000 + DIGEST_USERS))
        for u in users:
            prefs.set_digest(u, "daily", commit=False)
        app.db.session.commit()  # type: ignore[attr-defined]
        for i in range(5):
            notice_event(users, subject=f"digest item {i}", content="something happened")
        start = time.perf_counter()
        report = run_digest(app.notices.state(), "daily")  # type: ignore[attr-defined]
        digest_s = time.perf_counter() - start
        assert report.sent == DIGEST_USERS and report.notices == 5 * DIGEST_USERS, report
    # the reference resends the very bytes the digest sent: same sizes, same server work
    sent = smtp.messages[-DIGEST_USERS:]
    start = time.perf_counter()
    with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
        for mail in sent:
            conn.sendmail(mail.mail_from, mail.rcpt_tos, mail.raw)
    raw_s = time.perf_counter() - start
    rate, raw_rate = DIGEST_USERS / digest_s, DIGEST_USERS / raw_s
    print(f"  digest for {DIGEST_USERS} users x 5 notices through loopback SMTP:")
    print(f"    run_digest                  {digest_s:6.2f} s  ({rate:5.0f} emails/s)")
    print(f"    reference (same bytes, smtplib) {raw_s:6.2f} s  ({raw_rate:5.0f} emails/s)")
    print(f"    ratio                       {digest_s / raw_s:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["sqlite", "postgresql"]
    with SMTPServer() as smtp:
        for kind in kinds:
            print(f"{kind}:")
            with database(kind) as url:
                app = make_app(url, smtp)
                try:
                    bench_gate(app, args.rounds)
                    bench_digest(app, smtp)
                finally:
                    with app.app_context():
                        app.db.session.remove()  # type: ignore[attr-defined]
                        app.db.engine.dispose()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
