"""The after-commit hand-off, and the executors that run deliveries.

Rows are written inside the caller's transaction; their delivery ids are handed to the
app's dispatcher only after that transaction commits (:mod:`notice.aftercommit`; a
rollback drops them: no row, no send).

A dispatcher that sends in this process (:attr:`Dispatcher.sends_claimed`: sync,
thread) gets its deliveries written already leased to it, and after commit a
:class:`~notice.claimed.ClaimedBatch` holding what their send needs: it sends from
memory, with no claim and no re-read. The others (none, Celery) get delivery ids,
claimed by whoever runs them.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime, timezone
from typing import Any

from ..aftercommit import call_after_commit
from ..claimed import ClaimedBatch
from ..sending import must_propagate

logger = logging.getLogger("notice")

#: seconds the thread pool waits, in all, for its batches in flight at shutdown
SHUTDOWN_GRACE = 5.0

#: ``deliver(work)``: send and record deliveries inside the app's context: delivery ids
#: (claimed first) or a born-claimed batch (:func:`notice.delivery.deliver_in_app` bound
#: to one app's state)
Deliver = Callable[[Any], object]

#: what a dispatcher is handed after commit: delivery ids, or a born-claimed batch
Work = Sequence[int] | ClaimedBatch


def defer_until_commit(session: Any, dispatcher: Dispatcher, work: Work) -> None:
    """Hand ``work`` to ``dispatcher`` once ``session``'s transaction commits."""
    if len(work):
        submit: Callable[[], None]
        if isinstance(work, ClaimedBatch):
            batch = work
            submit = lambda: dispatcher.submit_claimed(batch)  # noqa: E731
        else:
            ids = list(work)
            submit = lambda: dispatcher.submit(ids)  # noqa: E731
        call_after_commit(
            session,
            submit,
            description=f"dispatching {len(work)} deliveries (the sweeper will retry them)",
        )


