"""notice beside django-notifications-hq (DNH), both measured in one run on one machine.

Run from the repository root (loopback PostgreSQL on 127.0.0.1:5432)::

    python bench/peer.py                      # SQLite and PostgreSQL
    python bench/peer.py --db sqlite --single 300

It builds a throwaway virtualenv in a temporary directory (deleted afterwards) with
Django and django-notifications-hq (newest; ``--dnh`` and ``--django`` pick versions:
DNH 1.8.3 needs Django < 5.1), and runs a minimal Django project there: Django's
default SQLite settings (a file), or a private PostgreSQL database created for the run
and dropped afterwards. notice runs in this
process on a database of its own of the same kind, through its public API only, so the
script works whatever notice's engine does at the time.

Printed, each as an absolute number and as a ratio against DNH measured in the same run:

* single calls/s: DNH ``notify.send(actor, recipient=user, verb=...)`` (one INSERT, no
  delivery) beside notice's ``notice_event(user, ...)`` with ``NOTICE_DISPATCH =
  "sync"`` and the memory sender (written and sent), with dispatch ``"none"``
  (written only: what a caller waits for with Celery dispatch), and with ``"thread"``
  (the caller's loop while the pool sends beside it; every notice checked sent after);
* fan-out to 10,000 recipients: DNH ``notify.send(..., recipient=<10,000 users>)``
  inside ``transaction.atomic()`` beside notice's ``notice_event(<10,000 ids>, ...)``
  write only, and with sync delivery to a no-op sender (every delivery claimed, sent
  and recorded).

Targets (issue 13): single sync >= 1.0x DNH on SQLite and >= 0.6x on PostgreSQL; single
write-only and thread >= 1.0x on both; fan-out with sync delivery >= 5x DNH's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG_ADMIN_URL, pg_database  # noqa: E402
from notice import Notices, Sender, notice_event  # noqa: E402

#: the DNH side: a one-file Django project, run by the throwaway virtualenv's python
#: with the database URL and the counts as arguments; prints one JSON line
DJANGO_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from urllib.parse import urlsplit

    import django
    from django.conf import settings

    url, single, fan_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if url.startswith("sqlite:"):
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": url.split(":", 1)[1]}
    else:
        parts = urlsplit(url)
        database = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": parts.username,
            "HOST": parts.hostname,
            "PORT": parts.port,
        }
    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        DATABASES={"default": database},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "notifications",
        ],
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction
    from notifications.signals import notify

    call_command("migrate", verbosity=0)
    actor = User.objects.create(username="actor")
    User.objects.bulk_create(User(username=f"u{i}") for i in range(1, fan_out + 1))
    users = list(User.objects.exclude(pk=actor.pk).order_by("pk"))
    for user in users[:20]:  # warm up: connections, content types, statement caches
        notify.send(actor, recipient=user, verb="warm-up")
    start = time.perf_counter()
    for i in range(single):
        notify.send(actor, recipient=users[i % len(users)], verb="commented")
    single_seconds = time.perf_counter() - start
    recipients = User.objects.filter(pk__in=[u.pk for u in users])
    start = time.perf_counter()
    with transaction.atomic():
        notify.send(actor, recipient=recipients, verb="announced")
    fan_out_seconds = time.perf_counter() - start
    print(json.dumps({
        "django": django.get_version(),
        "single": single / single_seconds,
        "fan_out_seconds": fan_out_seconds,
    }))
    """
)


