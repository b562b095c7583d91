"""The broker interface: how a notice written by one process reaches the live streams.

A broker carries small JSON messages to every stream open for one user::

    broker.publish(user_id, {"event": "notice", "id": 7, "data": {...}})
    sub = broker.subscribe(user_id)        # before reading the database: nothing falls
    message = sub.get(timeout=15.0)        # in the gap; None when the timeout passes
    sub.close()

Subclasses implement :meth:`Broker.publish` (send to every process) and feed what they
receive into the process-local :class:`Hub`, which fans messages out to the
subscriptions of this process. A subscription whose queue overflows, or whose broker
lost its connection for a while, receives one ``{"event": "resync"}`` message: the
stream then reloads what it missed from the database, so a slow client or a broker
hiccup never loses a notice.
"""

from __future__ import annotations

import importlib
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import ClassVar

from ..errors import ConfigurationError, NoticeError, TransientError
from ..types import Message, UserId, user_key

#: a message telling a stream it may have missed messages and must reload from the DB
RESYNC: Message = {"event": "resync"}
#: a message telling a stream it was closed for a newer one of the same user
CLOSED: Message = {"event": "closed"}

#: URL schemes of ``NOTICE_BROKER_URL`` and the class serving each
BUILTIN_BROKERS: dict[str, str] = {
    "memory": "notice.brokers.inprocess:InProcessBroker",
    "redis": "notice.brokers.redispubsub:RedisBroker",
    "rediss": "notice.brokers.redispubsub:RedisBroker",
    "postgresql": "notice.brokers.pgnotify:PostgresBroker",
    "postgres": "notice.brokers.pgnotify:PostgresBroker",
}


class BrokerError(TransientError):
    """Publishing failed (the broker is unreachable); the stream sender retries later."""


class TooManyStreams(NoticeError):
    """This process holds ``NOTICE_STREAM_MAX`` streams already; the stream is refused
    (429) until some end."""


def encode(user_id: UserId, message: Message) -> str:
    return json.dumps({"u": user_key(user_id), "m": message}, separators=(",", ":"))


class BadMessage(NoticeError, ValueError):
    """A broker message that is not what :func:`encode` writes."""


def decode(raw: str | bytes) -> tuple[str, Message]:
    """The user key and message of ``raw``; raise :class:`BadMessage` when it is not
    one :func:`encode` wrote."""
    try:
        body = json.loads(raw)
        key, message = body["u"], body["m"]
    except (ValueError, TypeError, KeyError, IndexError):
        raise BadMessage("not a notice broker message") from None
    if not isinstance(key, (str, int)) or isinstance(key, bool) or not isinstance(message, dict):
        raise BadMessage("not a notice broker message")
    return str(key), message


class Subscription:
    """One stream's queue of messages for one user; close it when the stream ends."""

    def __init__(self, hub: Hub, key: str, maxsize: int) -> None:
        self.key = key
        self._hub = hub
        self._queue: queue.Queue[Message] = queue.Queue(maxsize)
        self._lost = False
        #: closed by the hub for a newer stream of the same user (NOTICE_STREAM_MAX_PER_USER)
        self.superseded = False
        self.closed = False

    def put(self, message: Message) -> None:
        """Queue ``message`` without blocking the publisher; a full queue drops it and
        owes the reader a resync."""
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._lost = True

    def get(self, timeout: float) -> Message | None:
        """The next message, :data:`RESYNC` after a loss, :data:`CLOSED` once
        superseded, or None after ``timeout``."""
        if self.superseded:
            return CLOSED
        if not self._lost:
            try:
                message = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if self.superseded:
                return CLOSED
            if message is not RESYNC and not self._lost:
                return message
        self._lost = False
        self._drain()
        return RESYNC

    def mark_lost(self) -> None:
        """Messages may have been lost: the reader gets :data:`RESYNC` next (woken now
        if it is waiting)."""
        self._lost = True
        try:
            self._queue.put_nowait(RESYNC)
        except queue.Full:
            pass

    def supersede(self) -> None:
        """Closed by the hub (already removed from it): the reader gets :data:`CLOSED`
        next, woken now if it is waiting."""
        self.superseded = self.closed = True
        try:
            self._queue.put_nowait(CLOSED)
        except queue.Full:
            pass  # a full queue does not block its reader, who sees the flag next

    def _drain(self) -> None:
        # everything queued is older than the reload the resync triggers
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __iter__(self) -> Iterator[Message]:
        """Messages until closed (blocking); for simple consumers and tests."""
        while not self.closed:
            message = self.get(timeout=1.0)
            if message is not None:
                yield message

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """This process's subscriptions by user key; thread-safe (and greenlet-safe).

    :param max_streams: subscriptions this process holds at most (``NOTICE_STREAM_MAX``);
        past it :meth:`add` raises :class:`TooManyStreams`. None: no bound.
    :param max_per_user: subscriptions one user key holds at most
        (``NOTICE_STREAM_MAX_PER_USER``); one more supersedes the user's oldest.
    """

    def __init__(
        self,
        maxsize: int = 100,
        *,
        max_streams: int | None = None,
        max_per_user: int | None = None,
    ) -> None:
        self._lock = threading.Lock()
        # per key, oldest first (dicts keep insertion order)
        self._subs: dict[str, dict[Subscription, None]] = {}
        self._count = 0
        self.maxsize = maxsize
        self.max_streams = max_streams
        self.max_per_user = max_per_user

    def add(self, key: str) -> Subscription:
        """A new subscription of ``key``. A user at ``max_per_user`` gets it in place
        of their oldest, which is superseded (this even when the process is at
        ``max_streams``: the count stays the same).

        :raise TooManyStreams: the process holds ``max_streams`` subscriptions.
        """
        sub = Subscription(self, key, self.maxsize)
        superseded: list[Subscription] = []
        with self._lock:
            group = self._subs.get(key, {})
            cap = self.max_per_user
            while cap is not None and group and len(group) >= cap:
                oldest = next(iter(group))
                del group[oldest]
                self._count -= 1
                superseded.append(oldest)
            if self.max_streams is not None and self._count >= self.max_streams:
                raise TooManyStreams(
                    f"this process holds {self._count} live streams (NOTICE_STREAM_MAX)"
                )
            group[sub] = None
            self._subs[key] = group
            self._count += 1
        for old in superseded:
            old.supersede()
        return sub

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.key)
            if subs is not None and sub in subs:
                del subs[sub]
                self._count -= 1
                if not subs:
                    del self._subs[sub.key]

    def dispatch(self, key: str, message: Message) -> int:
        """Hand ``message`` to every subscription of ``key``; return how many."""
        with self._lock:
            subs = list(self._subs.get(key, ()))
        for sub in subs:
            sub.put(message)
        return len(subs)

    def lost_all(self) -> None:
        """The broker was cut off: every stream must reload from the database."""
        with self._lock:
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.mark_lost()

    def keys(self) -> set[str]:
        """User keys with at least one subscription in this process."""
        with self._lock:
            return set(self._subs)

    def __len__(self) -> int:
        with self._lock:
            return self._count


