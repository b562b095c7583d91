"""Every signal ``notice`` sends, in one blinker Namespace.

The sender of each signal is the real Flask app object
(``current_app._get_current_object()``); connect with ``sender=app`` to hear only one
app. blinker lets a receiver's exception reach whoever sent the signal, so keep
receivers small; the library's own handlers record failures instead of raising.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

logger = logging.getLogger("notice")

_signals = Namespace()

#: Sent by :func:`notice.notice_event`. kwargs: ``event`` (:class:`notice.NoticeEvent`).
#: The library's receiver (connected with ``sender=app``) writes the rows and records
#: them on ``event.result``. Every receiver runs inside the caller's transaction: the
#: rows are committed only if all of them return; one that raises rolls the event back
#: (nothing written, nothing sent) and the caller gets its exception. Apps connect
#: receivers here to veto or to write rows of their own atomically with the notice;
#: to observe, use ``notice_created``.
notification = _signals.signal("notification")

#: Sent after all ``notification`` receivers returned, before commit (the event's
#: ``commit=True`` commits right after). kwargs: ``notice_ids`` (list of int),
#: ``event``. A receiver's exception is logged, never raised.
notice_created = _signals.signal("notice-created")

#: Sent after a delivery succeeded. kwargs: ``notice`` (:class:`notice.NoticeView`),
#: ``channel``, ``target``.
notice_sent = _signals.signal("notice-sent")

#: Sent after a delivery failed. kwargs: ``notice``, ``channel``, ``target``, ``error``
#: (str), ``final`` (bool: no retry will follow).
notice_failed = _signals.signal("notice-failed")

#: Sent after notices were marked read or unread. kwargs: ``user_id``, ``ids``
#: (list of int, or None for "all"), ``read`` (bool), ``count`` (rows changed).
notice_read = _signals.signal("notice-read")

#: Sent after notices were marked seen (the inbox listed them; see
#: ``Notices.mark_seen``). kwargs: ``user_id``, ``ids`` (list of int, or None for
#: "all"), ``count`` (rows changed: notices seen for the first time).
notice_seen = _signals.signal("notice-seen")


def send_observing(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send an after-the-fact signal: each receiver runs, and one that raises is logged
    instead of stopping the others or the caller (blinker's ``send`` would raise)."""
    if not signal.receivers:
        return
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:  # noqa: BLE001 - observers never break publishing or delivery
            logger.exception("a receiver of the %r signal raised", signal.name)
