"""Born-claimed deliveries: what the publisher wrote, held in memory from the write to
the send, so the sending process needs neither a claim nor a read after commit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field
from itertools import repeat
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
        """``(delivery, notice)`` pairs, one view per notice.

        Built without a Python call per delivery: the rows by ``map`` and ``zip`` in C,
        the views by :func:`_view_maker` (one per notice, however many deliveries it has).
        """
        deliveries = list(
            map(
                tuple.__new__,
                repeat(ClaimedDelivery),
                zip(
                    self.delivery_ids,
                    self.notice_ids,
                    self.channels,
                    self.targets,
                    repeat(1, len(self)),  # attempts: the write counted this first try
                    repeat(0, len(self)),  # lease_expiries
                    strict=True,
                ),
            )
        )
        make = _view_maker(self.shared)
        by_id: dict[int, NoticeView] = {}
        views = []
        for n, u in zip(self.notice_ids, self.user_ids, strict=True):
            view = by_id.get(n)
            if view is None:
                view = by_id[n] = make(n, u)
            views.append(view)
        return list(zip(deliveries, views, strict=True))


#: the slot setters of :class:`NoticeView`, in field order
_VIEW_SETTERS: dict[str, Any] = {
    name: getattr(NoticeView, name).__set__ for name in NoticeView.__dataclass_fields__
}


def _view_maker(shared: dict[str, Any]) -> Callable[[int, Any], NoticeView]:
    """``make(id, user_id)``: a Wait :class:`NoticeView` with ``shared``'s values, as
    ``NoticeView(id=..., user_id=..., send_status="Wait", **shared)`` builds it.

    Its slots are set directly: the frozen dataclass's ``__init__`` (a keyword call,
    then ``object.__setattr__`` by name for each of its 26 fields) took most of a
    fan-out's send preparation, one view per recipient.
    """
    values: dict[str, Any] = {}
    for name, f in NoticeView.__dataclass_fields__.items():
        if name in shared:
            values[name] = shared[name]
        elif f.default is not MISSING:
            values[name] = f.default
    values["send_status"] = SendStatus.WAIT.value
    unknown = set(shared) - set(_VIEW_SETTERS)
    missing = set(_VIEW_SETTERS) - set(values) - {"id", "user_id"}
    if unknown or missing:
        raise TypeError(f"not NoticeView's fields: {sorted(unknown)}, missing {sorted(missing)}")
    constants = [(_VIEW_SETTERS[name], value) for name, value in values.items()]
    set_id, set_user = _VIEW_SETTERS["id"], _VIEW_SETTERS["user_id"]
    new = object.__new__

    def make(notice_id: int, user_id: Any) -> NoticeView:
        view: NoticeView = new(NoticeView)
        set_id(view, notice_id)
        set_user(view, user_id)
        for set_, value in constants:
            set_(view, value)
        return view

    return make


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
