"""Sending under a deadline: each channel's share of a claimed batch runs on a thread of
its own, and every call into a sender (``open``, ``send_to``) is bounded by
``NOTICE_SEND_TIMEOUT``.

A sender that hangs (a socket without a timeout, a server that accepts and never
answers) used to hold its batch, the other channels and the lease: when the lease ran
out the next worker claimed the same row and hung too. Python cannot stop a thread, so
a call past its deadline is *abandoned*: its delivery is recorded as a transient
failure, another thread takes the rest of that channel's share, and the abandoned one,
a daemon, is left to return or not; its late result is dropped.

The threads come from a small per-process pool (:class:`_Runners`): starting one per
channel and batch cost more than a small batch's sends, and a reused thread keeps a
sender's per-thread state (a webhook sender's ``requests.Session`` and its keep-alive
connections) from one batch to the next. A sender that cannot block
(``Sender.blocking = False``: the memory outbox) gets no thread: the caller sends its
share itself, as a thread would, in an app context of its own.

While an abandoned send may still be running, this process does not claim its delivery
again (:class:`HungSends`, which every claim skips): a retry must never run beside the
attempt it replaces. Another process cannot see our threads; it retries after the
backoff, as it retries the sends of a worker killed mid-batch (at-least-once).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask

from .errors import TransientError
from .senders.base import Sender
from .store import Outcome

logger = logging.getLogger("notice")

#: abandoned sends of one channel still running in this process before that channel gets
#: no new send thread (the rest of its share fails at once): a sender hanging on every
#: call would otherwise leak one thread per send timeout, without end
MAX_HUNG_PER_CHANNEL = 8

#: the longest the caller waits on its send threads in one go: a signal may be
#: delivered to any thread, and the main thread runs its handler (a worker's SIGTERM,
#: Ctrl-C) only when it wakes
POLL = 0.2

#: ``(delivery row, notice view)``, as :func:`notice.delivery.deliver` loads them
Item = tuple[Any, Any]
#: ``send_one(sender, delivery, notice) -> outcome``; catches whatever the sender raises
SendOne = Callable[[Sender, Any, Any], Outcome]
#: ``fail(delivery, notice, exc, error) -> outcome``: a failure, retried per the policy;
#: ``error`` replaces the exception's text in ``last_error``
Fail = Callable[[Any, Any, BaseException, str | None], Outcome]


def must_propagate(exc: BaseException) -> bool:
    """Whether ``exc``, caught around delivery work, must be raised again.

    Only ``KeyboardInterrupt`` and ``SystemExit`` in the main thread (Ctrl-C, a
    worker's second SIGTERM) ask the process to stop. Anywhere else (a sender's
    ``sys.exit()``, ``asyncio.CancelledError``, gevent's ``Timeout``) one would just end
    a dispatcher thread or the worker loop for good, and lose the batch's outcomes.
    """
    return (
        isinstance(exc, (KeyboardInterrupt, SystemExit))
        and threading.current_thread() is threading.main_thread()
    )


class HungSends:
    """The calls into senders this process abandoned that have not returned yet (one
    registry per app state)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, int | None]] = {}
        self._last = 0

    def add(self, channel: str, delivery_id: int | None) -> int:
        """Record an abandoned send (``delivery_id``) or ``open()`` (None); return the
        key :meth:`done` takes."""
        with self._lock:
            self._last += 1
            self._running[self._last] = (channel, delivery_id)
            return self._last

    def done(self, key: int) -> None:
        """The abandoned call ``key`` returned: its delivery may be claimed again."""
        with self._lock:
            self._running.pop(key, None)

    def delivery_ids(self) -> frozenset[int]:
        """Deliveries whose abandoned send may still be running: claims skip them."""
        with self._lock:
            return frozenset(d for _, d in self._running.values() if d is not None)

    def count(self, channel: str) -> int:
        """Abandoned calls of ``channel`` still running."""
        with self._lock:
            return sum(1 for c, _ in self._running.values() if c == channel)


