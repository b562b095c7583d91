"""``capture_notices``: every channel's sender swapped for a capturing one.

Publishing, routing, preferences and the delivery rows stay as in production (the
real senders still choose the targets); only the last step changes: instead of
transmitting, a capturing sender asks the real one for what it would send
(:meth:`notice.Sender.preview`) and records it. Deliveries end ``Sent``, or ``Skipped``
where the real sender would skip (a user without an email address).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flask import Flask, current_app

from ..senders.base import Sender
from ..state import NoticeState, state_of
from ..store import progress
from .outbox import CapturedNotice, NoticeOutbox

#: seconds the assertions wait, by default, for the background dispatcher
DEFAULT_TIMEOUT = 10.0

#: dispatch modes that send before ``notice_event()`` or the commit returns, or not
#: at all until someone calls ``notices.sweep()``: nothing to wait for
_NO_BACKGROUND = ("sync", "none")

# app -> its active outbox: a second capture of one app would swap in capturing
# senders around capturing senders, and the first one's exit would undo the second's
_active: weakref.WeakKeyDictionary[Flask, NoticeOutbox] = weakref.WeakKeyDictionary()


class CapturingSender(Sender):
    """Stands in for ``real``: records what ``real`` would send, sends nothing.

    Routing keeps asking the real sender (its ``targets`` and ``validate_data``); this
    one only replaces the sending step, so its :meth:`targets` is never consulted.
    """

    def __init__(self, real: Sender, outbox: NoticeOutbox) -> None:
        self.real = real
        self.outbox = outbox

    def validate_data(self, data: object) -> None:
        self.real.validate_data(data)

    def send(self, notice: Any) -> None:
        self.send_to(notice, "")

    def send_to(self, notice: Any, target: str) -> None:
        payload = self.real.preview(notice, target)
        self.outbox.record(CapturedNotice(notice, self.name, target, payload))

    def __repr__(self) -> str:
        return f"<CapturingSender for {self.real!r}>"


def _capturing(real: Sender, outbox: NoticeOutbox) -> CapturingSender:
    # ``name`` is a class attribute (the Sender interface): a subclass per channel
    cls = type(f"Capturing{type(real).__name__}", (CapturingSender,), {"name": real.name})
    sender: CapturingSender = cls(real, outbox)
    return sender


@contextmanager
def capture_notices(
    app: Flask | None = None, *, timeout: float = DEFAULT_TIMEOUT
) -> Iterator[NoticeOutbox]:
    """Capture what ``app`` (default: the current app) sends, instead of sending it.

    ::

        with capture_notices(app) as outbox:
            notice_event(ben.id, NoticeType.COMMENT, subject="Hi", content="...")
        outbox.assert_sent(to=ben, type=NoticeType.COMMENT, channel="email")
        assert "Hi" in outbox.sent(channel="email")[0].email.html

    Every sender of the app is replaced for the block and restored on exit, also
    when the block raises. Rows are written and delivered as usual, so the inbox,
    unread counts and the ``notice_sent`` signal behave as in production.

    With a background dispatcher (``NOTICE_DISPATCH = "thread"``, ``"celery"``) the
    outbox's reads and assertions first wait, up to ``timeout`` seconds, until every
    delivery written during the block has an outcome; so does a normal exit, so no
    send reaches a real sender after the block. Commit notices published with
    ``commit=False`` inside the block: they are sent after the commit (a rollback
    sends nothing).

    :raise RuntimeError: notices of ``app`` are being captured already.
    """
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    assert app is not None
    state = state_of(app)
    if app in _active:
        raise RuntimeError(
            "notices of this app are already being captured: use the outbox of the "
            "enclosing capture_notices() block (or the notice_outbox fixture's)"
        )
    settle = None
    if state.settings.dispatch not in _NO_BACKGROUND:
        settle = _settler(state, app, timeout)
    outbox = NoticeOutbox(user_id=state.coerce_user_id, settle=settle)
    originals = dict(state.senders_by_name)
    _active[app] = outbox
    try:
        # values replaced in place, never keys added or removed: a delivery thread
        # reading the mapping meanwhile sees one sender or the other, never a KeyError
        for name, sender in originals.items():
            state.senders_by_name[name] = _capturing(sender, outbox)
        yield outbox
        outbox.wait()  # sends in flight finish captured, not on the real senders
    finally:
        for name, sender in originals.items():
            state.senders_by_name[name] = sender
        outbox.stop_waiting()
        _active.pop(app, None)


def _settler(state: NoticeState, app: Flask, default: float) -> Any:
    """A ``settle(timeout)`` waiting for deliveries written after now to get outcomes."""
    table = state.models.Delivery.__table__
    with app.app_context():
        engine = state.engine
    after = progress.last_delivery_id(engine, table)

    def settle(timeout: float | None) -> None:
        limit = default if timeout is None else timeout
        deadline = time.monotonic() + limit
        pause = 0.005
        while True:
            waiting = progress.waiting_after(engine, table, after)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{waiting} deliveries written while capturing still have no outcome "
                    f"after {limit:g} s: the {state.settings.dispatch!r} dispatcher did not "
                    "run them (its queue was full, or a sender hangs?)"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    return settle


__all__: Sequence[str] = ["DEFAULT_TIMEOUT", "CapturingSender", "capture_notices"]
