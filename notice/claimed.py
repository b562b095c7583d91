"""Born-claimed deliveries: what the publisher wrote, held in memory from the write to
the send, so the sending process needs neither a claim nor a read after commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .models import NoticeView
from .types import SendStatus


class ClaimedDelivery(NamedTuple):
    """One delivery row as the send needs it (what :func:`notice.store.load_claimed` reads)."""

    id: int
    notice_id: int
    channel: str
    target: str
    attempts: int
    lease_expiries: int


@dataclass
class ClaimedSegment:
    """One event's born-claimed deliveries, column-wise: the values its notices share
    stored once, and per delivery only its ids, user, channel and target.

    A fan-out's views are built a send part at a time (:meth:`pairs`): a view and a row
    object per recipient, held from the write to the end of the send, grew a fan-out's
    peak memory with its recipients.
    """

    #: the :class:`NoticeView` fields the event's notices share (all but ``id``,
    #: ``user_id`` and ``send_status``, which is Wait for a notice with deliveries)
    shared: dict[str, Any]
    delivery_ids: list[int] = field(default_factory=list)
    notice_ids: list[int] = field(default_factory=list)
    user_ids: list[Any] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    #: some of its notices have deliveries written apart, due later (scheduled): no
    #: notice of the segment is complete, its finish rolls their send status up
    partial: bool = False

    def __len__(self) -> int:
        return len(self.delivery_ids)

    def slice(self, start: int, stop: int) -> ClaimedSegment:
        return ClaimedSegment(
            self.shared,
            self.delivery_ids[start:stop],
            self.notice_ids[start:stop],
            self.user_ids[start:stop],
            self.channels[start:stop],
            self.targets[start:stop],
            self.partial,
        )

    def pairs(self) -> list[tuple[ClaimedDelivery, NoticeView]]:
        """``(delivery, notice)`` pairs, one view per notice."""
        views: dict[int, NoticeView] = {}
        out = []
        wait = SendStatus.WAIT.value
        for d, n, u, c, t in zip(
            self.delivery_ids,
            self.notice_ids,
            self.user_ids,
            self.channels,
            self.targets,
            strict=True,
        ):
            view = views.get(n)
            if view is None:
                view = views[n] = NoticeView(id=n, user_id=u, send_status=wait, **self.shared)
            out.append((ClaimedDelivery(d, n, c, t, 1, 0), view))
        return out


@dataclass
class ClaimedBatch:
    """Deliveries written already leased to this process ("born claimed"), with the
    values their send needs, held in memory since the write.

    The publisher builds one per event when the dispatcher sends in this process (sync,
    thread); after commit :func:`notice.delivery.deliver_claimed` sends from it and finishes under
    :attr:`token`: no claim, no read. If the process dies first, the lease runs out and
    the sweeper takes the rows as it takes any abandoned claim.
    """

    #: the claim token the rows were written with (:func:`notice.store.claims.process_token`)
    token: str
    #: ``time.monotonic()`` at the write: the lease runs from there
    started: float
    segments: list[ClaimedSegment] = field(default_factory=list)
    #: notice id -> its ``send_status`` after the finish, filled in by the send
    settled: dict[int, str] = field(default_factory=dict)
    #: send nothing: undo the leases (a dispatcher's full queue, or its shutdown)
    give_back: bool = False

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    @property
    def ids(self) -> list[int]:
        return [i for s in self.segments for i in s.delivery_ids]

    def split(self, size: int) -> list[ClaimedBatch]:
        """Batches of at most ``size`` deliveries, in order."""
        out: list[ClaimedBatch] = []
        room = 0
        for segment in self.segments:
            start = 0
            while start < len(segment):
                if not room:
                    out.append(ClaimedBatch(self.token, self.started))
                    room = size
                take = min(room, len(segment) - start)
                whole = take == len(segment)
                out[-1].segments.append(segment if whole else segment.slice(start, start + take))
                start += take
                room -= take
        return out

    @classmethod
    def merge(cls, batches: Iterable[ClaimedBatch]) -> ClaimedBatch:
        """One batch of several (the thread dispatcher's group of small emits); the
        lease budget is the oldest one's."""
        batches = list(batches)
        if len(batches) == 1:
            return batches[0]
        tokens = {b.token for b in batches}
        if len(tokens) != 1:
            raise ValueError("only batches born under one claim token can be merged")
        segments = [segment for b in batches for segment in b.segments]
        return cls(tokens.pop(), min(b.started for b in batches), segments)
