"""The email sender's bookkeeping: which notices went out by email."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .common import chunks, in_list, lock_ids, run_transaction


def mark_emailed(
    engine: Engine, notice: sa.Table, notice_ids: Sequence[int], *, now: datetime
) -> None:
    """Record that ``notice_ids`` were emailed at ``now``, so the digest skips them; a
    notice already marked keeps its first time."""
    run_transaction(
        engine,
        lambda conn: set_emailed(conn, notice, notice_ids, now=now),
        write=True,
        what="marking notices emailed",
    )


def set_emailed(
    conn: Connection, notice: sa.Table, notice_ids: Sequence[int], *, now: datetime
) -> None:
    """Set ``emailed_at`` of those of ``notice_ids`` without one, in ``conn``'s
    transaction (a write transaction on SQLite: :func:`~notice.store.common.begin_write`).

    The rows are locked in id order first, as every statement locking notices does: an
    ``UPDATE ... WHERE id IN (...)`` locks them in plan order and could deadlock with a
    delivery ``finish`` or a "mark all read" of the same notices.
    """
    c = notice.c
    dialect = conn.dialect.name
    unmarked = sa.and_(in_list(c.id, "ids", dialect), c.emailed_at.is_(None))
    mark = sa.update(notice).where(in_list(c.id, "ids", dialect)).values(emailed_at=now)
    for part in chunks(sorted(set(notice_ids))):
        locked = lock_ids(conn, notice, unmarked, params={"ids": list(part)})
        if locked:
            conn.execute(mark, {"ids": locked})