class _Runners:
    """Daemon threads running lanes, reused from batch to batch.

    Grows on demand (an abandoned thread stays busy until its call returns) and shrinks
    again: a thread idle for :attr:`idle` seconds ends. After a fork the child starts
    with none (the parent's threads do not exist there).
    """

    idle = 60.0

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        #: threads waiting for a task, less the tasks queued for them
        self._waiting = 0
        self._started = 0

    def submit(
        self, run: Callable[[], None], finished: threading.Event, wake: queue.SimpleQueue[None]
    ) -> None:
        """Call ``run`` on an idle thread, or a new one (RuntimeError: out of threads);
        then set ``finished`` and put a token on ``wake``."""
        task = _Task(run, finished, wake)
        with self._lock:
            if self._waiting > 0:
                self._waiting -= 1
                self._tasks.put(task)
                return
            self._started += 1
            name = f"notice-send-{self._started}"
        # handed over in a list the thread empties: a Thread keeps its args for good
        threading.Thread(target=self._loop, args=([task],), name=name, daemon=True).start()

    def _loop(self, first: list[_Task]) -> None:
        task = first.pop()
        while True:
            try:
                task.run()
            except BaseException:  # noqa: BLE001 - lanes catch their own; a bug guard
                logger.exception("a send thread's task failed")
            finished, wake = task.finished, task.wake
            # signalled only once this thread let go of the task (its batch, the app):
            # a caller that returns and drops the app finds it collectable
            del task
            finished.set()
            wake.put(None)
            del finished, wake
            with self._lock:
                self._waiting += 1
            try:
                task = self._tasks.get(timeout=self.idle)
                continue
            except queue.Empty:
                pass
            with self._lock:
                # a task queued between the time-out and here counted on this thread
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    self._waiting -= 1
                    return


@dataclass
class _Task:
    run: Callable[[], None]
    finished: threading.Event
    wake: queue.SimpleQueue[None]


_runners = _Runners()


@dataclass
class _Call:
    """A call into a sender in progress on a lane's thread."""

    kind: str  # "open" or "send"
    started: float
    item: Item | None = None
    #: set when the call is abandoned: the :class:`HungSends` key to drop on return
    hung_key: int | None = None


class _Lane:
    """One channel's share of a batch, sent in order by one thread at a time."""

    def __init__(self, channel: str, sender: Sender, items: Sequence[Item]) -> None:
        self.channel = channel
        self.sender = sender
        self.pending: deque[Item] = deque(items)
        #: the generation of the thread owning the lane; abandoned threads hold older ones
        self.generation = 0
        self.call: _Call | None = None
        #: no further send starts: each item has an outcome or was given back
        self.sending_done = False
        #: set when the owning thread's task ended (its batch closed); None: no task
        #: to wait for
        self.finished: threading.Event | None = None


