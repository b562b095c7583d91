"""``notices.cancel``: end the pending deliveries of notices that should no longer go
out (an "unlike" within the delay cancels the like's email), optionally removing the
notices from the inbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..aftercommit import call_after_commit
from ..columns import utcnow
from ..state import NoticeState
from ..store import schedule as schedule_store


@dataclass(frozen=True)
class Cancelled:
    """What :func:`cancel` did."""

    #: ids of the notices matched
    notice_ids: list[int]
    #: pending deliveries ended Skipped ("cancelled")
    cancelled: int
    #: pending deliveries a worker held (a send in progress): sent and recorded by it
    in_flight: int
    #: notices deleted (``remove=True``)
    removed: int


def cancel(
    state: NoticeState,
    *,
    notice_id: int | None = None,
    dedupe_key: str | None = None,
    group_key: str | None = None,
    user_id: Any = None,
    remove: bool = False,
    commit: bool = True,
) -> Cancelled:
    """Cancel the pending deliveries of one notice (``notice_id``) or of the notices
    under ``dedupe_key`` or ``group_key`` (of ``user_id``, or of every user); see
    :meth:`notice.Notices.cancel`."""
    if notice_id is None and dedupe_key is None and group_key is None:
        raise ValueError("cancel needs notice_id, dedupe_key or group_key")
    if notice_id is not None and (isinstance(notice_id, bool) or not isinstance(notice_id, int)):
        raise ValueError(f"notice_id must be an int, got {notice_id!r}")
    Notice = state.models.Notice
    if user_id is not None:
        user_id = state.coerce_user_id(user_id)
    session = state.db.session
    ids, cancelled, in_flight, removed = schedule_store.cancel(
        session,
        Notice.__table__,
        state.models.Delivery.__table__,
        now=utcnow(),
        notice_id=notice_id,
        user_id=user_id,
        dedupe_key=dedupe_key,
        group_key=group_key,
        remove=remove,
    )
    if removed and user_id is not None and state.publisher is not None:
        # the removed notices leave the unread count: open badges follow
        call_after_commit(
            session,
            lambda: state.publish_count(user_id),
            description="publishing an unread count to the live stream",
        )
    if commit:
        session.commit()
    return Cancelled(ids, cancelled, in_flight, removed)
