"""The unread digest's queries: candidate users, the per-user lease on
``notice_digest``, the pending notices, marking them emailed.

:mod:`notice.preferences.digest` runs the digest (claim, read, send, release) with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..types import ReadStatus
from .claims import new_token
from .common import begin_write, dialect_insert, run_transaction, visible
from .email import set_emailed


def pending(notice: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    """Unread, not emailed yet, unexpired at ``now`` (``ix_notice_undigested``)."""
    c = notice.c
    return sa.and_(
        c.read_status == ReadStatus.UNREAD.value,
        c.emailed_at.is_(None),
        visible(notice, now),
    )


def candidates(
    engine: Engine,
    notice: sa.Table,
    digest: sa.Table,
    frequency: str,
    *,
    default: str,
    now: datetime,
) -> list[Any]:
    """Users on ``frequency`` (chosen, or by the ``default`` frequency) with at least
    one :func:`pending` notice, by user id."""
    chosen = digest.c.frequency == frequency
    if default == frequency:
        chosen = sa.or_(chosen, digest.c.frequency.is_(None))  # no row, or no choice
    stmt = (
        sa.select(notice.c.user_id)
        .distinct()
        .select_from(notice.outerjoin(digest, digest.c.user_id == notice.c.user_id))
        .where(pending(notice, now), chosen)
        .order_by(notice.c.user_id)
    )
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def claim(
    engine: Engine, digest: sa.Table, user_id: Any, *, lease: timedelta, now: datetime
) -> str | None:
    """Take the user's digest lease until ``now + lease``; the token, or None when
    another run holds it."""
    token = new_token()
    with engine.connect() as conn:
        # SQLite: take the write lock first so overlapping runs queue on the busy timeout
        begin_write(conn)
        conn.execute(
            dialect_insert(conn, digest)
            .values(user_id=user_id, frequency=None, update_at=now)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        won = conn.execute(
            sa.update(digest)
            .where(
                digest.c.user_id == user_id,
                sa.or_(digest.c.claimed_until.is_(None), digest.c.claimed_until <= now),
            )
            .values(claimed_until=now + lease, claim_token=token, update_at=now)
            .returning(digest.c.user_id)
        ).first()
        conn.commit()
    return token if won is not None else None


def release(
    engine: Engine,
    notice: sa.Table,
    digest: sa.Table,
    user_id: Any,
    token: str,
    *,
    now: datetime,
    emailed: Sequence[int] = (),
) -> None:
    """Free the lease held under ``token``; with ``emailed``, mark those notices emailed
    in the same transaction (also when the lease was lost: the email did go out). Runs
    again on a fresh connection when the pooled one is dead: failing here would email
    the same digest again next time."""
    values: dict[str, Any] = {"claimed_until": None, "claim_token": None, "update_at": now}
    if emailed:
        values["last_sent_at"] = now

    def write(conn: Connection) -> None:
        conn.execute(
            sa.update(digest)
            .where(digest.c.user_id == user_id, digest.c.claim_token == token)
            .values(**values)
        )
        set_emailed(conn, notice, emailed, now=now)

    run_transaction(engine, write, write=True, what="releasing a digest lease")


def channel_choices(
    conn: Connection, preference: sa.Table, user_id: Any, channel: str
) -> dict[str, bool]:
    """The user's stored on/off choices for ``channel``, by notice type."""
    pref = preference.c
    return dict(
        conn.execute(
            sa.select(pref.notice_type, pref.enabled).where(
                pref.user_id == user_id, pref.channel == channel
            )
        ).all()
    )


def pending_notices(
    conn: Connection,
    notice: sa.Table,
    user_id: Any,
    *,
    now: datetime,
    limit: int,
    exclude_types: Sequence[str] = (),
) -> list[Any]:
    """The user's :func:`pending` notices, oldest first, at most ``limit``, without
    ``exclude_types``: rows of ``id, notice_type, subject, content, url, create_at``."""
    c = notice.c
    stmt = sa.select(c.id, c.notice_type, c.subject, c.content, c.url, c.create_at).where(
        c.user_id == user_id, pending(notice, now)
    )
    if exclude_types:
        stmt = stmt.where(c.notice_type.not_in(exclude_types))
    return list(conn.execute(stmt.order_by(c.id).limit(limit)).all())
