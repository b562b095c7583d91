"""Topics' queries: topics, their subscribers (users and devices), their history.

Every function works in the caller's ORM session and leaves committing to it. The
model classes are the ones :func:`notice.push.models.build_push_models` built.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .common import dialect_insert


def get_topic(session: Session, topic: Any, name: str) -> Any:
    """The topic called ``name``, or None."""
    return session.execute(sa.select(topic).where(topic.name == name)).scalar_one_or_none()


def add_topic(session: Session, topic: Any, name: str, description: str) -> Any:
    """Insert a topic and return it.

    :raise sqlalchemy.exc.IntegrityError: the name is taken (the caller rolls back).
    """
    row = topic(name=name, description=description)
    session.add(row)
    session.flush()
    return row


def all_topics(session: Session, topic: Any) -> list[Any]:
    """Every topic, by name."""
    return list(session.execute(sa.select(topic).order_by(topic.name)).scalars())


def delete_topic(session: Session, subscription: Any, message: Any, row: Any) -> None:
    """Delete the topic ``row`` with its subscriptions and history."""
    # explicit deletes: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON
    for model in (subscription, message):
        session.execute(sa.delete(model).where(model.topic_id == row.id))
    session.delete(row)


def add_subscriber(
    session: Session, subscription: Any, topic_id: int, subscriber: dict[str, Any]
) -> bool:
    """Subscribe ``subscriber`` (``{"user_id": ...}`` or ``{"push_subscription_id":
    ...}``) to the topic; True if new, False if it already was.

    ``ON CONFLICT DO NOTHING``: two racing subscribes never fail, one of them wins.
    """
    table = subscription.__table__
    stmt = (
        dialect_insert(session, table)
        .values(topic_id=topic_id, **subscriber)
        .on_conflict_do_nothing()
        .returning(table.c.id)
    )
    return session.execute(stmt).first() is not None


def remove_subscriber(
    session: Session, subscription: Any, topic_id: int, subscriber: dict[str, Any]
) -> bool:
    """Remove ``subscriber`` (as in :func:`add_subscriber`) from the topic; False if it
    was not subscribed."""
    ((column, value),) = subscriber.items()
    result = session.execute(
        sa.delete(subscription).where(
            subscription.topic_id == topic_id, getattr(subscription, column) == value
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def subscribers(
    session: Session, subscription: Any, device: Any, topic_id: int
) -> tuple[list[Any], dict[Any, list[int]]]:
    """``(user_ids, {owner_id: [device ids]})`` following the topic, in subscription
    order. ``device`` is the push subscription model."""
    TS, PS = subscription, device
    users = list(
        session.execute(
            sa.select(TS.user_id)
            .where(TS.topic_id == topic_id, TS.user_id.is_not(None))
            .order_by(TS.id)
        ).scalars()
    )
    devices: dict[Any, list[int]] = {}
    rows = session.execute(
        sa.select(PS.user_id, PS.id)
        .join(TS, TS.push_subscription_id == PS.id)
        .where(TS.topic_id == topic_id)
        .order_by(TS.id)
    )
    for owner, device_id in rows:
        devices.setdefault(owner, []).append(device_id)
    return users, devices


def is_subscribed(
    session: Session, subscription: Any, device: Any, topic_id: int, user_id: Any
) -> bool:
    """Whether ``user_id`` follows the topic, themselves or with one of their devices."""
    TS, PS = subscription, device
    as_user = sa.exists().where(TS.topic_id == topic_id, TS.user_id == user_id)
    by_device = (
        sa.exists()
        .where(TS.topic_id == topic_id, TS.push_subscription_id == PS.id)
        .where(PS.user_id == user_id)
    )
    return bool(session.execute(sa.select(sa.or_(as_user, by_device))).scalar())


def device_owner(session: Session, device: Any, push_subscription_id: int) -> Any:
    """The user owning push subscription ``push_subscription_id``, or None if there is
    no such subscription."""
    return session.execute(
        sa.select(device.user_id).where(device.id == push_subscription_id)
    ).scalar_one_or_none()


def add_message(session: Session, message: Any, topic_id: int, **values: Any) -> int:
    """Insert one entry of the topic's history (``values`` are its columns); its id."""
    row = message(topic_id=topic_id, **values)
    session.add(row)
    session.flush()
    return int(row.id)


def messages(session: Session, message: Any, topic_id: int, *, start: int, end: int) -> list[Any]:
    """What was published to the topic, newest first, items ``start`` to ``end - 1``."""
    stmt = (
        sa.select(message)
        .where(message.topic_id == topic_id)
        .order_by(message.id.desc())
        .offset(start)
        .limit(end - start)
    )
    return list(session.execute(stmt).scalars())
