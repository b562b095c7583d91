"""Mobile devices' queries: a token's row, a user's devices and the per-user limit, and
the FCM and APNs senders' loads and bookkeeping.

Functions taking a ``session`` work in the caller's ORM session and leave committing to
it; those taking an ``engine`` (the senders', between deliveries) run in a transaction
of their own. ``device`` is the device model class, ``table`` its table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import common
from .common import cached, chunks, in_list

# --- the registration API ------------------------------------------------------------


def find(session: Session, device: Any, platform: str, token: str) -> Any:
    """The device with ``token`` on ``platform``, or None."""
    return session.execute(
        sa.select(device).where(device.platform == platform, device.token == token)
    ).scalar_one_or_none()


def add(
    session: Session, device: Any, user_id: Any, *, platform: str, token: str, app_id: str | None
) -> Any:
    """Insert a device and return it."""
    row = device(user_id=user_id, platform=platform, token=token, app_id=app_id)
    session.add(row)
    session.flush()
    return row


def user_devices(session: Session, device: Any, user_id: Any) -> list[Any]:
    """Every device of ``user_id``, oldest first."""
    return list(
        session.execute(
            sa.select(device).where(device.user_id == user_id).order_by(device.id)
        ).scalars()
    )


def drop_least_used(session: Session, device: Any, user_id: Any, *, keep: int) -> None:
    """Delete ``user_id``'s devices beyond the ``keep`` most recently used (last push
    accepted, else registration)."""
    common.drop_least_used(session, device, user_id, device.last_used_at, keep=keep)


def remove(session: Session, device: Any, user_id: Any, device_id: int) -> bool:
    """Delete ``user_id``'s device ``device_id``; False if it is not theirs."""
    result = session.execute(
        sa.delete(device).where(device.id == device_id, device.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# --- the senders ------------------------------------------------------------------------


def device_ids(
    session: Session, table: sa.Table, platform: str, user_ids: Sequence[Any]
) -> dict[Any, list[str]]:
    """Each user's device ids on ``platform`` as strings, oldest first; users without
    one are left out (:func:`notice.store.common.ids_by_user`)."""
    return common.ids_by_user(session, table, user_ids, table.c.platform == platform)


def load_many_for_send(
    engine: Engine, table: sa.Table, device_ids: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """``{"id", "user_id", "platform", "token", "app_id"}`` of each device, by id; ids
    that no longer exist are missing. The owner comes with the token in one statement,
    so a sender checks the owner of exactly the token it pushes to."""
    columns = (table.c.id, table.c.user_id, table.c.platform, table.c.token, table.c.app_id)
    dialect = engine.dialect.name
    stmt = cached(
        table,
        "devices_for_send",
        dialect,
        lambda: sa.select(*columns).where(in_list(table.c.id, "ids", dialect)),
    )
    found: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for part in chunks(sorted(set(device_ids))):
            for row in conn.execute(stmt, {"ids": list(part)}):
                found[row.id] = dict(row._mapping)
    return found


def record_used(
    engine: Engine, table: sa.Table, device_ids: Iterable[int], *, now: datetime
) -> None:
    """Set ``last_used_at`` of the devices whose pushes the provider accepted."""
    dialect = engine.dialect.name
    stmt = cached(
        table,
        "devices_used",
        dialect,
        lambda: (
            sa.update(table)
            .where(in_list(table.c.id, "ids", dialect))
            .values(last_used_at=sa.bindparam("now", type_=table.c.last_used_at.type))
        ),
    )
    with engine.begin() as conn:
        for part in chunks(sorted(set(device_ids))):
            conn.execute(stmt, {"ids": list(part), "now": now})


def delete_device(engine: Engine, table: sa.Table, device_id: int, token: str) -> bool:
    """Delete device ``device_id`` if it still has ``token`` (the provider said the
    token is dead; a device re-registered with a fresh token since must stay).
    True when a row went."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.delete(table).where(table.c.id == device_id, table.c.token == token)
        )
    return bool(result.rowcount)
