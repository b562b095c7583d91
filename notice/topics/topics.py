"""Topics: named groups of subscribers, and :meth:`Topics.publish` to all of them.

A topic is followed by users (their inbox and every device they registered) or by
single push subscriptions (that browser only; its owner's inbox gets the notice too,
as the delivery hangs on a notice row). Publishing fans out with ``notice_event``'s
bulk inserts: one multi-row insert for every notice, one for every delivery.

GraphSpace's kinds map onto this (the types are registered here)::

    OWNER     notices.notice_event(creator, NoticeType.OWNER, ...)       # no topic
    GROUP     notices.publish(f"group:{gid}", NoticeType.GROUP, ..., exclude=actor)
    WATCHING  notices.topics.subscribe(f"graph:{id}", user_id=u)  # opt-in, then publish
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..errors import UnknownTopic
from ..publish import notice_event
from ..push.models import MAX_TOPIC, PushModels
from ..state import state_of
from ..store import topics as topic_store
from ..types import NoticeType

#: you created the resource (graph, layout, group)
NoticeType.register("OWNER")
#: a member of your group shared something, or you joined a group
NoticeType.register("GROUP")
#: something happened to a resource you chose to watch
NoticeType.register("WATCHING")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


def check_name(name: object) -> str:
    """Return a valid topic name or raise ValueError: 1-128 characters of
    ``[A-Za-z0-9_.:@-]``, starting with a letter or digit (URL-safe, no ``/``)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_TOPIC or not _NAME_RE.match(name):
        raise ValueError(
            f"topic name must be 1-{MAX_TOPIC} characters of letters, digits and _.:@- "
            "starting with a letter or digit"
        )
    return name


@dataclass
class Published:
    """What :meth:`Topics.publish` wrote."""

    #: the topic history row (``/notifications/list``)
    message_id: int
    #: new notice ids, subscribed users first, then owners of subscribed devices
    notice_ids: list[int] = field(default_factory=list)


