"""Throttle's statements: serialize publishers of one user x type x channel, and count
what that combination sent lately.

:mod:`notice.throttle` runs them in the publishing transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..types import DeliveryStatus, user_key
from .common import cached, in_list

#: ``last_error`` of a delivery over its limit, left out of the digest too
THROTTLED = "throttled"
#: ``last_error`` of one over its limit that the next digest may list
THROTTLED_TO_DIGEST = "throttled: left to the digest"


def lock(session: Session, notice: sa.Table, keys: Sequence[str]) -> None:
    """Hold, until the transaction ends, a lock per ``keys`` entry (user x type x
    channel), so two publishers cannot both count "one below the limit" and both send.

    PostgreSQL: transaction-level advisory locks, taken in sorted order (no deadlock
    between publishers locking overlapping sets). SQLite: the database write lock,
    taken by a write that changes nothing; the count that follows then sees every
    committed delivery and no other writer until this one commits.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        # one statement for a whole fan-out, the locks taken in the sorted subquery's order
        stmt = sa.text(
            "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT hashtextextended(k, 0) AS h "
            "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS ordered"
        )
        session.execute(stmt, {"keys": sorted({f"notice-throttle:{k}" for k in keys})})
    elif dialect == "sqlite":
        c = notice.c
        session.execute(sa.update(notice).where(c.id == -1).values(id=c.id))


def recent_counts(
    session: Session,
    notice: sa.Table,
    delivery: sa.Table,
    user_ids: Sequence[Any],
    notice_type: str,
    channel: str,
    since: datetime,
) -> dict[str, int]:
    """``{user_key: notices}``: per user, the notices of ``notice_type`` with a
    ``channel`` delivery created since ``since`` that was not skipped (throttled ones
    included in that: they never went out)."""
    n, d = notice.c, delivery.c
    dialect = session.get_bind().dialect.name
    stmt = cached(
        delivery,
        "throttle_recent",
        dialect,
        lambda: (
            sa.select(n.user_id, sa.func.count(sa.distinct(d.notice_id)))
            .select_from(delivery.join(notice, n.id == d.notice_id))
            .where(
                in_list(n.user_id, "users", dialect),
                n.notice_type == sa.bindparam("t"),
                d.channel == sa.bindparam("c"),
                d.create_at >= sa.bindparam("since"),
                d.status != DeliveryStatus.SKIPPED.value,
            )
            .group_by(n.user_id)
        ),
    )
    rows = session.execute(
        stmt, {"users": list(user_ids), "t": notice_type, "c": channel, "since": since}
    )
    return {user_key(u): int(count) for u, count in rows}
