"""Push subscriptions' queries: a browser's row by endpoint, a user's devices, the
per-user device limit, and the webpush sender's loads and bookkeeping.

Functions taking a ``session`` work in the caller's ORM session and leave committing to
it; those taking an ``engine`` (the sender's, between deliveries) run in a transaction
of their own. ``device`` is the push subscription model class, ``table`` its table,
``subscription`` the topic subscription model class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import common
from .common import cached, chunks, in_list

# --- the subscription views and the service API -------------------------------------


def find(session: Session, device: Any, endpoint: str) -> Any:
    """The push subscription at ``endpoint``, or None."""
    return session.execute(
        sa.select(device).where(device.endpoint == endpoint)
    ).scalar_one_or_none()


def add(
    session: Session,
    device: Any,
    user_id: Any,
    *,
    endpoint: str,
    p256dh: str,
    auth: str,
    user_agent: str | None,
) -> Any:
    """Insert a push subscription with no failures yet and return it."""
    row = device(
        user_id=user_id,
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        user_agent=user_agent,
        failure_count=0,
    )
    session.add(row)
    session.flush()
    return row


def user_devices(session: Session, device: Any, user_id: Any) -> list[Any]:
    """Rows of every push subscription of ``user_id`` (all columns), oldest first."""
    table = device.__table__
    return list(
        session.execute(table.select().where(table.c.user_id == user_id).order_by(table.c.id))
    )


def drop_least_used(session: Session, device: Any, user_id: Any, *, keep: int) -> None:
    """Delete ``user_id``'s push subscriptions beyond the ``keep`` most recently used
    (last success, else creation)."""
    common.drop_least_used(session, device, user_id, device.last_success_at, keep=keep)


def remove(session: Session, device: Any, user_id: Any, endpoint: str) -> bool:
    """Delete ``user_id``'s subscription at ``endpoint``; False if it is not theirs."""
    result = session.execute(
        sa.delete(device).where(device.endpoint == endpoint, device.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fold_into(session: Session, subscription: Any, old: Any, keep: Any) -> None:
    """Delete push subscription ``old``, moving its topic subscriptions to ``keep``
    (those ``keep`` already has are dropped)."""
    TS = subscription
    have = set(
        session.execute(sa.select(TS.topic_id).where(TS.push_subscription_id == keep.id)).scalars()
    )
    for row in session.execute(sa.select(TS).where(TS.push_subscription_id == old.id)).scalars():
        if row.topic_id in have:
            session.delete(row)
        else:
            row.push_subscription_id = keep.id
    # write the moves before deleting ``old``: its ON DELETE CASCADE would take every
    # topic subscription still pointing at it
    session.flush()
    session.delete(old)


# --- the webpush sender -------------------------------------------------------------


def device_ids(session: Session, table: sa.Table, user_ids: Sequence[Any]) -> dict[Any, list[str]]:
    """Each user's subscription ids as strings, oldest first; users without a device are
    left out (:func:`notice.store.common.ids_by_user`)."""
    return common.ids_by_user(session, table, user_ids)


def load_for_send(engine: Engine, table: sa.Table, sub_id: int) -> dict[str, Any] | None:
    """``{"id", "user_id", "endpoint", "p256dh", "auth"}`` of push subscription
    ``sub_id``, or None when it no longer exists.

    The owner comes with the keys in one statement, so the sender checks the owner of
    exactly the keys it encrypts for: the device may have moved to another user (a
    login on the same browser) since the delivery was written.
    """
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                table.c.id, table.c.user_id, table.c.endpoint, table.c.p256dh, table.c.auth
            ).where(table.c.id == sub_id)
        ).first()
    return None if row is None else dict(row._mapping)


def load_many_for_send(
    engine: Engine, table: sa.Table, sub_ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """:func:`load_for_send` of many subscriptions at once, by id; ids that no longer
    exist are missing from the result."""
    found: dict[int, dict[str, Any]] = {}
    columns = (table.c.id, table.c.user_id, table.c.endpoint, table.c.p256dh, table.c.auth)
    dialect = engine.dialect.name
    stmt = cached(
        table,
        "load_many_for_send",
        dialect,
        lambda: sa.select(*columns).where(in_list(table.c.id, "ids", dialect)),
    )
    with engine.connect() as conn:
        for part in chunks(sorted(set(sub_ids))):
            for row in conn.execute(stmt, {"ids": list(part)}):
                found[row.id] = dict(row._mapping)
    return found


def record_pushes(
    engine: Engine, table: sa.Table, ok: Iterable[int], failed: Iterable[int], *, now: datetime
) -> None:
    """Note pushes' outcomes in one transaction: ``ok`` subscriptions succeeded at
    ``now`` (their failure count starts over), each entry of ``failed`` (an id may
    repeat) adds one failure."""
    dialect = engine.dialect.name
    succeeded = cached(
        table,
        "record_pushes",
        dialect,
        lambda: (
            sa.update(table)
            .where(in_list(table.c.id, "ids", dialect))
            .values(
                last_success_at=sa.bindparam("now", type_=table.c.last_success_at.type),
                failure_count=0,
            )
        ),
    )
    with engine.begin() as conn:
        for part in chunks(sorted(ok)):
            conn.execute(succeeded, {"ids": list(part), "now": now})
        for sub_id in failed:
            conn.execute(
                sa.update(table)
                .where(table.c.id == sub_id)
                .values(failure_count=table.c.failure_count + 1)
            )


def delete_device(engine: Engine, table: sa.Table, sub_id: int) -> None:
    """Delete push subscription ``sub_id`` (the browser unsubscribed)."""
    with engine.begin() as conn:
        conn.execute(sa.delete(table).where(table.c.id == sub_id))
