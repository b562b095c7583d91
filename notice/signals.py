"""Every signal ``notice`` sends, in one blinker Namespace.

The sender of each signal is the real Flask app object
(``current_app._get_current_object()``); connect with ``sender=app`` to hear only one
app. blinker lets a receiver's exception reach whoever sent the signal, so keep
receivers small; the library's own handlers record failures instead of raising.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent by :func:`notice.notice_event`. kwargs: ``event`` (:class:`notice.NoticeEvent`).
#: The library's handler (connected with ``sender=app``) writes the rows and returns
#: what it wrote; apps may connect their own receivers (audit logs, metrics).
notification = _signals.signal("notification")

#: Sent after new notices were written (before commit when ``commit=False``).
#: kwargs: ``notice_ids`` (list of int), ``event``.
notice_created = _signals.signal("notice-created")

#: Sent after a delivery succeeded. kwargs: ``notice`` (detached Notice), ``channel``,
#: ``target``.
notice_sent = _signals.signal("notice-sent")

#: Sent after a delivery failed. kwargs: ``notice``, ``channel``, ``target``, ``error``
#: (str), ``final`` (bool: no retry will follow).
notice_failed = _signals.signal("notice-failed")

#: Sent after notices were marked read or unread. kwargs: ``user_id``, ``ids``
#: (list of int, or None for "all"), ``read`` (bool), ``count`` (rows changed).
notice_read = _signals.signal("notice-read")
