"""The inbox model's writes: mark notices seen, archive and unarchive them.

Like :func:`~notice.store.reads.set_read`, only the user's own rows are touched
whatever ids are passed, and on PostgreSQL the rows are locked in id order before they
change, so two tabs archiving at once (or archiving against a delivery ``finish``)
cannot deadlock, and a conditional ``UPDATE`` re-checks its condition on the locked row,
so no update is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..columns import utcnow
from ..types import ReadStatus
from .common import chunks, lock_ids


def set_seen(session: Session, notice: Any, user_id: Any, ids: Iterable[int] | None) -> int:
    """Mark the user's unseen notices (``ids``, or all when None) seen; rows changed.
    A notice already seen keeps its first ``seen_at``."""
    c = notice.__table__.c
    return _update(
        session,
        notice,
        sa.and_(c.user_id == user_id, c.seen_at.is_(None)),
        ids,
        {"seen_at": utcnow()},
    )


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
    return _update(session, notice, mine, ids, {"archived_at": utcnow() if archived else None})


def _update(
    session: Session,
    notice: Any,
    mine: Any,
    ids: Iterable[int] | None,
    values: dict[str, Any],
) -> int:
    table = notice.__table__
    c = table.c
    base = sa.update(table).where(mine).values(update_at=utcnow(), **values)
    if session.get_bind(mapper=notice).dialect.name == "sqlite":
        # one writer at a time: no lock order to keep (see set_read)
        if ids is None:
            return int(session.execute(base).rowcount)  # type: ignore[attr-defined]
        targets: Sequence[int] = sorted(set(ids))
    elif ids is None:
        targets = lock_ids(session, table, mine)
    else:
        targets = [
            locked
            for part in chunks(sorted(set(ids)))
            for locked in lock_ids(session, table, sa.and_(mine, c.id.in_(part)))
        ]
    changed = 0
    for part in chunks(targets):
        result = session.execute(base.where(c.id.in_(part)))
        changed += int(result.rowcount)  # type: ignore[attr-defined]
    return changed
