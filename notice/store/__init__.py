"""Every SQL statement of the library, split by the flow stage that runs it.

- :mod:`~notice.store.common`: chunk size, the visibility rule, the write lock, upserts
- :mod:`~notice.store.writes`: publishing's bulk inserts of notices and deliveries
- :mod:`~notice.store.claims`: delivery leases: claim, load, finish, roll-up
- :mod:`~notice.store.reads`: the inbox's counts, listings, read/unread, delete
- :mod:`~notice.store.inbox`: seen, archive and unarchive, deleting notices about a row
- :mod:`~notice.store.maintenance`: the CLI's retry, stats and purge
- :mod:`~notice.store.email`, :mod:`~notice.store.digest`: what went out by email
- :mod:`~notice.store.preferences`: stored choices, the routing gate's query
- :mod:`~notice.store.schedule`: cancelling, announcing scheduled notices, quiet hours
- :mod:`~notice.store.push`, :mod:`~notice.store.topics`: devices, topics, history
- :mod:`~notice.store.devices`: mobile devices (FCM, APNs) and their senders' bookkeeping
- :mod:`~notice.store.notify`: PostgreSQL LISTEN/NOTIFY for the live stream
- :mod:`~notice.store.schema`: missing tables (``TablesMissing``), SQLite's foreign-key
  switch around a migration

Views, senders, the CLI, the sweeper and the dispatcher call these functions; none of
them builds a statement of its own, so each query is written once and tuned once (see
the indexes in :mod:`notice.models`).
"""

from __future__ import annotations

from .claims import Outcome, claim, due_condition, finish, load_claimed, new_token, roll_up
from .common import (
    CHUNK,
    begin_write,
    chunks,
    escape_like,
    tune_sqlite_connection,
    upsert,
    visible,
)
from .inbox import delete_about, set_archived, set_seen
from .reads import (
    Counts,
    NoticeQuery,
    badge_count,
    get_notice,
    has_archivable,
    list_notices,
    set_read,
    unread_count,
)
from .writes import (
    deduplicated_ids,
    delete_notices,
    insert_deliveries,
    insert_delivery_columns,
    insert_notice_columns,
    insert_notices,
    insert_one,
    release_dedupe_key,
)

__all__ = [
    "CHUNK",
    "Counts",
    "NoticeQuery",
    "Outcome",
    "badge_count",
    "begin_write",
    "chunks",
    "claim",
    "delete_about",
    "delete_notices",
    "deduplicated_ids",
    "release_dedupe_key",
    "due_condition",
    "escape_like",
    "finish",
    "get_notice",
    "has_archivable",
    "insert_deliveries",
    "insert_delivery_columns",
    "insert_notice_columns",
    "insert_notices",
    "insert_one",
    "list_notices",
    "load_claimed",
    "new_token",
    "roll_up",
    "set_archived",
    "set_read",
    "set_seen",
    "tune_sqlite_connection",
    "unread_count",
    "upsert",
    "visible",
]