class Dispatcher:
    """Runs deliveries after commit. Subclasses implement :meth:`submit`.

    :param deliver: sends a list of delivery ids; the dispatcher decides only where and
        when it runs.
    """

    #: True when this dispatcher sends in this process, right after commit: the
    #: publisher then writes deliveries already leased to it and hands over a
    #: :class:`~notice.claimed.ClaimedBatch` instead of ids
    sends_claimed = False

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._timers: set[threading.Timer] = set()
        #: keys of the keyed timers not fired yet (see :meth:`call_at`)
        self._timer_keys: set[Hashable] = set()
        self._timers_lock = threading.Lock()

    def submit(self, delivery_ids: Sequence[int]) -> None:
        raise NotImplementedError

    def call_at(
        self, when: datetime, call: Callable[[], object], *, key: Hashable | None = None
    ) -> None:
        """Run ``call`` on a timer thread at ``when`` (aware): what a scheduled
        delivery due in the next seconds uses instead of waiting for the sweeper. Only a
        shortcut: the rows are in the database, so a timer lost with its process (or
        cancelled by :meth:`shutdown`) leaves the work to the sweeper.

        With a ``key``, a call whose key is already pending here is dropped: every fold
        near a group's window end times the group's send again, and this keeps that to
        one timer per group (the key is freed as the timer fires, before ``call``).
        """
        wait = max(0.0, (when - datetime.now(timezone.utc)).total_seconds())

        def fire() -> None:
            with self._timers_lock:
                self._timers.discard(timer)
                self._timer_keys.discard(key)
            try:
                call()
            except Exception:  # noqa: BLE001 - the sweeper does it otherwise
                logger.exception("a scheduled call failed (the sweeper will do it)")

        timer = threading.Timer(wait, fire)
        timer.daemon = True
        timer.name = "notice-schedule"
        with self._timers_lock:
            if key is not None:
                if key in self._timer_keys:
                    return
                self._timer_keys.add(key)
            self._timers.add(timer)
        timer.start()

    def submit_at(
        self, when: datetime, delivery_ids: Sequence[int], *, key: Hashable | None = None
    ) -> None:
        """:meth:`submit` ``delivery_ids`` at ``when`` (see :meth:`call_at`, also for
        ``key``); they are claimed then, so one the sweeper or a cancel took meanwhile
        is left alone."""
        ids = list(delivery_ids)
        self.call_at(when, lambda: self.submit(ids), key=key)

    def cancel_timers(self) -> None:
        """Drop the timers not fired yet (their rows stay due for the sweeper)."""
        with self._timers_lock:
            timers, self._timers = self._timers, set()
            self._timer_keys.clear()
        for timer in timers:
            timer.cancel()

    def submit_claimed(self, batch: ClaimedBatch) -> None:
        """Send a born-claimed batch (only dispatchers with :attr:`sends_claimed`)."""
        raise NotImplementedError

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking work; what is not claimed yet stays Wait for the sweeper."""
        self.cancel_timers()


class SyncDispatcher(Dispatcher):
    """Delivers in the caller's thread, right after its commit.

    It runs inside the caller's ``after_commit`` hook, when the caller's ``db.session``
    cannot be used; ``deliver`` gives senders and hooks (``email_loader``, ``targets``)
    a fresh app context with a ``db.session`` of their own.
    """

    sends_claimed = True

    def submit_claimed(self, batch: ClaimedBatch) -> None:
        self._run(batch)

    def submit(self, delivery_ids: Sequence[int]) -> None:
        self._run(delivery_ids)

    def _run(self, delivery_ids: Work) -> None:
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

    The caller waits only for its write: after commit its born-claimed batch is queued,
    and a thread sends it. A thread takes what is queued behind the batch it picked up
    as well, up to ``NOTICE_BATCH_SIZE`` deliveries, so a burst of small emits becomes
    one send pass and one finish transaction.

    At most ``queue_size`` deliveries wait in memory (``NOTICE_QUEUE_SIZE``); what does
    not fit, and at interpreter exit what was not sent yet, is given back (its lease
    undone, due at once) for the sweeper. Threads are daemons so a stuck sender cannot
    hang the process at exit.
    """

    sends_claimed = True

    def __init__(
        self,
        deliver: Deliver,
        *,
        threads: int,
        queue_size: int,
        batch_size: int,
        linger: float = 0.0,
    ) -> None:
        super().__init__(deliver)
        self._batch_size = batch_size
        self._linger = linger
        self._queue_size = max(1, queue_size)
        # the bound is kept in deliveries by the counter below, not by the queue: a
        # queue bounded in items filled up with one-delivery items (one per single-user
        # emit), so a burst of 200 emits left ~190 to the sweeper with a 10,000 bound
        self._queue: queue.Queue[list[int] | ClaimedBatch | None] = queue.Queue()
        #: deliveries put on the queue and not taken off by a thread yet
        self._queued = 0
        self._lock = threading.Lock()
        self._gathering = threading.Lock()
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

    def _parts(self, work: Work) -> list[list[int] | ClaimedBatch]:
        size = self._batch_size
        if isinstance(work, ClaimedBatch):
            return list(work.split(size))
        ids = list(work)
        return [ids[start : start + size] for start in range(0, len(ids), size)]

    def submit_claimed(self, batch: ClaimedBatch) -> None:
        self._enqueue(batch)

    def submit(self, delivery_ids: Sequence[int]) -> None:
        self._enqueue(delivery_ids)

    def _enqueue(self, delivery_ids: Work) -> None:
        self._replace_dead_threads()
        total = len(delivery_ids)
        left: list[list[int] | ClaimedBatch] = []
        # reserve room and enqueue under one lock: two submitters checking the room
        # first and enqueueing after could together overshoot the bound, and a submit
        # racing shutdown could enqueue behind its drain
        with self._lock:
            parts = self._parts(delivery_ids)
            if self._stopping.is_set():
                left = parts
            else:
                # one batch per item: at shutdown only the batch in flight is still
                # running, the rest is given back before anyone sent it
                for part in parts:
                    if self._queued + len(part) > self._queue_size:
                        left.append(part)
                        continue
                    self._queued += len(part)
                    self._queue.put_nowait(part)
        if left:
            dropped = sum(len(part) for part in left)
            if not self._stopping.is_set():
                logger.warning(
                    "dispatch queue full (NOTICE_QUEUE_SIZE=%d deliveries); "
                    "%d of %d deliveries left to the sweeper",
                    self._queue_size,
                    dropped,
                    total,
                )
            self._give_back(left)

    def _give_back(self, items: list[list[int] | ClaimedBatch]) -> None:
        """Undo the leases of born-claimed batches not sent, so the sweeper takes them
        at once instead of after the lease (ids were never claimed: nothing to undo)."""
        for item in items:
            if isinstance(item, ClaimedBatch) and len(item):
                try:
                    self._deliver(
                        ClaimedBatch(item.token, item.started, item.segments, give_back=True)
                    )
                except Exception:  # noqa: BLE001 - the lease frees them otherwise
                    logger.debug("giving %d deliveries back failed", len(item), exc_info=True)

    def _take(self, block: bool = True, timeout: float = 0.5) -> list[int] | ClaimedBatch | None:
        """The next item, counted off the bound; raises :class:`queue.Empty`."""
        # a timeout, so a thread notices shutdown even if it missed its wake-up item
        item = self._queue.get(timeout=timeout) if block else self._queue.get_nowait()
        if item:
            with self._lock:
                self._queued -= len(item)
        return item

    def _group(self, first: ClaimedBatch) -> tuple[ClaimedBatch, list[int] | ClaimedBatch | None]:
        """``first`` and the born-claimed batches queued behind it within the linger
        (``NOTICE_DISPATCH_LINGER``), up to a batch; and the item that ended the group,
        if one was taken (it runs next).

        Without the linger a thread took each emit as it came (the caller's commit gave
        it the GIL), so a burst of single emits cost a send pass and a finish
        transaction each, on the caller's CPU as well: on SQLite its finish also held
        the write lock the caller's next INSERT then slept on.
        """
        group = [first]
        size = len(first)
        deadline = time.monotonic() + self._linger
        while size < self._batch_size:
            wait = deadline - time.monotonic()
            try:
                item = self._take(block=wait > 0, timeout=wait)
            except queue.Empty:
                return ClaimedBatch.merge(group), None
            if item is None:  # shutdown's wake-up: send what we hold, then stop
                return ClaimedBatch.merge(group), None
            if (
                not isinstance(item, ClaimedBatch)
                or item.token != first.token
                or size + len(item) > self._batch_size
            ):
                return ClaimedBatch.merge(group), item
            group.append(item)
            size += len(item)
        return ClaimedBatch.merge(group), None

    def _run(self) -> None:
        carried: list[int] | ClaimedBatch | None = None
        while not self._stopping.is_set():
            item: list[int] | ClaimedBatch | None
            # one thread gathers a group at a time while the others send theirs: with
            # every idle thread lingering at once, a burst was split among them again
            with self._gathering:
                if carried is not None:
                    item, carried = carried, None
                else:
                    try:
                        item = self._take()
                    except queue.Empty:
                        continue
                if item is None:
                    return
                if self._stopping.is_set():
                    self._give_back([item])
                    return
                if isinstance(item, ClaimedBatch):
                    item, carried = self._group(item)
            try:
                self._deliver(item)
            except BaseException:  # noqa: BLE001 - rows stay claimable; the sweeper retries
                # BaseException too (SystemExit, CancelledError): it used to end the thread
                logger.exception("delivering %d deliveries failed", len(item))
        if carried is not None:
            self._give_back([carried])

    def shutdown(self, wait: bool = True) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.cancel_timers()
        drained: list[list[int] | ClaimedBatch] = []
        with self._lock:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item:
                    drained.append(item)
            dropped = sum(len(item) for item in drained)
            self._queued -= dropped
        if dropped:
            logger.info("dispatcher stopping: %d deliveries left Wait for the sweeper", dropped)
            self._give_back(drained)
        for _ in self._threads:
            self._queue.put_nowait(None)  # unbounded: every thread gets its wake-up
        if wait:
            # batches in flight get a moment, in all, to record their results; their
            # leases protect them from double sends if we are killed meanwhile
            deadline = time.monotonic() + SHUTDOWN_GRACE
            for thread in self._threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        atexit.unregister(self.shutdown)