class NoopSender(Sender):
    """Sends nothing: the fan-out with sync delivery measures notice's own work."""

    name = "noop"

    def send(self, notice: Any) -> None:
        pass


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def make_venv(where: Path, dnh: str, django: str) -> Path:
    """A virtualenv with Django, DNH and psycopg; return its python."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    python = where / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         dnh, django, "psycopg[binary]"],
        check=True,
    )  # fmt: skip
    return python


def run_dnh(python: Path, url: str, single: int, fan_out: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "dnh_bench.py"
    script.write_text(DJANGO_SCRIPT)
    out = subprocess.run(
        [str(python), str(script), url, str(single), str(fan_out)],
        check=True,
        capture_output=True,
        text=True,
        cwd=workdir,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _notice_app(url: str, dispatch: str, sender: str) -> Any:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

    app = Flask(f"peer_{dispatch}_{sender}")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=url,
        SECRET_KEY="bench-only",
        NOTICE_DISPATCH=dispatch,
        NOTICE_SENDERS=[sender],
        NOTICE_WEB=False,
    )
    db = SQLAlchemy()
    db.init_app(app)
    Notices(app, db=db)
    with app.app_context():
        db.drop_all()
        db.create_all()
    app.extensions["peer_db"] = db
    return app


def _dispose(app: Any) -> None:
    with app.app_context():
        db = app.extensions["peer_db"]
        db.session.remove()
        db.drop_all()
        for engine in db.engines.values():
            engine.dispose()


def notice_single(url: str, dispatch: str, calls: int) -> float:
    """``notice_event`` calls/s to one user each (users cycle through 1..10,000)."""
    app = _notice_app(url, dispatch, "memory")
    try:
        with app.app_context():
            for i in range(20):  # warm up, as the DNH side does
                notice_event(i + 1, subject="warm-up", content="")
            memory = app.extensions["notice"].sender("memory")
            deadline = time.monotonic() + 30
            while dispatch == "thread" and len(memory.outbox) < 20:  # the pool's warm-up
                if time.monotonic() > deadline:
                    raise SystemExit("thread dispatch did not send the warm-up notices")
                time.sleep(0.01)
            memory.reset()
            start = time.perf_counter()
            for i in range(calls):
                notice_event(i % 10_000 + 1, subject="commented", content="")
            seconds = time.perf_counter() - start
            sent = len(memory.outbox)
            if dispatch == "sync" and sent != calls:
                raise SystemExit(f"sync dispatch sent {sent} of {calls} notices")
            if dispatch == "thread":
                # the pool's sends ran beside the calls (timed); now let it finish them
                deadline = time.monotonic() + 60
                while len(memory.outbox) < calls and time.monotonic() < deadline:
                    time.sleep(0.01)
                if len(memory.outbox) != calls:
                    raise SystemExit(f"thread dispatch sent {len(memory.outbox)} of {calls}")
    finally:
        _dispose(app)
    return calls / seconds


def notice_fan_out(url: str, dispatch: str, recipients: int) -> float:
    """Seconds of one ``notice_event`` to ``recipients`` users."""
    sender = f"{__name__}:NoopSender" if dispatch == "sync" else "memory"
    app = _notice_app(url, dispatch, sender)
    try:
        with app.app_context():
            notice_event([1, 2], subject="warm-up", content="")
            users = list(range(1, recipients + 1))
            start = time.perf_counter()
            notice_event(users, subject="announced", content="")
            seconds = time.perf_counter() - start
            if dispatch == "sync":
                ext = app.extensions["notice"]
                left = ext.Delivery.query.filter(ext.Delivery.status != "Sent").count()
                if left:
                    raise SystemExit(f"sync fan-out left {left} deliveries unsent")
    finally:
        _dispose(app)
    return seconds


def measure(kind: str, python: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every figure for one kind of database, each side on a fresh database of its own
    each time. The sides take turns for ``--rounds`` rounds and each keeps its best
    figures: on a shared machine the load changes from one minute to the next, and
    measuring one side first and the other later compared two different machines."""
    best: dict[str, Any] = {}
    for round_ in range(1, args.rounds + 1):
        log(f"{kind}, round {round_} of {args.rounds}: DNH")
        if kind == "sqlite":
            dnh_file = workdir / "dnh.sqlite3"
            dnh_file.unlink(missing_ok=True)
            dnh = run_dnh(python, f"sqlite:{dnh_file}", args.single, args.fan_out, workdir)
            figures = _notice_figures(lambda: f"sqlite:///{workdir / 'notice.db'}", args)
        else:
            with pg_database(args.pg_admin_url) as url:
                dnh = run_dnh(python, url, args.single, args.fan_out, workdir)
            figures = _notice_figures(lambda: pg_database(args.pg_admin_url), args)
        figures.update(
            dnh_single=dnh["single"], dnh_fan_out=dnh["fan_out_seconds"], django=dnh["django"]
        )
        for name, value in figures.items():
            # rates: higher is better; seconds (fan-outs): lower is better
            keep = min if "fan_out" in name else max
            best[name] = value if name not in best or name == "django" else keep(best[name], value)
    return best


