"""The inbox's few queries that the core reading API does not have: grouped unread
counts (one query for a batch of users) and deleting one notice."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..columns import utcnow
from ..types import ReadStatus


def unread_counts(conn: Connection, notice: Any, user_ids: Iterable[Any]) -> dict[Any, int]:
    """Unread, unexpired notices of each user in ``user_ids`` (0 for users with none)."""
    users = list(dict.fromkeys(user_ids))
    counts: dict[Any, int] = dict.fromkeys(users, 0)
    table = notice.__table__
    now = utcnow()
    for start in range(0, len(users), 500):
        stmt = (
            sa.select(table.c.user_id, sa.func.count())
            .where(
                table.c.user_id.in_(users[start : start + 500]),
                table.c.read_status == ReadStatus.UNREAD.value,
                sa.or_(table.c.expires_at.is_(None), table.c.expires_at > now),
            )
            .group_by(table.c.user_id)
        )
        for user_id, count in conn.execute(stmt):
            counts[user_id] = int(count)
    return counts


def delete_notice(session: Any, notice: Any, user_id: Any, notice_id: int) -> Any:
    """Delete ``user_id``'s notice ``notice_id`` (its deliveries go by cascade); return
    the deleted row's read status, or None when there is no such notice of theirs."""
    table = notice.__table__
    row = session.execute(
        sa.delete(table)
        .where(table.c.id == notice_id, table.c.user_id == user_id)
        .returning(table.c.read_status)
    ).first()
    return None if row is None else row[0]
