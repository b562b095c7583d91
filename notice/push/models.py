"""The Web Push and topic tables, built on the app's ``db`` like :mod:`notice.models`.

* ``notice_push_subscription``: one browser/device of a user (endpoint and keys).
* ``notice_topic``: a named topic ("graph:7", "group:lab", "industry:google").
* ``notice_topic_subscription``: a user, or one push subscription, following a topic.
* ``notice_topic_message``: what was published to a topic (the topic's history).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import NEVER_REUSE_IDS, BigId, UTCDateTime, utcnow

#: longest accepted push endpoint URL (FCM's are ~200 characters)
MAX_ENDPOINT = 1024
MAX_TOPIC = 128


@dataclass
class PushModels:
    """The push and topic model classes built for one ``db``."""

    PushSubscription: Any
    Topic: Any
    TopicSubscription: Any
    TopicMessage: Any


def build_push_models(db: Any, *, user_table: str | None, user_id_type: Any) -> PushModels:
    """Declare the push and topic models on ``db.Model`` (like
    :func:`notice.models.build_models`)."""

    def user_fk() -> tuple[Any, ...]:
        # a new ForeignKey per column: one cannot belong to two columns
        return (sa.ForeignKey(user_table, ondelete="CASCADE"),) if user_table else ()

    class PushSubscription(db.Model):  # type: ignore[misc]
        """One browser's push subscription (RFC 8030 endpoint + RFC 8291 keys)."""

        __tablename__ = "notice_push_subscription"
        # deliveries name their device by this id: it must never point at another's
        __table_args__ = (NEVER_REUSE_IDS,)

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        user_id: Mapped[Any] = mapped_column(user_id_type, *user_fk(), nullable=False, index=True)
        endpoint: Mapped[str] = mapped_column(sa.String(MAX_ENDPOINT), nullable=False, unique=True)
        #: the browser's P-256 public key, base64url
        p256dh: Mapped[str] = mapped_column(sa.String(128), nullable=False)
        #: the browser's 16-byte auth secret, base64url
        auth: Mapped[str] = mapped_column(sa.String(64), nullable=False)
        user_agent: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
        last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: consecutive failed pushes; reset by a success
        failure_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)

        def subscription_info(self) -> dict[str, Any]:
            """The ``PushSubscription.toJSON()`` shape pywebpush expects."""
            return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

        def to_dict(self) -> dict[str, Any]:
            return {
                "id": self.id,
                "endpoint": self.endpoint,
                "created_at": self.created_at.isoformat(),
                "last_success_at": (
                    self.last_success_at.isoformat() if self.last_success_at else None
                ),
                "failure_count": self.failure_count,
            }

        def __repr__(self) -> str:
            return f"<PushSubscription {self.id} user={self.user_id}>"

    class Topic(db.Model):  # type: ignore[misc]
        """A named topic users and devices subscribe to."""

        __tablename__ = "notice_topic"
        __table_args__ = (NEVER_REUSE_IDS,)

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(MAX_TOPIC), nullable=False, unique=True)
        description: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
        created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

        def to_dict(self) -> dict[str, Any]:
            return {
                "topic": self.name,
                "description": self.description,
                "created_at": self.created_at.isoformat(),
            }

        def __repr__(self) -> str:
            return f"<Topic {self.name!r}>"

    class TopicSubscription(db.Model):  # type: ignore[misc]
        """A user (every device and the inbox) or one push subscription on a topic."""

        __tablename__ = "notice_topic_subscription"
        __table_args__ = (
            sa.UniqueConstraint("topic_id", "user_id", name="uq_topic_user"),
            sa.UniqueConstraint("topic_id", "push_subscription_id", name="uq_topic_device"),
            sa.CheckConstraint(
                "(user_id IS NULL) <> (push_subscription_id IS NULL)",
                name="ck_topic_subscriber",
            ),
            NEVER_REUSE_IDS,
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        topic_id: Mapped[int] = mapped_column(
            BigId, sa.ForeignKey("notice_topic.id", ondelete="CASCADE"), nullable=False
        )
        user_id: Mapped[Any] = mapped_column(user_id_type, *user_fk(), nullable=True, index=True)
        push_subscription_id: Mapped[int | None] = mapped_column(
            BigId,
            sa.ForeignKey("notice_push_subscription.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        )
        created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

    class TopicMessage(db.Model):  # type: ignore[misc]
        """One publish to a topic: the topic's history for ``/notifications/list``."""

        __tablename__ = "notice_topic_message"
        __table_args__ = (sa.Index("ix_topic_message_topic", "topic_id", "id"), NEVER_REUSE_IDS)

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        topic_id: Mapped[int] = mapped_column(
            BigId, sa.ForeignKey("notice_topic.id", ondelete="CASCADE"), nullable=False
        )
        notice_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
        subject: Mapped[str] = mapped_column(sa.String(255), nullable=False)
        content: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
        url: Mapped[str | None] = mapped_column(sa.String(2048), nullable=True)
        data: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
        sender_id: Mapped[Any] = mapped_column(user_id_type, nullable=True)
        #: notices written by this publish (users and device owners)
        recipients: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)

        def to_dict(self, topic: str) -> dict[str, Any]:
            return {
                "id": self.id,
                "topic": topic,
                "type": self.notice_type,
                "title": self.subject,
                "body": self.content,
                "url": self.url,
                "data": self.data,
                "sender_id": self.sender_id,
                "recipients": self.recipients,
                "created_at": self.created_at.isoformat(),
            }

    return PushModels(
        PushSubscription=PushSubscription,
        Topic=Topic,
        TopicSubscription=TopicSubscription,
        TopicMessage=TopicMessage,
    )
