"""Preferences' queries: users' stored choices, the routing gate's lookup, digest
settings.

Every function works in the caller's ORM session and leaves committing to it.
``preference`` is the stored choices model class (``notice_preference``), ``digest``
the digest settings model class (``notice_digest``).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .common import cached, in_list, upsert

#: ids per ``IN`` list on SQLite, far above :data:`~notice.store.common.CHUNK`: the gate
#: is one query for a whole fan-out wherever it can be, and SQLite's limit on bound
#: parameters (32766) is what caps one IN list; stay below it
_SQLITE_IN_MAX = 30_000


#: seconds a "no choice stored" answer of :func:`any_stored` is trusted. A choice stored
#: through another process (or engine) within that window may be missed by a publish,
#: as one stored while the publish ran always could; stored through this one it is
#: seen at once (:func:`set_choice`)
NONE_STORED_TTL = 1.0

# engine -> True once a choice is known to exist (for good: the gate then queries), or
# the monotonic time "none stored" was last read
_stored: weakref.WeakKeyDictionary[Any, bool | float] = weakref.WeakKeyDictionary()
_stored_lock = threading.Lock()


def any_stored(session: Session, preference: Any) -> bool:
    """Whether any user stored any choice: when none did, the routing gate needs no
    query (the defaults decide). Asked of the database at most once per
    :data:`NONE_STORED_TTL` while the answer is no; never again once it is yes."""
    engine = session.get_bind()
    known = _stored.get(engine)
    if known is True:
        return True
    if known is not None and time.monotonic() - known < NONE_STORED_TTL:
        return False
    found = session.execute(sa.select(sa.literal(1)).select_from(preference).limit(1)).first()
    with _stored_lock:
        if _stored.get(engine) is not True:  # a set_choice meanwhile wins
            _stored[engine] = True if found is not None else time.monotonic()
    return found is not None


def choices(session: Session, preference: Any, user_id: Any) -> dict[tuple[str, str], bool]:
    """``{(notice_type, channel): enabled}`` of the choices ``user_id`` made."""
    P = preference
    return {
        (row.notice_type, row.channel): bool(row.enabled)
        for row in session.execute(
            sa.select(P.notice_type, P.channel, P.enabled).where(P.user_id == user_id)
        )
    }


def choices_of(
    session: Session, preference: Any, notice_type: str, channel: str, user_ids: Sequence[Any]
) -> dict[str, bool]:
    """``{str(user_id): enabled}`` for the users of ``user_ids`` who chose about
    ``notice_type`` on ``channel``; the others are left out.

    One query for the whole list, the ids bound as one parameter
    (:func:`~notice.store.common.in_list`); on SQLite user ids that JSON cannot carry
    (not int or str) go as IN lists of up to 30,000 instead. Keyed by ``str``: callers
    may hold ids as "7" where the database says 7.
    """
    P = preference
    unique = list(dict.fromkeys(user_ids))
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" or all(type(u) in (int, str) for u in unique):
        table = P.__table__
        stmt = cached(
            table,
            "choices_of",
            dialect,
            lambda: sa.select(table.c.user_id, table.c.enabled).where(
                table.c.notice_type == sa.bindparam("t"),
                table.c.channel == sa.bindparam("c"),
                in_list(table.c.user_id, "users", dialect),
            ),
        )
        rows = session.execute(stmt, {"t": notice_type, "c": channel, "users": unique})
        return {str(u): bool(e) for u, e in rows}
    found: dict[str, bool] = {}
    for start in range(0, len(unique), _SQLITE_IN_MAX):
        part = unique[start : start + _SQLITE_IN_MAX]
        stmt = sa.select(P.user_id, P.enabled).where(
            P.notice_type == notice_type, P.channel == channel, P.user_id.in_(part)
        )
        found.update((str(u), bool(e)) for u, e in session.execute(stmt))
    return found


def modes_of(
    session: Session, preference: Any, notice_type: str, channel: str, user_ids: Sequence[Any]
) -> dict[str, tuple[bool, str | None]]:
    """:func:`choices_of` with each choice's mode: ``{str(user_id): (enabled, mode)}``."""
    P = preference
    table = P.__table__
    unique = list(dict.fromkeys(user_ids))
    dialect = session.get_bind().dialect.name
    found: dict[str, tuple[bool, str | None]] = {}
    if dialect == "postgresql" or all(type(u) in (int, str) for u in unique):
        stmt = cached(
            table,
            "modes_of",
            dialect,
            lambda: sa.select(table.c.user_id, table.c.enabled, table.c.mode).where(
                table.c.notice_type == sa.bindparam("t"),
                table.c.channel == sa.bindparam("c"),
                in_list(table.c.user_id, "users", dialect),
            ),
        )
        rows = session.execute(stmt, {"t": notice_type, "c": channel, "users": unique})
        return {str(u): (bool(e), m) for u, e, m in rows}
    for start in range(0, len(unique), _SQLITE_IN_MAX):
        part = unique[start : start + _SQLITE_IN_MAX]
        stmt = sa.select(P.user_id, P.enabled, P.mode).where(
            P.notice_type == notice_type, P.channel == channel, P.user_id.in_(part)
        )
        found.update((str(u), (bool(e), m)) for u, e, m in session.execute(stmt))
    return found


def channel_modes(
    session: Session, preference: Any, user_id: Any, channel: str
) -> dict[str, tuple[bool, str | None]]:
    """``{notice_type: (enabled, mode)}`` of the choices ``user_id`` made on ``channel``."""
    P = preference
    rows = session.execute(
        sa.select(P.notice_type, P.enabled, P.mode).where(
            P.user_id == user_id, P.channel == channel
        )
    )
    return {t: (bool(e), m) for t, e, m in rows}


def set_choice(
    session: Session,
    preference: Any,
    user_id: Any,
    notice_type: str,
    channel: str,
    enabled: bool,
    *,
    now: datetime,
    mode: str | None = None,
) -> None:
    """Store ``user_id``'s choice for ``notice_type`` on ``channel``, made at ``now``;
    ``mode`` is the email channel's (None: ``enabled`` and the defaults decide)."""
    with _stored_lock:
        _stored[session.get_bind()] = True
    upsert(
        session,
        preference.__table__,
        {
            "user_id": user_id,
            "notice_type": notice_type,
            "channel": channel,
            "enabled": enabled,
            "mode": mode,
            "update_at": now,
        },
        keys=("user_id", "notice_type", "channel"),
        update=("enabled", "mode", "update_at"),
    )


def digest_frequency(session: Session, digest: Any, user_id: Any) -> str | None:
    """``user_id``'s chosen digest frequency, or None when they made no choice."""
    value = session.execute(
        sa.select(digest.frequency).where(digest.user_id == user_id)
    ).scalar_one_or_none()
    return None if value is None else str(value)


def set_digest_frequency(
    session: Session, digest: Any, user_id: Any, frequency: str, *, now: datetime
) -> None:
    """Store ``user_id``'s digest frequency, chosen at ``now``."""
    upsert(
        session,
        digest.__table__,
        {"user_id": user_id, "frequency": frequency, "update_at": now},
        keys=("user_id",),
        update=("frequency", "update_at"),
    )
