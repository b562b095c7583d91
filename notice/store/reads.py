"""The inbox's queries: counts, listings, read and unread, delete; the live stream's
reads of new notices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ..columns import utcnow
from ..types import ReadStatus
from .common import (
    cached,
    chunks,
    escape_like,
    in_list,
    inline,
    not_expired,
    shown,
    update_mine,
    visible,
)


class Counts(NamedTuple):
    """A user's badge numbers: unread notices, and those of them not seen yet (the
    inbox was not opened since they arrived). Read implies seen: a notice read from an
    email link or the API without ever being listed is not "unseen" any more."""

    unread: int
    unseen: int


def _unseen(table: sa.Table) -> Any:
    # count() skips NULLs: the CASE is 1 only for the unread rows never seen
    return sa.func.count(sa.case((table.c.seen_at.is_(None), 1)))


def unread_count(
    session: Session,
    notice: Any,
    user_id: Any,
    now: datetime | None = None,
    *,
    query: NoticeQuery | None = None,
) -> int:
    """Unread, unexpired notices of one user (index-only on ``ix_notice_user_read``);
    with ``query``, only those matching its actor, target and category filters."""
    stmt = (
        sa.select(sa.func.count())
        .select_from(notice.__table__)
        .where(
            notice.user_id == user_id,
            notice.read_status == ReadStatus.UNREAD.value,
            visible(notice, now or utcnow()),
        )
    )
    if query is not None:
        stmt = stmt.where(*about(notice, query, _dialect(session, notice)))
    return int(session.execute(stmt).scalar_one())


def badge_count(
    session: Session,
    notice: Any,
    user_id: Any,
    now: datetime | None = None,
    *,
    query: NoticeQuery | None = None,
) -> Counts:
    """One user's :class:`Counts` in one statement (unread and unexpired, as
    :func:`unread_count`; ``seen_at`` is read from the unread rows themselves); with
    ``query``, of the notices matching its actor, target and category filters."""
    table = notice.__table__
    stmt = sa.select(sa.func.count(), _unseen(table)).where(
        table.c.user_id == user_id,
        table.c.read_status == ReadStatus.UNREAD.value,
        visible(table, now or utcnow()),
    )
    if query is not None:
        stmt = stmt.where(*about(notice, query, _dialect(session, notice)))
    unread, unseen = session.execute(stmt).one()
    return Counts(int(unread), int(unseen))


def has_archivable(session: Session, notice: Any, user_id: Any) -> bool:
    """Whether "archive all read" would archive anything: one of the user's notices is
    read and not archived (the same rows :func:`~notice.store.inbox.set_archived` picks
    with ``only_read``)."""
    stmt = sa.select(
        sa.exists().where(
            notice.user_id == user_id,
            notice.read_status == ReadStatus.READ.value,
            notice.archived_at.is_(None),
        )
    )
    return bool(session.execute(stmt).scalar_one())


def badge_counts(
    conn: Connection, notice: Any, user_ids: Iterable[Any], now: datetime | None = None
) -> dict[Any, Counts]:
    """:class:`Counts` of each user in ``user_ids`` (zeros for users with none)."""
    users = list(dict.fromkeys(user_ids))
    counts: dict[Any, Counts] = dict.fromkeys(users, Counts(0, 0))
    table = notice.__table__
    now = now or utcnow()
    dialect = conn.dialect.name
    if users and (dialect == "postgresql" or all(type(u) in (int, str) for u in users)):
        # the whole list as one array parameter, the statement built once (issue 13)
        stmt = cached(
            table,
            "badge_counts",
            dialect,
            lambda: (
                sa.select(table.c.user_id, sa.func.count(), _unseen(table))
                .where(
                    in_list(table.c.user_id, "users", dialect),
                    table.c.read_status == ReadStatus.UNREAD.value,
                    visible(table, sa.bindparam("now", type_=table.c.expires_at.type)),  # type: ignore[arg-type]
                )
                .group_by(table.c.user_id)
            ),
        )
        for user_id, unread, unseen in conn.execute(stmt, {"users": users, "now": now}):
            counts[user_id] = Counts(int(unread), int(unseen))
        return counts
    for part in chunks(users):
        stmt = (
            sa.select(table.c.user_id, sa.func.count(), _unseen(table))
            .where(
                table.c.user_id.in_(part),
                table.c.read_status == ReadStatus.UNREAD.value,
                visible(table, now),
            )
            .group_by(table.c.user_id)
        )
        for user_id, unread, unseen in conn.execute(stmt):
            counts[user_id] = Counts(int(unread), int(unseen))
    return counts


def notices_by_ids(conn: Connection, table: sa.Table, ids: Sequence[int]) -> Iterator[Any]:
    """The rows of notices ``ids`` (missing ones skipped), one chunk of ids at a time,
    each chunk in id order; consume them while ``conn`` is open."""
    dialect = conn.dialect.name
    stmt = cached(
        table,
        "notices_by_ids",
        dialect,
        lambda: sa.select(table).where(in_list(table.c.id, "ids", dialect)).order_by(table.c.id),
    )
    for part in chunks(list(ids)):
        yield from conn.execute(stmt, {"ids": list(part)})


@dataclass(frozen=True)
class NoticeQuery:
    """Filters for :func:`list_notices`; every field is optional.

    :param read: True for read only, False for unread only, None for both.
    :param types: notice type values to keep.
    :param text: case-insensitive substring of subject or content.
    :param before / after: ``create_at`` bounds (exclusive).
    :param before_id: cursor: only notices with a smaller id (the next page).
    :param limit: page size.
    :param archived: False (default) leaves archived notices out, True lists only
        them, None lists both.
    :param actor / target: ``(type, id)``: only notices by this actor, or whose target
        or action object is this row of the app.
    :param categories: categories to keep (info, success, warning, error).
    """

    read: bool | None = None
    types: tuple[str, ...] = ()
    text: str | None = None
    before: datetime | None = None
    after: datetime | None = None
    before_id: int | None = None
    limit: int = 50
    include_expired: bool = False
    archived: bool | None = False
    actor: tuple[str, str] | None = None
    target: tuple[str, str] | None = None
    categories: tuple[str, ...] = ()


def about(notice: Any, query: NoticeQuery, dialect: str) -> list[sa.ColumnElement[bool]]:
    """The conditions of ``query``'s actor, target and category filters; a target
    filter matches the action object too ("notices about this comment"), as
    ``delete_for`` does. Equalities on the referenced type and id, so each is served by
    its partial index (``ix_notice_target``, ``ix_notice_actor``)."""
    c = getattr(notice, "__table__", notice).c
    found: list[sa.ColumnElement[bool]] = []
    if query.actor is not None:
        kind, key = map(inline, query.actor)
        found.append(sa.and_(c.actor_type == kind, c.actor_id == key))
    if query.target is not None:
        kind, key = map(inline, query.target)
        as_target = sa.and_(c.target_type == kind, c.target_id == key)
        as_object = sa.and_(c.action_object_type == kind, c.action_object_id == key)
        if dialect == "sqlite":
            # the ids from each partial index, as a union: for the OR, SQLite walks the
            # user's whole newest-first index instead (50 ms, not 1.5, for a user with
            # 50,000 notices; bench/references.py). PostgreSQL ORs the two indexes
            # (a BitmapOr) and is ten times slower with the union
            found.append(
                c.id.in_(
                    sa.union_all(sa.select(c.id).where(as_target), sa.select(c.id).where(as_object))
                )
            )
        else:
            found.append(sa.or_(as_target, as_object))
    if query.categories:
        found.append(c.category.in_(query.categories))
    return found


def list_notices(session: Session, notice: Any, user_id: Any, query: NoticeQuery) -> list[Any]:
    """One user's notices, newest first (by id, walking ``ix_notice_user_id``)."""
    stmt = list_query(notice, user_id, query, _dialect(session, notice))
    return list(session.execute(stmt).scalars())


