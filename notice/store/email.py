"""The email sender's bookkeeping: which notices went out by email."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def mark_emailed(
    engine: Engine, notice: sa.Table, notice_ids: Sequence[int], *, now: datetime
) -> None:
    """Record that ``notice_ids`` were emailed at ``now``, so the digest skips them; a
    notice already marked keeps its first time."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(notice)
            .where(notice.c.id.in_(notice_ids), notice.c.emailed_at.is_(None))
            .values(emailed_at=now)
        )
