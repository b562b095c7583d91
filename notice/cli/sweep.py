"""``flask notice sweep`` (one pass, for cron) and ``flask notice worker`` (a loop).

Exit codes: 0 the work ran, 1 the database could not be reached, 2 bad arguments.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import click

from ..columns import utcnow
from ..delivery import Report
from ..store import claims
from ..sweeper import run_worker, stop_on_signals, sweep
from . import notice_cli
from .common import counted, current_state, database_errors, progress

logger = logging.getLogger("notice.sweeper")


def describe(report: Report) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.as_dict().items())


@notice_cli.command("sweep")
@click.option("--limit", type=click.IntRange(min=1), help="Claim at most this many deliveries.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sweep_command(limit: int | None, as_json: bool) -> None:
    """Send what is due once: new deliveries the dispatcher left, expired leases and
    retries whose time has come. Safe to run from cron next to running workers."""
    state = current_state()
    total = Report()
    with database_errors():
        due = (
            claims.count_due(state.engine, state.models.Delivery.__table__, utcnow())
            if limit is None
            else limit
        )
        # one batch per pass, so the bar moves as batches finish
        with progress(due, "sweeping") as bar:
            while True:
                batch = (
                    state.batch_size
                    if limit is None
                    else min(state.batch_size, limit - total.claimed)
                )
                report = sweep(state, limit=batch)
                total.add(report)
                bar.update(report.claimed)
                if report.claimed < batch or (limit is not None and total.claimed >= limit):
                    break
    if as_json:
        click.echo(json.dumps(total.as_dict()))
    else:
        click.echo(describe(total))


@notice_cli.command("worker")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds between passes when nothing is due.",
)
def worker_command(interval: float) -> None:
    """Sweep until SIGTERM or SIGINT: then stop once the sends in flight end (at most
    NOTICE_SEND_TIMEOUT), giving the rest of the batch back; a second signal exits at
    once, after recording what was sent.

    A database outage is logged and retried with exponential backoff; the worker
    never exits on its own.
    """
    state = current_state()
    _ensure_logging()
    stop = threading.Event()
    restore = stop_on_signals(stop)
    logger.info("worker started: interval %.2f s, batch %d", interval, state.batch_size)

    def log_pass(report: Report) -> None:
        if report.claimed:
            logger.info("swept: %s", describe(report))

    try:
        passes = run_worker(state.app, interval, stop, on_pass=log_pass)
    finally:
        restore()
    logger.info("worker stopped after %s", counted(passes, "pass", "passes"))


def _ensure_logging() -> None:
    # a worker's log is its output; show INFO unless the app configured logging itself
    root: Any = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