class Broker:
    """Base class of brokers. Subclasses set ``name`` and implement :meth:`publish`.

    :param url: the ``NOTICE_BROKER_URL`` (None for the in-process broker).
    :param channel: prefix of channel names (``NOTICE_BROKER_CHANNEL``).
    :param queue_size: messages a slow stream may fall behind before it resyncs.
    """

    #: identifies the broker in logs and ``repr``
    name: ClassVar[str] = ""

    def __init__(self, url: str | None = None, *, channel: str = "notice", queue_size: int = 100):
        self.url = url
        self.channel = channel
        self.hub = Hub(queue_size)

    def publish(self, user_id: UserId, message: Message) -> None:
        """Send ``message`` (JSON-serialisable) to every stream of ``user_id`` in every
        process. Raise on failure; callers decide whether to retry."""
        raise NotImplementedError(f"{type(self).__name__} must implement publish()")

    def publish_many(self, items: Sequence[tuple[UserId, Message]]) -> None:
        """Publish several ``(user_id, message)`` pairs in order; brokers override it to
        send them in one round trip (a fan-out to thousands of users)."""
        for user_id, message in items:
            self.publish(user_id, message)

    def subscribe(self, user_id: UserId) -> Subscription:
        """Start receiving ``user_id``'s messages; ready when this returns."""
        self.start()
        return self.hub.add(user_key(user_id))

    def audience(self) -> set[str] | None:
        """User keys that may have a stream open (None: unknown, e.g. they may be in
        another process); lets the publisher skip work for nobody."""
        return None

    def start(self) -> None:
        """Connect the process's listener if the broker has one (called lazily, so a
        forking server starts it in each worker, never in the master)."""

    def close(self) -> None:
        """Stop listening and release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def load_broker(
    url: str | None,
    *,
    channel: str = "notice",
    queue_size: int = 100,
    max_streams: int | None = None,
    max_per_user: int | None = None,
) -> Broker:
    """The broker for ``NOTICE_BROKER_URL``: None or ``memory://`` for in-process,
    ``redis://``, ``postgresql://``, or ``"package.module:Class"`` for your own.
    ``max_streams`` and ``max_per_user`` bound its hub (see :class:`Hub`)."""
    if not url or url.startswith("memory://"):
        path, url = BUILTIN_BROKERS["memory"], None
    elif "://" in url:
        path = BUILTIN_BROKERS.get(url.split("://", 1)[0].split("+", 1)[0].lower(), "")
    else:
        path = url
    if ":" not in path:
        raise ConfigurationError(
            "NOTICE_BROKER_URL has an unknown scheme; use memory://, redis://, "
            "postgresql:// or a dotted path 'package.module:Class'"
        )
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot load the broker for NOTICE_BROKER_URL ({exc}); an extra may be "
            "missing, e.g. pip install 'notice[redis]' or 'notice[postgres]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Broker)):
        raise ConfigurationError(f"{path} is not a notice.brokers.Broker subclass")
    broker: Broker = cls(url, channel=channel, queue_size=queue_size)
    # set on the hub, not passed to the class: brokers of apps keep their signature
    broker.hub.max_streams = max_streams
    broker.hub.max_per_user = max_per_user
    return broker
