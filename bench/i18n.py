"""What translating costs per email and per push payload.

Run from the repository root::

    python bench/i18n.py

Builds the same email (``EmailSender.build_message``: both parts, our default
templates) and the same Web Push payload (``WebPushSender.payload``) for many notices,
in two apps measured alternately in the same run:

- the reference: no Flask-Babel on the app (English, as before translations);
- translated: ``Babel(app)`` and a ``locale_loader``, half the recipients German (our
  catalog), half without a locale (the default, English).

Prints the median CPU microseconds per message of each and the ratio translated /
reference. Nothing is sent and no rows are read: this is rendering alone, the part
translations change; SMTP and push round trips (milliseconds) dwarf it.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flask import Flask
from flask_babel import Babel
from flask_sqlalchemy import SQLAlchemy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notice import Notices  # noqa: E402
from notice.push.vapid import generate  # noqa: E402
from notice.senders.email import EmailSender  # noqa: E402

EMAILS = 200
PUSHES = 2_000
ROUNDS = 11


def make_app(url: str, translated: bool) -> Flask:
    app = Flask("bench_i18n")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="bench",
        NOTICE_SENDERS=["webpush"],
        NOTICE_DISPATCH="none",
        NOTICE_STREAM=False,
        NOTICE_MAIL_SENDER="Bench <bench@example.com>",
        NOTICE_BASE_URL="https://bench.example",
        NOTICE_VAPID_PRIVATE_KEY=generate().private_raw(),
        NOTICE_VAPID_SUBJECT="mailto:bench@example.com",
        NOTICE_PUSH_ALLOWED_HOSTS=["https://push.example"],
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    # even users read German, odd ones have no locale (the default, English)
    notices.locale_loader(lambda user_id: "de" if user_id % 2 == 0 else None)
    if translated:
        Babel(app)
    return app


def notice(i: int) -> Any:
    return SimpleNamespace(
        id=i,
        user_id=i,
        notice_type="Comment",
        subject=f"Ana commented on post {i}",
        content="Nice work! " * 5,
        url=f"/posts/{i}#c1",
        data={},
        emailed_at=None,
    )


def per_message(run: Callable[[int], object], count: int) -> float:
    """CPU microseconds per call of ``run(i)`` for ``count`` calls: CPU time, not wall
    time, since the machine is shared and rendering neither waits nor sleeps."""
    started = time.process_time()
    for i in range(count):
        run(i)
    return (time.process_time() - started) / count * 1e6


def measure(app: Flask) -> tuple[float, float]:
    with app.app_context():
        email = EmailSender()
        email.init_app(app)
        push = app.extensions["notice"].sender("webpush")
        notices = [notice(i) for i in range(max(EMAILS, PUSHES))]
        return (
            per_message(lambda i: email.build_message(notices[i], "a@example.com"), EMAILS),
            per_message(lambda i: push.payload(notices[i]), PUSHES),
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_app(f"sqlite:///{tmp}/plain.db", translated=False)
        babel = make_app(f"sqlite:///{tmp}/babel.db", translated=True)
        measure(plain), measure(babel)  # warm up: templates compiled, catalog loaded
        results: dict[str, list[tuple[float, float]]] = {"plain": [], "babel": []}
        apps = {"plain": plain, "babel": babel}
        for round_ in range(ROUNDS):
            # alternate which goes first: on a shared machine the first of a pair
            # tends to get the faster slot
            for name in ("plain", "babel") if round_ % 2 == 0 else ("babel", "plain"):
                results[name].append(measure(apps[name]))
    for index, what in enumerate((f"email x {EMAILS}", f"push payload x {PUSHES}")):
        ref = statistics.median(r[index] for r in results["plain"])
        got = statistics.median(r[index] for r in results["babel"])
        print(f"{what}, median of {ROUNDS} rounds:")
        print(f"  translated (Babel, half German)  {got:8.1f} us CPU/message")
        print(f"  reference (no Babel, English)    {ref:8.1f} us CPU/message")
        print(f"  ratio                            {got / ref:8.2f}")


if __name__ == "__main__":
    main()
