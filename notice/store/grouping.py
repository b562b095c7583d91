"""Grouping's statements: lock a user's open group, hold its pending deliveries, fold
a notice into it, close it, start a new one.

:mod:`notice.grouping` runs them in the publishing transaction, in the lock order the
finish uses (the notice row, then its delivery rows), so a fold never deadlocks a send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..types import DeliveryStatus
from .common import cached, dialect_insert


def lock_group(session: Session, notice: sa.Table, user_id: Any, key: str) -> Any:
    """Lock the user's open group under ``key`` and return its row (``id, group_count,
    group_actors, group_until, expires_at``), or None.

    A no-op ``UPDATE`` rather than ``SELECT ... FOR UPDATE``: on SQLite it takes the
    write lock before anything is read, so two publishers queue on the busy timeout
    instead of both reading and then failing to upgrade ("database is locked").
    """
    c = notice.c
    dialect = session.get_bind().dialect.name
    stmt = cached(
        notice,
        "lock_group",
        dialect,
        lambda: (
            sa.update(notice)
            .where(c.user_id == sa.bindparam("user"), c.group_key == sa.bindparam("key"))
            .values(group_key=c.group_key)
            .returning(c.id, c.group_count, c.group_actors, c.group_until, c.expires_at)
        ),
    )
    return session.execute(stmt, {"user": user_id, "key": key}).first()


def hold_pending(
    session: Session, delivery: sa.Table, notice_id: int, now: datetime
) -> list[int] | None:
    """Lock the group's deliveries that no worker claimed yet and return their ids
    (the group's mail is still to go, so a fold joins it); ``[]`` when the notice has
    no deliveries at all; None when its mail was claimed already.

    Locking them (an ``UPDATE``) is what keeps a fold and the window's send apart: a
    claim skips rows locked here (``SKIP LOCKED``) and takes them after this commit,
    reading the folded notice; a claim that came first leaves nothing to hold here, and
    the notice starts a new group instead of folding into mail already on its way.
    """
    c = delivery.c
    dialect = session.get_bind().dialect.name
    held = cached(
        delivery,
        "group_hold",
        dialect,
        lambda: (
            sa.update(delivery)
            .where(
                c.notice_id == sa.bindparam("notice"),
                c.status == DeliveryStatus.WAIT.value,
                c.claim_token.is_(None),
            )
            .values(update_at=sa.bindparam("now"))
            .returning(c.id)
        ),
    )
    ids = [int(i) for i in session.execute(held, {"notice": notice_id, "now": now}).scalars()]
    if ids:
        return ids
    any_row = cached(
        delivery,
        "group_any",
        dialect,
        lambda: sa.select(c.id).where(c.notice_id == sa.bindparam("notice")).limit(1),
    )
    return [] if session.execute(any_row, {"notice": notice_id}).first() is None else None


def fold(session: Session, notice: sa.Table, notice_id: int, values: dict[str, Any]) -> None:
    """Write a fold's new values (count, actors, subject, content, unread again) on the
    group's notice."""
    session.execute(sa.update(notice).where(notice.c.id == notice_id).values(**values))


def close_group(session: Session, notice: sa.Table, notice_id: int) -> None:
    """Clear the key of a group whose window ended or whose mail went out: the next
    notice under the key starts a new group (the unique ``(user_id, group_key)``)."""
    dialect = session.get_bind().dialect.name
    stmt = cached(
        notice,
        "close_group",
        dialect,
        lambda: (
            sa.update(notice).where(notice.c.id == sa.bindparam("notice")).values(group_key=None)
        ),
    )
    session.execute(stmt, {"notice": notice_id})


def insert_group(session: Session, notice: sa.Table, row: dict[str, Any]) -> int | None:
    """Insert the first notice of a group; its id, or None when another publisher's
    group under the same user and key got there first (``ON CONFLICT DO NOTHING``)."""
    stmt = (
        dialect_insert(session, notice)
        .values(**row)
        # the target names the partial unique index: its predicate included
        .on_conflict_do_nothing(
            index_elements=["user_id", "group_key"], index_where=notice.c.group_key.isnot(None)
        )
        .returning(notice.c.id)
    )
    found = session.execute(stmt).first()
    return None if found is None else int(found[0])
