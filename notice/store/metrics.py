"""The query behind the metrics gauges: pending deliveries per channel and the age of
the oldest, read at scrape time (:mod:`notice.metrics`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..types import PENDING_STATES


@dataclass(frozen=True)
class ChannelBacklog:
    """What one channel has not delivered yet: Wait and Error (awaiting a retry) rows."""

    channel: str
    pending: int
    #: when the oldest pending delivery was written (None: nothing pending)
    oldest: datetime | None


def pending_by_channel(conn: Connection, delivery: Any) -> list[ChannelBacklog]:
    """One grouped scan of the pending deliveries; ``delivery`` is the Delivery model
    (or table). Uses the ``(status, next_attempt_at)`` index's leading column."""
    table = getattr(delivery, "__table__", delivery)
    rows = conn.execute(
        sa.select(table.c.channel, sa.func.count(), sa.func.min(table.c.create_at))
        .where(table.c.status.in_(PENDING_STATES))
        .group_by(table.c.channel)
    )
    return [ChannelBacklog(channel, int(count), oldest) for channel, count, oldest in rows]