def _dialect(session: Session, notice: Any) -> str:
    return session.get_bind(mapper=sa.inspect(notice)).dialect.name


def list_query(notice: Any, user_id: Any, query: NoticeQuery, dialect: str) -> sa.Select[Any]:
    """The statement of :func:`list_notices` on ``dialect`` (its name)."""
    stmt = sa.select(notice).where(notice.user_id == user_id)
    if query.read is not None:
        status = ReadStatus.READ if query.read else ReadStatus.UNREAD
        stmt = stmt.where(notice.read_status == status.value)
    if query.types:
        stmt = stmt.where(notice.notice_type.in_(query.types))
    if query.text:
        pattern = "%" + escape_like(query.text.lower()) + "%"
        stmt = stmt.where(
            sa.or_(
                sa.func.lower(notice.subject).like(pattern, escape="\\"),
                sa.func.lower(notice.content).like(pattern, escape="\\"),
            )
        )
    stmt = stmt.where(*about(notice, query, dialect))
    if query.before is not None:
        stmt = stmt.where(notice.create_at < query.before)
    if query.after is not None:
        stmt = stmt.where(notice.create_at > query.after)
    if query.before_id is not None:
        stmt = stmt.where(notice.id < query.before_id)
    if not query.include_expired:
        stmt = stmt.where(not_expired(notice, utcnow()))
    else:
        stmt = stmt.where(shown(notice, utcnow()))
    if query.archived is not None:
        # the visibility rule's other half, which this list may turn around
        stmt = stmt.where(
            notice.archived_at.isnot(None) if query.archived else notice.archived_at.is_(None)
        )
    return stmt.order_by(notice.id.desc()).limit(query.limit)


