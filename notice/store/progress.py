"""How far delivery has come: the queries the test kit (:mod:`notice.testing`) waits on."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..types import DeliveryStatus


def last_delivery_id(engine: Engine, delivery: sa.Table) -> int:
    """The highest delivery id written so far (0 for none, also before the tables are
    created: an app's test fixture may start capturing before it creates them)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(delivery.name, schema=delivery.schema):
            return 0
        return int(conn.execute(sa.select(sa.func.max(delivery.c.id))).scalar() or 0)


def waiting_after(engine: Engine, delivery: sa.Table, after_id: int) -> int:
    """How many deliveries with an id above ``after_id`` have no outcome yet (``Wait``):
    committed, and not yet sent, failed or skipped by whoever runs them."""
    d = delivery.c
    stmt = sa.select(sa.func.count()).where(d.id > after_id, d.status == DeliveryStatus.WAIT.value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