def _notice_figures(database: Any, args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    steps = [
        ("single_sync", lambda url: notice_single(url, "sync", args.single)),
        ("single_none", lambda url: notice_single(url, "none", args.single)),
        ("single_thread", lambda url: notice_single(url, "thread", args.single)),
        ("fan_out_none", lambda url: notice_fan_out(url, "none", args.fan_out)),
        ("fan_out_sync", lambda url: notice_fan_out(url, "sync", args.fan_out)),
    ]
    for name, step in steps:
        log(f"notice {name}")
        made = database()
        if isinstance(made, str):  # SQLite: a fresh file per step
            Path(made.removeprefix("sqlite:///")).unlink(missing_ok=True)
            figures[name] = step(made)
        else:
            with made as url:
                figures[name] = step(url)
    return figures


def report(kind: str, r: dict[str, Any], fan_out: int) -> None:
    single, dnh_fan = r["dnh_single"], r["dnh_fan_out"]
    sync_target, = ([1.0] if kind == "sqlite" else [0.6])  # fmt: skip
    print(f"\n{kind} (Django {r['django']}, django-notifications-hq)")
    print(f"  DNH notify.send, single:                   {single:9.0f} calls/s")
    rows = [
        ("notice, single, dispatch sync (memory)", r["single_sync"], sync_target),
        ("notice, single, dispatch none (write only)", r["single_none"], 1.0),
        ("notice, single, dispatch thread (memory)", r["single_thread"], 1.0),
    ]
    for label, value, target in rows:
        ratio = value / single
        verdict = "met" if ratio >= target else "NOT met"
        print(f"  {label:<43}{value:9.0f} calls/s  {ratio:5.2f}x DNH  "
              f"(target >= {target}x: {verdict})")  # fmt: skip
    print(f"  DNH fan-out to {fan_out} in atomic():      {dnh_fan:9.2f} s "
          f"({fan_out / dnh_fan:,.0f} recipients/s)")  # fmt: skip
    for label, seconds, target in [
        ("notice fan-out, write only", r["fan_out_none"], None),
        ("notice fan-out, sync delivery (no-op)", r["fan_out_sync"], 5.0),
    ]:
        ratio = dnh_fan / seconds
        goal = "" if target is None else (
            f"  (target >= {target}x: {'met' if ratio >= target else 'NOT met'})"
        )  # fmt: skip
        print(f"  {label:<43}{seconds:9.2f} s   {ratio:5.2f}x DNH's speed{goal}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], nargs="+",
                        default=["sqlite", "postgresql"])  # fmt: skip
    parser.add_argument("--single", type=int, default=1000, help="single calls per side")
    parser.add_argument("--fan-out", type=int, default=10_000, help="recipients of the fan-out")
    parser.add_argument("--rounds", type=int, default=2, help="turns each side takes (best kept)")
    parser.add_argument("--dnh", default="django-notifications-hq>=1.8.3",
                        help="pip requirement of DNH")  # fmt: skip
    # DNH 1.8.3 (the newest) declares Meta.index_together, which Django 5.1 removed
    parser.add_argument("--django", default="django>=4.2,<5.1", help="pip requirement of Django")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    args = parser.parse_args()
    if sa.make_url(args.pg_admin_url).host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"loopback only: {args.pg_admin_url}")
    workdir = Path(tempfile.mkdtemp(prefix="notice-peer-"))
    try:
        log(f"installing {args.dnh} into a throwaway virtualenv")
        python = make_venv(workdir / "venv", args.dnh, args.django)
        results = {kind: measure(kind, python, args, workdir) for kind in args.db}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"notice vs django-notifications-hq, one run, {os.cpu_count()} CPUs; "
          f"{args.single} single calls, fan-out to {args.fan_out}; best of {args.rounds} "
          "rounds taken in turns")  # fmt: skip
    for kind, r in results.items():
        report(kind, r, args.fan_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
