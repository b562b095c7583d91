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

from ..types import DeliveryStatus, ReadStatus
from .claims import new_token
from .common import begin_write, dialect_insert, run_transaction, visible
from .email import set_emailed
from .throttle import THROTTLED

#: states of a notice's own email delivery that leave the notice out of the digest:
#: it will be mailed (Wait; Error, waiting for its retry; either one maybe held by a
#: worker right now) or it was (Sent). Dead and Skipped ones never mail it: the digest
#: may (a refused address is then refused again, and recorded on ``notice_digest``).
MAILED_ON_ITS_OWN = (
    DeliveryStatus.WAIT.value,
    DeliveryStatus.ERROR.value,
    DeliveryStatus.SENT.value,
)


def pending(
    notice: sa.Table, delivery: sa.Table, now: datetime, *, channel: str
) -> sa.ColumnElement[bool]:
    """Unread, not emailed yet, unexpired at ``now`` (``ix_notice_undigested``), and
    without a ``channel`` delivery in :data:`MAILED_ON_ITS_OWN`.

    The last test keeps each notice to one email: listing a notice whose own email
    waits for its retry mailed it twice, once in the digest and once by the retry.
    The digest leaves delivery rows alone (no lease to respect, no race with the
    worker that may hold one); such a notice joins a digest only if its email ends
    Dead or Skipped.
    """
    c = notice.c
    d = delivery.c
    mailed_on_its_own = sa.exists().where(
        d.notice_id == c.id,
        d.channel == channel,
        sa.or_(
            d.status.in_(MAILED_ON_ITS_OWN),
            # throttled with NOTICE_THROTTLE_OVERFLOW = "skip": not mailed at all
            sa.and_(d.status == DeliveryStatus.SKIPPED.value, d.last_error == THROTTLED),
        ),
    )
    return sa.and_(
        c.read_status == ReadStatus.UNREAD.value,
        c.emailed_at.is_(None),
        visible(notice, now),
        ~mailed_on_its_own,
    )


def candidates(
    engine: Engine,
    notice: sa.Table,
    delivery: sa.Table,
    digest: sa.Table,
    frequency: str,
    *,
    default: str,
    now: datetime,
    channel: str,
    preference: sa.Table | None = None,
    mode_types: Sequence[str] = (),
) -> list[Any]:
    """Users on ``frequency`` (chosen, or by the ``default`` frequency) with at least
    one :func:`pending` notice, by user id; with ``preference``, also users with a
    pending notice of a type in email mode ``frequency``, by their choice or by
    default (``mode_types``). A superset: the per-user read decides what is listed."""
    chosen = digest.c.frequency == frequency
    if default == frequency:
        chosen = sa.or_(chosen, digest.c.frequency.is_(None))  # no row, or no choice
    if preference is not None:
        p = preference.c
        chosen = sa.or_(
            chosen,
            notice.c.notice_type.in_(list(mode_types)),
            sa.exists().where(
                p.user_id == notice.c.user_id,
                p.notice_type == notice.c.notice_type,
                p.channel == channel,
                p.mode == frequency,
            ),
        )
    stmt = (
        sa.select(notice.c.user_id)
        .distinct()
        .select_from(notice.outerjoin(digest, digest.c.user_id == notice.c.user_id))
        .where(pending(notice, delivery, now, channel=channel), chosen)
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
    refused_address: str | None = None,
    refused_error: str | None = None,
) -> None:
    """Free the lease held under ``token``; with ``emailed``, mark those notices emailed
    in the same transaction (also when the lease was lost: the email did go out) and
    clear any standing refusal (the address took mail); with ``refused_address``,
    record that refusal instead (only while the lease is still ours). Runs again on a
    fresh connection when the pooled one is dead: failing here would email the same
    digest again next time."""
    values: dict[str, Any] = {"claimed_until": None, "claim_token": None, "update_at": now}
    if emailed:
        values.update(last_sent_at=now, refused_address=None, refused_at=None, refused_error=None)
    elif refused_address is not None:
        values.update(refused_address=refused_address, refused_at=now, refused_error=refused_error)

    def write(conn: Connection) -> None:
        conn.execute(
            sa.update(digest)
            .where(digest.c.user_id == user_id, digest.c.claim_token == token)
            .values(**values)
        )
        set_emailed(conn, notice, emailed, now=now)

    run_transaction(engine, write, write=True, what="releasing a digest lease")


def refusal(engine: Engine, digest: sa.Table, user_id: Any) -> str | None:
    """The user's standing refused address (``notice_digest.refused_address``)."""
    with engine.connect() as conn:
        found: str | None = conn.execute(
            sa.select(digest.c.refused_address).where(digest.c.user_id == user_id)
        ).scalar()
    return found


def frequency_of(conn: Connection, digest: sa.Table, user_id: Any) -> str | None:
    """The user's chosen digest frequency (None: no choice)."""
    found = conn.execute(sa.select(digest.c.frequency).where(digest.c.user_id == user_id)).scalar()
    return None if found is None else str(found)


def channel_modes(
    conn: Connection, preference: sa.Table, user_id: Any, channel: str
) -> dict[str, tuple[bool, str | None]]:
    """The user's stored ``(enabled, mode)`` choices for ``channel``, by notice type."""
    p = preference.c
    rows = conn.execute(
        sa.select(p.notice_type, p.enabled, p.mode).where(
            p.user_id == user_id, p.channel == channel
        )
    )
    return {t: (bool(e), m) for t, e, m in rows}


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
    delivery: sa.Table,
    user_id: Any,
    *,
    now: datetime,
    limit: int,
    channel: str,
    exclude_types: Sequence[str] = (),
) -> list[Any]:
    """The user's :func:`pending` notices, oldest first, at most ``limit``, without
    ``exclude_types``: rows of ``id, notice_type, subject, content, url, create_at,
    category, actions``."""
    c = notice.c
    columns = (c.id, c.notice_type, c.subject, c.content, c.url, c.create_at)
    stmt = sa.select(*columns, c.category, c.actions).where(
        c.user_id == user_id, pending(notice, delivery, now, channel=channel)
    )
    if exclude_types:
        stmt = stmt.where(c.notice_type.not_in(exclude_types))
    return list(conn.execute(stmt.order_by(c.id).limit(limit)).all())
