"""The inbox model's writes: mark notices seen, archive and unarchive them.

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
from .common import update_mine


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
