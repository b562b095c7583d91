"""The after-commit hand-off, and the executors that run deliveries.

Rows are written inside the caller's transaction; their delivery ids are handed to the
app's dispatcher only after that transaction commits (:mod:`notice.aftercommit`; a
rollback drops them: no row, no send).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..aftercommit import call_after_commit
from ..sending import must_propagate

logger = logging.getLogger("notice")

#: seconds the thread pool waits, in all, for its batches in flight at shutdown
SHUTDOWN_GRACE = 5.0

#: ``deliver(delivery_ids)``: claim, send and record those deliveries inside the app's
#: context (:func:`notice.delivery.deliver_in_app` bound to one app's state)
Deliver = Callable[[Sequence[int]], object]


def defer_until_commit(session: Any, dispatcher: Dispatcher, delivery_ids: Sequence[int]) -> None:
    """Hand ``delivery_ids`` to ``dispatcher`` once ``session``'s transaction commits."""
    if delivery_ids:
        ids = list(delivery_ids)
        call_after_commit(
            session,
            lambda: dispatcher.submit(ids),
            description=f"dispatching {len(ids)} deliveries (the sweeper will retry them)",
        )


class Dispatcher:
    """Runs deliveries after commit. Subclasses implement :meth:`submit`.

    :param deliver: sends a list of delivery ids; the dispatcher decides only where and
        when it runs.
    """

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def submit(self, delivery_ids: Sequence[int]) -> None:
        raise NotImplementedError

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; what is not claimed yet stays Wait for the sweeper."""


class SyncDispatcher(Dispatcher):
    """Delivers in the caller's thread, right after its commit.

    It runs inside the caller's ``after_commit`` hook, when the caller's ``db.session``
    cannot be used; ``deliver`` gives senders and hooks (``email_loader``, ``targets``)
    a fresh app context with a ``db.session`` of their own.
    """

    def submit(self, delivery_ids: Sequence[int]) -> None:
        try:
            self._deliver(delivery_ids)
        except Exception:
            raise  # the after-commit hook logs it
        except BaseException as exc:
            # a CancelledError from a signal receiver, say: it would escape the caller's
            # notice_event() after its commit (Ctrl-C in the main thread still does)
            if must_propagate(exc):
                raise
            logger.error("delivering %d deliveries raised", len(delivery_ids), exc_info=exc)


class NoDispatcher(Dispatcher):
    """Leaves every delivery to the sweeper (``NOTICE_DISPATCH = "none"``)."""

    def submit(self, delivery_ids: Sequence[int]) -> None:
        return None


class ThreadDispatcher(Dispatcher):
    """A bounded pool of daemon threads fed by a queue bounded in deliveries.

    At most ``queue_size`` deliveries wait in memory (``NOTICE_QUEUE_SIZE``); what does
    not fit, and at interpreter exit what was not claimed yet, is dropped from memory
    only: those rows stay Wait and the sweeper sends them. Threads are daemons so a
    stuck sender cannot hang the process at exit.
    """

    def __init__(self, deliver: Deliver, *, threads: int, queue_size: int, batch_size: int) -> None:
        super().__init__(deliver)
        self._batch_size = batch_size
        self._queue_size = max(1, queue_size)
        # the bound is kept in deliveries by the counter below, not by the queue: a
        # queue bounded in items filled up with one-delivery items (one per single-user
        # emit), so a burst of 200 emits left ~190 to the sweeper with a 10,000 bound
        self._queue: queue.Queue[list[int] | None] = queue.Queue()
        #: deliveries put on the queue and not taken off by a thread yet
        self._queued = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads_lock = threading.Lock()
        self._threads = [self._thread(i) for i in range(threads)]
        for thread in self._threads:
            thread.start()
        atexit.register(self.shutdown)

    def _thread(self, i: int) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"notice-dispatch-{i}", daemon=True)

    def _replace_dead_threads(self) -> None:
        # _run survives whatever a batch raises, but a thread can still end (an
        # exception from a logging handler, say); a pool that only shrank would end up
        # queueing work nobody runs
        with self._threads_lock:
            for i, thread in enumerate(self._threads):
                if not thread.is_alive() and not self._stopping.is_set():
                    logger.warning("dispatch thread %s died; starting a new one", thread.name)
                    self._threads[i] = self._thread(i)
                    self._threads[i].start()

    def submit(self, delivery_ids: Sequence[int]) -> None:
        self._replace_dead_threads()
        ids = list(delivery_ids)
        # reserve room and enqueue under one lock: two submitters checking the room
        # first and enqueueing after could together overshoot the bound, and a submit
        # racing shutdown could enqueue behind its drain
        with self._lock:
            if self._stopping.is_set():
                return
            room = max(0, self._queue_size - self._queued)
            taken = ids[:room]
            self._queued += len(taken)
            # one claim batch per item: at shutdown only the batch in flight is still
            # running, the rest is dropped from the queue before anyone claimed it
            size = self._batch_size
            for start in range(0, len(taken), size):
                self._queue.put_nowait(taken[start : start + size])
        if len(taken) < len(ids):
            logger.warning(
                "dispatch queue full (NOTICE_QUEUE_SIZE=%d deliveries); "
                "%d deliveries left to the sweeper",
                self._queue_size,
                len(ids) - len(taken),
            )

    def _take(self) -> list[int] | None:
        """The next batch, counted off the bound; raises :class:`queue.Empty`."""
        # a timeout, so a thread notices shutdown even if it missed its wake-up item
        ids = self._queue.get(timeout=0.5)
        if ids:
            with self._lock:
                self._queued -= len(ids)
        return ids

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                ids = self._take()
            except queue.Empty:
                continue
            if ids is None or self._stopping.is_set():
                return
            try:
                self._deliver(ids)
            except BaseException:  # noqa: BLE001 - rows stay claimable; the sweeper retries
                # BaseException too (SystemExit, CancelledError): it used to end the thread
                logger.exception("delivering %d deliveries failed", len(ids))

    def shutdown(self, wait: bool = True) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        dropped = 0
        with self._lock:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                dropped += len(item) if item else 0
            self._queued -= dropped
        if dropped:
            logger.info("dispatcher stopping: %d deliveries left Wait for the sweeper", dropped)
        for _ in self._threads:
            self._queue.put_nowait(None)  # unbounded: every thread gets its wake-up
        if wait:
            # batches in flight get a moment, in all, to record their results; their
            # leases protect them from double sends if we are killed meanwhile
            deadline = time.monotonic() + SHUTDOWN_GRACE
            for thread in self._threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        atexit.unregister(self.shutdown)
