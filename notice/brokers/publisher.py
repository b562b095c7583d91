"""Getting events to the live stream: new notices after their transaction commits, and
unread-count changes.

When notices are written, the publisher (:func:`notice.publish.notice_event`) parks
their ids until the transaction commits (:mod:`notice.aftercommit`). Then they go to
the app's :class:`StreamPublisher`, which reads the committed rows and their
recipients' unread counts and publishes the events from a background thread, so a
fan-out to thousands of users costs the caller nothing; a rollback drops the ids: no
row, no event. Mark read/unread and delete publish the new count directly. The core
builds the broker and this publisher in ``init_app``, so a process serving no pages
(``NOTICE_WEB = False``) publishes live events too.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Engine

from ..models import notice_dict
from ..store.reads import Counts, badge_counts, notices_by_ids
from .base import Broker

logger = logging.getLogger("notice")

#: batches of ids waiting for the publisher thread before callers publish themselves
QUEUE_SIZE = 1000
#: seconds an idle publisher thread lives (it restarts on demand)
IDLE_SECONDS = 2.0

Message = tuple[Any, dict[str, Any]]
#: ("notices", engine, notice ids, {}) or ("count", engine, user id, extra fields)
Job = tuple[str, Engine, Any, dict[str, Any]]


def notice_message(notice: Any) -> dict[str, Any]:
    """The broker message of a new notice (the stream's ``event: notice``)."""
    return {"event": "notice", "id": notice["id"], "data": notice}


def count_message(counts: Counts, **extra: Any) -> dict[str, Any]:
    """The broker message of a count change (the stream's ``event: count``): both
    badge numbers, so each page shows the one its ``NOTICE_BADGE_COUNTS`` names."""
    return {"event": "count", "data": {**counts._asdict(), **extra}}


def load_messages(
    engine: Engine,
    notice: Any,
    notice_ids: Sequence[int],
    audience: set[str] | None,
    name: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[Message]:
    """The ``notice`` events of ``notice_ids`` then their recipients' ``count`` events,
    read in one short connection; only users in ``audience`` when it is known.
    ``name`` names the notices' references in place, once for them all (one resolver
    call per reference type, not one per notice and stream)."""
    if audience is not None and not audience:
        return []  # nobody is listening (in-process broker): no query at all
    messages: list[Message] = []
    users: dict[Any, None] = {}
    with engine.connect() as conn:
        for row in notices_by_ids(conn, notice.__table__, notice_ids):
            if audience is not None and str(row.user_id) not in audience:
                continue
            messages.append((row.user_id, notice_message(notice_dict(row))))
            users[row.user_id] = None
        counts = badge_counts(conn, notice, users) if users else {}
    if name is not None and messages:
        name([message["data"] for _, message in messages])
    messages.extend((user_id, count_message(c)) for user_id, c in counts.items())
    return messages


def _weak_callable(fn: Callable[..., Any]) -> Callable[[], Callable[..., Any] | None]:
    """A weak reference to ``fn``: a bound method's object is not kept alive by it."""
    if hasattr(fn, "__self__") and hasattr(fn, "__func__"):
        return weakref.WeakMethod(fn)
    return lambda: fn


class StreamPublisher:
    """Publishes one app's new notices from a background thread, in commit order.

    The thread starts on demand and ends after :data:`IDLE_SECONDS` idle, so idle apps
    hold no thread and no connection. When its queue is full the caller publishes
    itself (back-pressure rather than loss).
    """

    def __init__(
        self,
        notice: Any,
        broker: Broker,
        name: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self._notice = notice
        self._broker = broker
        #: names references in the notice dicts (``NoticeState.name_references``); held
        #: weakly: the publisher's thread outlives its idle app for a while, and a bound
        #: method of the app's state kept the whole state alive with it
        self._name_ref = None if name is None else _weak_callable(name)
        self._queue: queue.Queue[Job] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _namer(self) -> Callable[[list[dict[str, Any]]], None] | None:
        """The reference namer, while its state lives."""
        return None if self._name_ref is None else self._name_ref()

    def submit(self, engine: Engine, notice_ids: list[int]) -> None:
        """Publish ``notice_ids`` (committed) and their recipients' counts."""
        self._enqueue(("notices", engine, notice_ids, {}))

    def submit_count(self, engine: Engine, user_id: Any, **extra: Any) -> None:
        """Publish ``user_id``'s unread and unseen counts, counted when its turn comes: counts and
        notices go out in one order, so a stale count never follows a fresh one."""
        self._enqueue(("count", engine, user_id, extra))

    def _enqueue(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.run_job(job)
            return
        with self._lock:
            thread = self._thread
            if thread is None or not thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="notice-stream-publisher", daemon=True
                )
                self._thread.start()

    def run_job(self, job: Job) -> None:
        """Load and publish now; failures are logged (streams catch up on reconnect)."""
        kind, engine, arg, extra = job
        try:
            if kind == "notices":
                messages = load_messages(
                    engine, self._notice, arg, self._broker.audience(), self._namer()
                )
            else:
                with engine.connect() as conn:
                    counts = badge_counts(conn, self._notice, [arg])[arg]
                messages = [(arg, count_message(counts, **extra))]
            if messages:
                self._broker.publish_many(messages)
        except Exception:  # noqa: BLE001 - the change is committed; never fail a caller
            logger.warning("publishing to the live stream failed", exc_info=True)

    def _run(self) -> None:
        while True:
            try:
                job = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            self.run_job(job)