def set_read(
    session: Session, notice: Any, user_id: Any, ids: Iterable[int] | None, *, read: bool
) -> int:
    """Mark the user's notices (``ids``, or all when None) read or unread; rows changed.

    Only the user's own rows are touched, whatever ids are passed, locked in id order
    on PostgreSQL (:func:`~notice.store.common.update_mine`).
    """
    now = utcnow()
    table = notice.__table__
    c = table.c
    target, source = (
        (ReadStatus.READ, ReadStatus.UNREAD) if read else (ReadStatus.UNREAD, ReadStatus.READ)
    )
    values: dict[str, Any] = {
        "read_status": target.value,
        "read_at": now if read else None,
        "update_at": now,
    }
    if read:
        # reading is seeing: a notice read from an email link must not turn "unseen"
        # when it is marked unread again later
        values["seen_at"] = sa.func.coalesce(c.seen_at, now)
    mine = sa.and_(c.user_id == user_id, c.read_status == source.value)
    return update_mine(session, notice, mine, ids, values)


def delete_notice(session: Any, notice: Any, user_id: Any, notice_id: int) -> Any:
    """Delete ``user_id``'s notice ``notice_id`` (its deliveries go by cascade); return
    the deleted row's read status, or None when there is no such notice of theirs.

    One notice row is locked, then its deliveries (the cascade): the order delivery
    ``finish`` and the purge take them in.
    """
    table = notice.__table__
    row = session.execute(
        sa.delete(table)
        .where(table.c.id == notice_id, table.c.user_id == user_id)
        .returning(table.c.read_status)
    ).first()
    return None if row is None else row[0]


def get_notice(session: Session, notice: Any, user_id: Any, notice_id: int) -> Any:
    """``user_id``'s notice ``notice_id`` (the ORM object), or None, also when the notice
    is someone else's: the owner check is part of the query."""
    return session.execute(
        sa.select(notice).where(notice.id == notice_id, notice.user_id == user_id)
    ).scalar_one_or_none()
