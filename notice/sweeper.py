"""The retry sweeper: one sweep pass, and the worker loop that repeats it.

A pass claims what is due (new deliveries the dispatcher never took, leases that ran
out because their worker died, failed deliveries whose retry time has come, scheduled
deliveries whose time came) and sends it through :func:`notice.delivery.deliver`; then
it publishes the live events of scheduled notices whose ``visible_at`` came
(:func:`announce_visible`). Each pass runs in a fresh app context, so a
long-lived worker never holds a stale session. The worker survives database outages:
it logs the error, backs off exponentially, and carries on when the database is back.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from .columns import utcnow
from .delivery import Report, deliver
from .errors import TablesMissing
from .sending import must_propagate
from .state import NoticeState, state_of
from .store import schedule as schedule_store

logger = logging.getLogger("notice.sweeper")

#: the longest pause between passes while the database is failing, in seconds
MAX_BACKOFF = 60.0


def _state_of(target: Flask | NoticeState) -> NoticeState:
    return state_of(target) if isinstance(target, Flask) else target


def sweep(
    state_or_app: Flask | NoticeState,
    now: datetime | None = None,
    limit: int | None = None,
    *,
    stop: threading.Event | None = None,
) -> Report:
    """Run one sweep pass and return its :class:`~notice.delivery.Report`.

    Without ``limit`` the pass claims batch after batch until what is due runs out;
    with ``limit`` it claims at most that many. Database errors propagate.

    :param state_or_app: the app, or its ``NoticeState``.
    :param now: the time to sweep at (tests move it forward instead of sleeping).
    :param limit: the most deliveries to claim in this pass.
    :param stop: once set, the pass starts no new send, records the sends in flight
        (each bounded by ``NOTICE_SEND_TIMEOUT``) and gives the rest back.
    """
    state = _state_of(state_or_app)
    with state.app.app_context():
        try:
            report = deliver(state, now=now, limit=limit, stop=stop)
            announce_visible(state, now)
        except BaseException:
            if state.metrics is not None:
                state.metrics.sweep_done(ok=False)
            raise
        finally:
            state.db.session.remove()
    if state.metrics is not None:
        state.metrics.sweep_done(ok=True)
    return report


#: scheduled notices one announcement takes at a time
ANNOUNCE_BATCH = 1000


def announce_visible(state: NoticeState, now: datetime | None = None) -> int:
    """Publish the live events of the notices whose ``visible_at`` came; return how
    many. Each is taken once (its ``visible_at`` cleared in the same statement), so
    concurrent sweepers and the dispatcher's timer announce it once between them; a
    crash after that commit loses the live event only (the notice is listed and
    counted from its ``visible_at`` on, whatever the stream got)."""
    notice = state.models.Notice.__table__
    total = 0
    while True:
        ids = schedule_store.take_visible(state.engine, notice, now or utcnow(), ANNOUNCE_BATCH)
        total += len(ids)
        if ids and state.publisher is not None:
            state.publisher.submit(state.engine, ids)
        if len(ids) < ANNOUNCE_BATCH:
            return total


def describe_db_error(exc: BaseException) -> str:
    """One line naming a database error, without SQL, parameters or connection URL."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def run_worker(
    app: Flask,
    interval: float,
    stop_event: threading.Event,
    *,
    on_pass: Callable[[Report], None] | None = None,
    max_backoff: float = MAX_BACKOFF,
) -> int:
    """Sweep every ``interval`` seconds until ``stop_event`` is set; return passes run.

    A pass takes one batch (``NOTICE_BATCH_SIZE``); a full batch is followed by another
    at once, so a backlog drains without waiting. A stop request is honoured within one
    send timeout: no new send starts, the sends in flight end or time out, their
    outcomes are recorded and the rest of the batch is given back. Errors never end the
    loop, whatever their kind (a ``SystemExit`` or ``CancelledError`` from a signal
    receiver too; only ``KeyboardInterrupt`` and ``SystemExit`` in the main thread
    stop it): they are logged and the next pass waits ``interval * 2^(failures-1)``, at
    most ``max_backoff`` seconds.

    :param on_pass: called with each successful pass's report (the CLI prints it).
    """
    state = _state_of(app)
    passes = failures = 0
    while not stop_event.is_set():
        try:
            report = sweep(state, limit=state.batch_size, stop=stop_event)
        except (SQLAlchemyError, TablesMissing) as exc:
            # TablesMissing is the database error a dropped table turns into (store.schema)
            failures += 1
            wait = _backoff(interval, failures, max_backoff)
            logger.error(
                "sweep failed: database error (%s); retrying in %.1f s",
                exc if isinstance(exc, TablesMissing) else describe_db_error(exc),
                wait,
            )
            _drop_connections(state)
            stop_event.wait(wait)
            continue
        except BaseException as exc:  # noqa: BLE001 - a worker must outlive one bad pass
            if must_propagate(exc):
                raise
            failures += 1
            wait = _backoff(interval, failures, max_backoff)
            logger.error("sweep failed; retrying in %.1f s", wait, exc_info=exc)
            stop_event.wait(wait)
            continue
        if failures:
            logger.warning("sweep recovered after %d failed passes", failures)
            failures = 0
        passes += 1
        if on_pass is not None:
            on_pass(report)
        if report.claimed < state.batch_size:
            stop_event.wait(interval)
    return passes


def _backoff(interval: float, failures: int, cap: float) -> float:
    return float(min(cap, max(interval, 0.1) * 2 ** min(failures - 1, 16)))


def _drop_connections(state: NoticeState) -> None:
    # pooled connections to a server that went away are dead; start afresh next pass
    try:
        with state.app.app_context():
            state.engine.dispose()
    except Exception:  # noqa: BLE001 - best effort; the next pass reconnects anyway
        logger.debug("disposing the engine failed", exc_info=True)


def stop_on_signals(stop_event: threading.Event) -> Callable[[], None]:
    """Set ``stop_event`` on SIGTERM or SIGINT (a second signal exits at once).

    The second signal raises ``SystemExit`` in the main thread; a pass waiting on its
    sends records their outcomes (those in flight as interrupted) before it propagates.
    Must be called from the main thread. Returns a function restoring the previous
    handlers.
    """

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop_event.is_set():
            raise SystemExit(128 + signum)
        logger.info(
            "%s received: stopping once the sends in flight end (a second signal exits at once)",
            signal.Signals(signum).name,
        )
        stop_event.set()

    previous: dict[int, Any] = {
        sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)
    }

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
