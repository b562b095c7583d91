"""The inbox model's writes: mark notices seen, archive and unarchive them; delete the
notices about a row of the app that is gone.

Like :func:`~notice.store.reads.set_read`, only the user's own rows are touched
whatever ids are passed, and on PostgreSQL the rows are locked in id order before they
change, so two tabs archiving at once (or archiving against a delivery ``finish``)
cannot deadlock, and a conditional ``UPDATE`` re-checks its condition on the locked row,
so no update is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..columns import utcnow
from ..types import ReadStatus
from .common import chunks, inline, update_mine


def set_seen(session: Session, notice: Any, user_id: Any, ids: Iterable[int] | None) -> int:
    """Mark the user's unseen notices (``ids``, or all when None) seen; rows changed.
    A notice already seen keeps its first ``seen_at``."""
    c = notice.__table__.c
    now = utcnow()
    mine = sa.and_(c.user_id == user_id, c.seen_at.is_(None))
    return update_mine(session, notice, mine, ids, {"seen_at": now, "update_at": now})


def set_archived(
    session: Session,
    notice: Any,
    user_id: Any,
    ids: Iterable[int] | None,
    *,
    archived: bool,
    only_read: bool = False,
) -> int:
    """Archive (or unarchive) the user's notices (``ids``, or all when None); rows
    changed. ``only_read``: archive only those already read ("archive all read"); a
    notice that turns unread while this runs is left in the inbox."""
    c = notice.__table__.c
    mine = sa.and_(
        c.user_id == user_id, c.archived_at.is_(None) if archived else c.archived_at.isnot(None)
    )
    if only_read:
        mine = sa.and_(mine, c.read_status == ReadStatus.READ.value)
    now = utcnow()
    values = {"archived_at": now if archived else None, "update_at": now}
    return update_mine(session, notice, mine, ids, values)


def delete_about(
    session: Session, notice: Any, delivery: Any, kind: str, key: str
) -> list[tuple[int, Any, str]]:
    """Delete every user's notices whose target or action object is the app's row
    ``(kind, key)``, with their deliveries; return ``(id, user_id, read_status)`` of
    each notice deleted.

    The notices are locked first, in id order, then their deliveries are deleted, then
    they: the order delivery ``finish``, ``update_mine`` and the purge lock in, so
    deleting a post while its notices are being sent or marked read cannot deadlock.
    Deliveries are deleted explicitly, as by the purge, so nothing is left behind on a
    SQLite connection without ``foreign_keys=ON``.
    """
    table, deliveries = notice.__table__, delivery.__table__
    c = table.c
    # the values in the statement text, as in the listing's target filter
    type_, id_ = inline(kind), inline(key)
    about = sa.or_(
        sa.and_(c.target_type == type_, c.target_id == id_),
        sa.and_(c.action_object_type == type_, c.action_object_id == id_),
    )
    rows = session.execute(
        sa.select(c.id, c.user_id, c.read_status).where(about).order_by(c.id).with_for_update()
    ).all()
    ids = [row.id for row in rows]
    for part in chunks(ids):
        session.execute(sa.delete(deliveries).where(deliveries.c.notice_id.in_(part)))
        session.execute(sa.delete(table).where(c.id.in_(part)))
    return [(row.id, row.user_id, row.read_status) for row in rows]