class SendBatch:
    """Sends one claimed batch, a thread per channel, each call watched by the caller.

    :param app: pushed as a fresh app context on every send thread (senders and their
        hooks get a ``db.session`` of their own).
    :param timeout: seconds one call into a sender may take.
    :param stop_at: ``time.monotonic()`` after which no send starts (what is left is
        given back): the lease must outlast the last send's deadline.
    :param stop: once set, no send starts (a worker asked to stop).
    :param hung: this process's abandoned sends.
    """

    def __init__(
        self,
        app: Flask,
        *,
        timeout: float,
        stop_at: float,
        stop: threading.Event | None,
        hung: HungSends,
        send_one: SendOne,
        fail: Fail,
    ) -> None:
        # weakly: a send thread finishing up after the caller moved on must not keep a
        # dropped app alive
        self._app = weakref.ref(app)
        self.timeout = timeout
        self.stop_at = stop_at
        self.stop = stop
        self.hung = hung
        self._send_one = send_one
        self._fail = fail
        self._lock = threading.Lock()
        # a C-level queue rather than a Condition: a KeyboardInterrupt raised while the
        # caller waits cannot leave a lock half-taken
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lanes: list[_Lane] = []
        #: outcomes of the calls made (or abandoned)
        self.outcomes: list[Outcome] = []
        #: ids of deliveries never sent (stopping, or the lease running out)
        self.unsent: list[int] = []
        #: what interrupted the caller's wait (KeyboardInterrupt, SystemExit in the main
        #: thread); raise it once the outcomes are recorded
        self.interrupted: BaseException | None = None

    # --- the caller's side -------------------------------------------------------------

    def run(self, shares: Mapping[str, tuple[Sender, Sequence[Item]]]) -> None:
        """Send every share; return when each delivery has an outcome or was given back.

        Interrupted (Ctrl-C, a second SIGTERM), it returns at once: the sends in flight
        are abandoned and recorded as failures, the rest is given back, and the
        exception is kept in :attr:`interrupted`.
        """
        inline: list[_Lane] = []
        with self._lock:
            for channel, (sender, items) in shares.items():
                lane = _Lane(channel, sender, items)
                self._lanes.append(lane)
                if sender.blocking:
                    self._start(lane)
                else:
                    inline.append(lane)
        try:
            for lane in inline:
                # a sender that cannot hang is called here: handing a one-delivery
                # batch to a send thread and waiting on it was a third of a sync emit's
                # send (bench/emit.py); its lane is never abandoned, nothing to watch
                lane.generation += 1
                self._work(lane, lane.generation, threading.current_thread().name, inline=True)
            self._watch()
        except BaseException as exc:  # noqa: BLE001 - recorded first, raised by the caller
            self.interrupted = exc
            with self._lock:
                self._abandon_all(exc)

    def wait_closed(self) -> None:
        """Wait, at most one send timeout, for the threads to close their batches (after
        the outcomes are recorded: a close never delays them)."""
        end = time.monotonic() + self.timeout
        while True:
            with self._lock:
                unclosed = [
                    lane.channel
                    for lane in self._lanes
                    if lane.finished is not None and not lane.finished.is_set()
                ]
            if not unclosed:
                return
            left = end - time.monotonic()
            if left <= 0:
                logger.warning(
                    "sender(s) %s did not close their batch within %g s; left running",
                    ", ".join(repr(c) for c in unclosed),
                    self.timeout,
                )
                return
            try:
                self._wake.get(timeout=min(left, POLL))
            except queue.Empty:
                pass

    def _watch(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                for lane in self._lanes:
                    self._check(lane, now)
                if all(lane.sending_done for lane in self._lanes):
                    return
                wait = min(
                    (
                        lane.call.started + self.timeout - now
                        for lane in self._lanes
                        if lane.call is not None and not lane.sending_done
                    ),
                    default=self.timeout,
                )
            try:
                self._wake.get(timeout=min(max(wait, 0.001), POLL))
            except queue.Empty:
                pass

    def _check(self, lane: _Lane, now: float) -> None:
        """Abandon ``lane``'s call when it is past its deadline (lock held)."""
        call = lane.call
        if call is None or lane.sending_done or now < call.started + self.timeout:
            return
        # abandon the thread: nobody waits for it any more
        lane.generation += 1
        lane.call = None
        lane.finished = None
        if call.kind == "open":
            # counted as hung too: a sender whose open() always hangs must not take a
            # new thread each batch, without end
            call.hung_key = self.hung.add(lane.channel, None)
            error = f"opening a {lane.channel!r} batch timed out after {self.timeout:g} s"
            logger.warning("%s; its thread is abandoned", error)
            self._fail_rest(lane, TransientError(error), error)
            return
        assert call.item is not None
        delivery, notice = call.item
        call.hung_key = self.hung.add(lane.channel, delivery.id)
        error = f"timed out after {self.timeout:g} s"
        logger.warning(
            "delivery %s (%s) %s; its send is abandoned", delivery.id, lane.channel, error
        )
        self.outcomes.append(self._fail(delivery, notice, TransientError(error), error))
        if lane.pending:
            self._start(lane)  # the rest of the share goes on without it
        else:
            lane.sending_done = True

    def _abandon_all(self, exc: BaseException) -> None:
        """The caller was interrupted: record the sends in flight as failures (the
        registry keeps their deliveries from being claimed while they may still run)
        and give the rest back (lock held)."""
        for lane in self._lanes:
            if lane.sending_done:
                continue
            call = lane.call
            lane.generation += 1
            lane.call = None
            if call is not None and call.item is not None:
                delivery, notice = call.item
                call.hung_key = self.hung.add(lane.channel, delivery.id)
                error = f"interrupted by {type(exc).__name__} while sending"
                self.outcomes.append(self._fail(delivery, notice, TransientError(error), error))
            elif call is not None:
                call.hung_key = self.hung.add(lane.channel, None)
            self.unsent.extend(d.id for d, _ in lane.pending)
            lane.pending.clear()
            lane.sending_done = True
            lane.finished = None

    def _start(self, lane: _Lane) -> None:
        """Hand the rest of ``lane`` to a thread (lock held)."""
        hung = self.hung.count(lane.channel)
        if hung >= MAX_HUNG_PER_CHANNEL:
            error = f"{hung} earlier calls into {lane.channel!r} are still hung in this process"
            self._fail_rest(lane, TransientError(error), error)
            return
        lane.generation += 1
        generation = lane.generation
        # named after the thread it sends for while it does ("notice-dispatch-0:send-email")
        name = f"{threading.current_thread().name}:send-{lane.channel}"
        lane.finished = threading.Event()
        try:
            _runners.submit(lambda: self._work(lane, generation, name), lane.finished, self._wake)
        except RuntimeError as exc:  # out of threads
            lane.finished = None
            error = f"cannot start a send thread: {exc}"
            self._fail_rest(lane, TransientError(error), error)

    def _fail_rest(self, lane: _Lane, exc: BaseException, error: str | None) -> None:
        self.outcomes.extend(self._fail(d, n, exc, error) for d, n in lane.pending)
        lane.pending.clear()
        lane.sending_done = True
        self._wake.put(None)

    # --- a lane's thread -----------------------------------------------------------------

    def _work(self, lane: _Lane, generation: int, name: str, *, inline: bool = False) -> None:
        """Open, send and close ``lane``'s share; ``inline``: on the caller's thread,
        where an interruption (Ctrl-C, SystemExit) is the caller's to handle."""
        thread = threading.current_thread()
        idle_name, thread.name = thread.name, name
        try:
            app = self._app()
            if app is None:
                raise RuntimeError("the app of this batch was garbage-collected")
            with app.app_context():
                del app
                if self._open(lane, generation):
                    if inline:
                        self._send_inline(lane)
                    else:
                        self._send_share(lane, generation)
                    # also after an abandoned call returned: it frees this thread's
                    # batch state (an SMTP connection)
                    self._close(lane)
        except BaseException as exc:  # noqa: BLE001 - a bug guard: the caller must not wait on us
            logger.exception("sending a %r batch failed", lane.channel)
            with self._lock:
                if lane.generation == generation and not lane.sending_done:
                    call, lane.call = lane.call, None
                    if call is not None and call.item is not None:
                        self.outcomes.append(self._fail(*call.item, exc, None))
                    self._fail_rest(lane, exc, None)
            if inline and not isinstance(exc, Exception):
                raise
        finally:
            thread.name = idle_name

    def _open(self, lane: _Lane, generation: int) -> bool:
        with self._lock:
            if lane.generation != generation:
                return False
            call = lane.call = _Call("open", time.monotonic())
            # snapshot under the lock: the watcher may take items off ``pending``; none
            # for a sender without a prepare() of its own (a pair per delivery)
            items = (
                [(notice, delivery.target) for delivery, notice in lane.pending]
                if type(lane.sender).prepare is not Sender.prepare
                else None
            )
        failure: BaseException | None = None
        try:
            lane.sender.open()
            if items is not None:
                # the batch's targets in one query, not one per send (bench/push.py)
                lane.sender.prepare(items)
        except BaseException as exc:  # noqa: BLE001 - a sender's failure is recorded
            failure = exc
        with self._lock:
            if lane.generation != generation:  # abandoned: close it if it opened
                key = call.hung_key
            else:
                lane.call = None
                if failure is not None:
                    logger.error("sender %r failed to open a batch", lane.channel, exc_info=failure)
                    self._fail_rest(lane, failure, None)
                return failure is None
        if key is not None:
            self.hung.done(key)
        return failure is None

    def _send_share(self, lane: _Lane, generation: int) -> None:
        while True:
            with self._lock:
                if lane.generation != generation:
                    return
                if not lane.pending:
                    lane.sending_done = True
                    self._wake.put(None)
                    return
                if self._stopping(lane):
                    return
                item = lane.pending.popleft()
                call = lane.call = _Call("send", time.monotonic(), item)
            try:
                outcome = self._send_one(lane.sender, *item)
            except BaseException as exc:  # noqa: BLE001 - send_one records; this is a bug guard
                outcome = self._fail(*item, exc, None)
            with self._lock:
                if lane.generation == generation:
                    lane.call = None
                    self.outcomes.append(outcome)
                    self._wake.put(None)
                    continue
                key = call.hung_key
            # abandoned: a time-out or failure is recorded in its place; this late result
            # is dropped (the claim token was given up with it)
            if key is not None:
                self.hung.done(key)
            logger.warning(
                "delivery %s (%s): an abandoned send returned after %.1f s; its result "
                "(%s) is dropped",
                item[0].id,
                lane.channel,
                time.monotonic() - call.started,
                outcome.status.value,
            )
            return

    def _send_inline(self, lane: _Lane) -> None:
        """:meth:`_send_share` on the caller's thread, for a sender that cannot block.

        Nothing else touches an inline lane while it sends: the watcher starts once the
        inline lanes are done, and only an interruption ends one early (its handler
        reads :attr:`_Lane.call`). So there is no lock, wake-up or call record per send
        (they were a third of a fan-out's sending time with the memory sender): one
        :class:`_Call` tracks the send in flight, the outcomes are handed over at the
        end, also when interrupted. The lease's ``stop_at`` is still checked before
        every send.
        """
        pending = lane.pending
        send_one, sender, fail = self._send_one, lane.sender, self._fail
        stop, stop_at, monotonic = self.stop, self.stop_at, time.monotonic
        outcomes: list[Outcome] = []
        call = lane.call = _Call("send", monotonic())
        try:
            while pending and not (stop is not None and stop.is_set()) and monotonic() < stop_at:
                call.item = item = pending.popleft()
                try:
                    outcome = send_one(sender, *item)
                except BaseException as exc:  # noqa: BLE001 - send_one records; a bug guard
                    outcome = fail(*item, exc, None)
                outcomes.append(outcome)
                call.item = None
        finally:
            with self._lock:
                self.outcomes.extend(outcomes)
        with self._lock:
            lane.call = None
            if pending:
                self._stopping(lane)
            else:
                lane.sending_done = True
                self._wake.put(None)

    def _stopping(self, lane: _Lane) -> bool:
        """Give the rest of ``lane`` back when the worker stops or the lease could run
        out during the next send (lock held)."""
        stopped = self.stop is not None and self.stop.is_set()
        if not stopped:
            if time.monotonic() < self.stop_at:
                return False
            logger.warning(
                "lease nearly over: giving the rest of a %r batch back "
                "(NOTICE_CLAIM_TIMEOUT is short for this sender)",
                lane.channel,
            )
        self.unsent.extend(d.id for d, _ in lane.pending)
        lane.pending.clear()
        lane.sending_done = True
        self._wake.put(None)
        return True

    def _close(self, lane: _Lane) -> None:
        try:
            lane.sender.close()
        except BaseException:  # noqa: BLE001 - the outcomes are what matters
            logger.exception("sender %r failed to close its batch", lane.channel)