class Topics:
    """Topic management and fan-out publishing; ``notices.topics``.

    Every method works in ``db.session``; methods that change rows commit unless given
    ``commit=False``. Needs an app context.
    """

    def __init__(self, db: Any, push_models: PushModels) -> None:
        self._db = db
        self._m = push_models

    @property
    def _session(self) -> Any:
        return self._db.session

    # --- topics -------------------------------------------------------------------------

    def create(self, name: str, description: str = "", *, commit: bool = True) -> Any:
        """Create a topic; raise ValueError if the name is invalid or taken."""
        check_name(name)
        if not isinstance(description, str) or len(description) > 2000:
            raise ValueError("description must be a string of at most 2000 characters")
        if self.get(name) is not None:
            raise ValueError(f"topic {name!r} already exists")
        try:
            topic = topic_store.add_topic(self._session, self._m.Topic, name, description)
        except sa.exc.IntegrityError:  # created concurrently since our check
            self._session.rollback()
            raise ValueError(f"topic {name!r} already exists") from None
        if commit:
            self._session.commit()
        return topic

    def get(self, name: str) -> Any:
        """The topic called ``name``, or None."""
        return topic_store.get_topic(self._session, self._m.Topic, name)

    def _require(self, name: str) -> Any:
        topic = self.get(name)
        if topic is None:
            raise UnknownTopic(f"no topic named {name!r}")
        return topic

    def delete(self, name: str, *, commit: bool = True) -> bool:
        """Delete a topic with its subscriptions and history; False if there is none."""
        topic = self.get(name)
        if topic is None:
            return False
        m = self._m
        topic_store.delete_topic(self._session, m.TopicSubscription, m.TopicMessage, topic)
        if commit:
            self._session.commit()
        return True

    def all(self) -> list[Any]:
        """Every topic, by name."""
        return topic_store.all_topics(self._session, self._m.Topic)

    # --- subscribers --------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        *,
        user_id: Any = None,
        push_subscription_id: int | None = None,
        commit: bool = True,
    ) -> bool:
        """Subscribe a user or one device; True if new, False if it already was.

        :raise UnknownTopic: no such topic.
        """
        values = self._subscriber(user_id, push_subscription_id)
        topic = self._require(name)
        created = topic_store.add_subscriber(
            self._session, self._m.TopicSubscription, topic.id, values
        )
        if commit:
            self._session.commit()
        return created

    def unsubscribe(
        self,
        name: str,
        *,
        user_id: Any = None,
        push_subscription_id: int | None = None,
        commit: bool = True,
    ) -> bool:
        """Remove a user's or a device's subscription; False if there was none."""
        values = self._subscriber(user_id, push_subscription_id)
        topic = self._require(name)
        removed = topic_store.remove_subscriber(
            self._session, self._m.TopicSubscription, topic.id, values
        )
        if commit:
            self._session.commit()
        return removed

    @staticmethod
    def _subscriber(user_id: Any, push_subscription_id: int | None) -> dict[str, Any]:
        if (user_id is None) == (push_subscription_id is None):
            raise TypeError("give exactly one of user_id or push_subscription_id")
        if user_id is not None:
            # the one user-id policy, as for publishing ("7" and 7 are one subscriber)
            return {"user_id": state_of().coerce_user_id(user_id)}
        return {"push_subscription_id": push_subscription_id}

    def subscribers(self, name: str) -> tuple[list[Any], dict[Any, list[int]]]:
        """``(user_ids, {owner_id: [device ids]})`` following topic ``name``."""
        topic = self._require(name)
        m = self._m
        return topic_store.subscribers(
            self._session, m.TopicSubscription, m.PushSubscription, topic.id
        )

    def is_subscribed(self, name: str, user_id: Any) -> bool:
        """Whether ``user_id`` follows the topic, themselves or with one of their devices."""
        topic = self.get(name)
        if topic is None:
            return False
        m = self._m
        return topic_store.is_subscribed(
            self._session, m.TopicSubscription, m.PushSubscription, topic.id, user_id
        )

    # --- publishing ---------------------------------------------------------------------

    def publish(
        self,
        name: str,
        notice_type: NoticeType | str = NoticeType.SYSTEM,
        *,
        subject: str,
        content: str = "",
        exclude: Any = None,
        url: str | None = None,
        data: Any = None,
        sender_id: Any = None,
        expires_at: datetime | timedelta | None = None,
        commit: bool = True,
        actor: Any = None,
        target: Any = None,
        action_object: Any = None,
        category: str | None = None,
        actions: Any = None,
        group_key: str | None = None,
        group_window: timedelta | None = None,
        actor_name: str | None = None,
    ) -> Published:
        """Send a notice to every subscriber of topic ``name``.

        Subscribed users get a notice through every channel (all their devices);
        owners of subscribed devices that do not follow the topic themselves get one
        whose push goes to those devices only. ``exclude`` (the acting user, or an
        iterable of users already told) gets nothing; a single id is also the default
        ``sender_id``. ``data`` is stored with
        ``"topic": name`` added when it is a dict (or None). ``actor``, ``target``,
        ``action_object``, ``category`` and ``actions`` go on every notice, as in
        :func:`notice.notice_event` (the topic's history keeps the text only).
        ``group_key``, ``group_window`` and ``actor_name`` group as in
        :func:`notice.notice_event`: a subscriber's notice folds into their open group
        under the key (its id is then not in ``notice_ids``, which lists new notices).

        :raise UnknownTopic: no such topic.
        """
        topic = self._require(name)
        users, devices = self.subscribers(name)
        if exclude is not None:
            many = isinstance(exclude, Iterable) and not isinstance(exclude, (str, bytes))
            if sender_id is None and not many:
                sender_id = exclude
            skip = {str(u) for u in exclude} if many else {str(exclude)}
            users = [u for u in users if str(u) not in skip]
            devices = {u: d for u, d in devices.items() if str(u) not in skip}
        followed = {str(u) for u in users}
        device_only = {u: d for u, d in devices.items() if str(u) not in followed}
        if data is None or isinstance(data, dict):
            data = {**(data or {}), "topic": name}
        common: dict[str, Any] = {
            "subject": subject,
            "content": content,
            "url": url,
            "data": data,
            "sender_id": sender_id,
            "expires_at": expires_at,
            "commit": False,
            "actor": actor,
            "target": target,
            "action_object": action_object,
            "category": category,
            "actions": actions,
        }
        if group_key is not None or group_window is not None:
            common.update(group_key=group_key, group_window=group_window, actor_name=actor_name)
        ids: list[int] = []
        if users:
            ids.extend(notice_event(users, notice_type, **common))
        if device_only:
            ids.extend(self._push_only(device_only, notice_type, common))
        message_id = topic_store.add_message(
            self._session,
            self._m.TopicMessage,
            topic.id,
            notice_type=str(NoticeType(notice_type)),
            subject=subject,
            content=content,
            url=url,
            data=data,
            sender_id=sender_id,
            recipients=len(ids),
        )
        published = Published(message_id=message_id, notice_ids=ids)
        if commit:
            self._session.commit()
        return published

    def push(
        self,
        push_subscription_id: int,
        notice_type: NoticeType | str = NoticeType.SYSTEM,
        *,
        subject: str,
        content: str = "",
        url: str | None = None,
        data: Any = None,
        commit: bool = True,
    ) -> int | None:
        """Push a notice to one device (and its owner's inbox); the new notice id, or
        None when the webpush sender is not configured.

        :raise LookupError: no such push subscription.
        """
        owner = topic_store.device_owner(
            self._session, self._m.PushSubscription, push_subscription_id
        )
        if owner is None:
            raise LookupError(f"no push subscription {push_subscription_id}")
        common = {"subject": subject, "content": content, "url": url, "data": data}
        ids = self._push_only(
            {owner: [push_subscription_id]}, notice_type, {**common, "commit": False}
        )
        if commit:
            self._session.commit()
        return int(ids[0]) if ids else None

    def _push_only(
        self, devices: dict[Any, list[int]], notice_type: NoticeType | str, common: dict[str, Any]
    ) -> list[int]:
        try:
            from ..senders.webpush import WebPushSender  # the webpush extra may be absent
        except ImportError:
            return []
        channel = WebPushSender.name
        if channel not in state_of().senders_by_name:
            return []
        # these devices only, not every device of their owners
        ids: list[int] = notice_event(
            list(devices), notice_type, channels=[channel], targets={channel: devices}, **common
        )
        return ids

    # --- history ------------------------------------------------------------------------

    def messages(self, name: str, *, start: int = 0, end: int = 10) -> list[Any]:
        """What was published to ``name``, newest first, items ``start`` to ``end - 1``."""
        topic = self._require(name)
        if start < 0 or end < start:
            raise ValueError("need 0 <= start <= end")
        return topic_store.messages(
            self._session, self._m.TopicMessage, topic.id, start=start, end=end
        )
