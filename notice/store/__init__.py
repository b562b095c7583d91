"""Every SQL statement of the library, split by the flow stage that runs it.

- :mod:`~notice.store.common`: chunk size, the visibility rule, the write lock, upserts
- :mod:`~notice.store.writes`: publishing's bulk inserts of notices and deliveries
- :mod:`~notice.store.claims`: delivery leases: claim, finish, roll-up
- :mod:`~notice.store.reads`: the inbox's counts, listings, read/unread

Views, senders, the CLI, the sweeper and the dispatcher call these functions; none of
them builds a statement of its own, so each query is written once and tuned once (see
the indexes in :mod:`notice.models`).
"""

from __future__ import annotations

from .claims import Outcome, claim, due_condition, finish, new_token, roll_up
from .common import CHUNK, begin_write, chunks, escape_like, upsert, visible
from .reads import NoticeQuery, list_notices, set_read, unread_count
from .writes import (
    delete_notices,
    insert_deliveries,
    insert_delivery_columns,
    insert_notice_columns,
    insert_notices,
)

__all__ = [
    "CHUNK",
    "NoticeQuery",
    "Outcome",
    "begin_write",
    "chunks",
    "claim",
    "delete_notices",
    "due_condition",
    "escape_like",
    "finish",
    "insert_deliveries",
    "insert_delivery_columns",
    "insert_notice_columns",
    "insert_notices",
    "list_notices",
    "new_token",
    "roll_up",
    "set_read",
    "unread_count",
    "upsert",
    "visible",
]
