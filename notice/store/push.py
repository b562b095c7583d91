"""Push subscriptions' queries: a browser's row by endpoint, a user's devices, the
per-user device limit.

Functions work in the caller's ORM session and leave committing to it. ``device`` is
the push subscription model class, ``subscription`` the topic subscription model class.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

# --- the subscription views and the service API -------------------------------------


def find(session: Session, device: Any, endpoint: str) -> Any:
    """The push subscription at ``endpoint``, or None."""
    return session.execute(
        sa.select(device).where(device.endpoint == endpoint)
    ).scalar_one_or_none()


def user_devices(session: Session, device: Any, user_id: Any) -> list[Any]:
    """Rows of every push subscription of ``user_id`` (all columns), oldest first."""
    table = device.__table__
    return list(
        session.execute(table.select().where(table.c.user_id == user_id).order_by(table.c.id))
    )


def drop_least_used(session: Session, device: Any, user_id: Any, *, keep: int) -> None:
    """Delete ``user_id``'s push subscriptions beyond the ``keep`` most recently used
    (last success, else creation)."""
    ids = session.execute(
        sa.select(device.id)
        .where(device.user_id == user_id)
        .order_by(
            sa.func.coalesce(device.last_success_at, device.created_at).desc(),
            device.id.desc(),
        )
    ).scalars()
    stale = list(ids)[keep:]
    if stale:
        session.execute(sa.delete(device).where(device.id.in_(stale)))


def remove(session: Session, device: Any, user_id: Any, endpoint: str) -> bool:
    """Delete ``user_id``'s subscription at ``endpoint``; False if it is not theirs."""
    result = session.execute(
        sa.delete(device).where(device.endpoint == endpoint, device.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def move_topics(session: Session, subscription: Any, from_id: int, to_id: int) -> None:
    """Move the topic subscriptions of push subscription ``from_id`` to ``to_id``,
    dropping those ``to_id`` already has."""
    TS = subscription
    have = set(
        session.execute(sa.select(TS.topic_id).where(TS.push_subscription_id == to_id)).scalars()
    )
    for row in session.execute(sa.select(TS).where(TS.push_subscription_id == from_id)).scalars():
        if row.topic_id in have:
            session.delete(row)
        else:
            row.push_subscription_id = to_id
    session.flush()
