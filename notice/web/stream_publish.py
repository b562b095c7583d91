"""Getting events to the live stream: new notices after their transaction commits, and
unread-count changes.

When notices are written, the ``notice_created`` receiver (connected per app by
:mod:`notice.web.inbox_setup`) reads them and their recipients' new unread counts
inside the writing transaction, and parks the broker messages in ``session.info``.
They are published right after that transaction commits (ahead of the delivery
dispatcher, so a slow email sender never delays a pop-up) and dropped on rollback:
no row, no event. Mark read/unread and delete publish the new count directly.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from ..brokers.base import Broker
from .inbox_queries import unread_counts

logger = logging.getLogger("notice")

_PENDING_KEY = "notice.stream"


def notice_message(notice: Any) -> dict[str, Any]:
    """The broker message of a new notice (the stream's ``event: notice``)."""
    return {"event": "notice", "id": notice.id, "data": notice.to_dict()}


def count_message(unread: int, **extra: Any) -> dict[str, Any]:
    """The broker message of an unread-count change (the stream's ``event: count``)."""
    return {"event": "count", "data": {"unread": unread, **extra}}


def on_notice_created(app: Flask, *, notice_ids: list[int], **_: Any) -> None:
    """``notice_created`` receiver: queue the new notices' events until commit."""
    ext = app.extensions["notice"]
    broker = ext.state(app).broker
    if broker is None or not notice_ids:
        return
    session = ext.db.session
    Notice = ext.Notice
    messages: list[tuple[Any, dict[str, Any]]] = []
    users: dict[Any, None] = {}
    for start in range(0, len(notice_ids), 500):
        rows = session.execute(
            sa.select(Notice).where(Notice.id.in_(notice_ids[start : start + 500]))
        ).scalars()
        for notice in rows:
            messages.append((notice.user_id, notice_message(notice)))
            users[notice.user_id] = None
    counts = unread_counts(session.connection(), Notice, users)
    messages.extend((user_id, count_message(unread)) for user_id, unread in counts.items())
    session.info.setdefault(_PENDING_KEY, []).append((broker, messages))


def publish_all(broker: Broker, messages: list[tuple[Any, dict[str, Any]]]) -> None:
    """Publish ``messages``; a failure is logged, never raised (the stream catches up
    from the database when it reconnects)."""
    try:
        broker.publish_many(messages)
    except Exception:  # noqa: BLE001 - the notices are committed; never fail the caller
        logger.warning("publishing to the live stream failed", exc_info=True)


def _after_commit(session: Session) -> None:
    for broker, messages in session.info.pop(_PENDING_KEY, ()):
        publish_all(broker, messages)


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


_hooked = False


def install_session_hooks() -> None:
    """Listen on every Session once, ahead of the delivery dispatcher's hook."""
    global _hooked
    if not _hooked:
        sa.event.listen(Session, "after_commit", _after_commit, insert=True)
        sa.event.listen(Session, "after_rollback", _after_rollback)
        _hooked = True


def publish_count(app: Flask, user_id: Any, **extra: Any) -> None:
    """Publish ``user_id``'s unread count to their streams (failures logged only)."""
    ext = app.extensions["notice"]
    broker = ext.state(app).broker
    if broker is None:
        return
    try:
        broker.publish(user_id, count_message(ext.unread_count(user_id), **extra))
    except Exception:  # noqa: BLE001 - the change is committed; the stream catches up
        logger.warning("publishing an unread count to the live stream failed", exc_info=True)
