"""The tables: ``notice`` (one row per user and event) and ``notice_delivery`` (one row
per notice, channel and target, carrying its own send state).

Models are built on the app's Flask-SQLAlchemy ``db`` when ``Notices(db=db)`` is
created, so ``db.create_all()`` creates them with the app's own tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .columns import NEVER_REUSE_IDS, BigId, UTCDateTime, utcnow
from .references import CATEGORIES, MAX_REF, ref_dict
from .types import DeliveryStatus, ReadStatus, SendStatus


@dataclass(frozen=True, slots=True, repr=False)
class NoticeView:
    """One notice as senders and signal receivers get it: read-only, bound to no
    session, cheap to build (a large fan-out makes thousands). The ORM ``Notice`` is
    for the app's own queries."""

    id: int
    user_id: Any
    sender_id: Any
    subject: str
    content: str
    notice_type: str
    read_status: str
    send_status: str
    url: str | None
    data: Any
    dedupe_key: str | None
    expires_at: datetime | None
    read_at: datetime | None
    emailed_at: datetime | None
    create_at: datetime
    update_at: datetime
    actor_type: str | None
    actor_id: str | None
    target_type: str | None
    target_id: str | None
    action_object_type: str | None
    action_object_id: str | None
    category: str
    actions: list[dict[str, str]] | None
    #: notices folded into this one under its group_key (None: not grouped)
    group_count: int | None = None
    #: the group's actors, newest first (see :mod:`notice.grouping`)
    group_actors: list[str] | None = None

    @classmethod
    def of(cls, row: Any) -> NoticeView:
        """A view of an ORM ``Notice`` or a row with its columns."""
        return cls(*(getattr(row, name) for name in VIEW_COLUMNS))

    @property
    def is_read(self) -> bool:
        return self.read_status == ReadStatus.READ.value

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or utcnow())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (what the API, the stream and webhooks send)."""
        return notice_dict(self)

    def __repr__(self) -> str:
        # like Notice's: content and data stay out of logs
        return f"<Notice {self.id} user={self.user_id} {self.notice_type} {self.subject!r}>"


#: the Notice columns a :class:`NoticeView` holds, in its field order
VIEW_COLUMNS: tuple[str, ...] = tuple(NoticeView.__dataclass_fields__)


def notice_dict(notice: Any) -> dict[str, Any]:
    """The JSON-ready dict of a ``Notice`` or a :class:`NoticeView`."""
    return {
        "id": notice.id,
        "user_id": notice.user_id,
        "sender_id": notice.sender_id,
        "notice_type": notice.notice_type,
        "subject": notice.subject,
        "content": notice.content,
        "url": notice.url,
        "data": notice.data,
        "read_status": notice.read_status,
        "send_status": notice.send_status,
        "create_at": iso_time(notice.create_at),
        "update_at": iso_time(notice.update_at),
        "read_at": iso_time(notice.read_at),
        "expires_at": iso_time(notice.expires_at),
        "category": notice.category or CATEGORIES[0],
        "actor": ref_dict(notice.actor_type, notice.actor_id),
        "target": ref_dict(notice.target_type, notice.target_id),
        "action_object": ref_dict(notice.action_object_type, notice.action_object_id),
        "actions": [dict(a) for a in notice.actions or ()],
        "group_count": notice.group_count,
        "group_actors": notice.group_actors,
    }


@dataclass
class Models:
    """The model classes built for one ``db``."""

    Notice: Any
    Delivery: Any


def build_models(db: Any, *, user_table: str | None, user_id_type: Any) -> Models:
    """Declare the library's models on ``db.Model``.

    :param user_table: ``"table.column"`` of the app's users; when set, ``user_id`` is a
        foreign key that deletes a user's notices with the user.
    :param user_id_type: the SQLAlchemy type of user ids (``sa.Integer`` by default).
    """
    user_fk: tuple[Any, ...] = (
        (sa.ForeignKey(user_table, ondelete="CASCADE"),) if user_table else ()
    )

    class Notice(db.Model):
        """One notice for one user."""

        __tablename__ = "notice"
        __table_args__ = (
            # per-user badge counts: an index-only scan on (user_id, read_status), the
            # visibility rule's columns and seen_at (the unseen count) included
            sa.Index(
                "ix_notice_user_read",
                "user_id",
                "read_status",
                "expires_at",
                "archived_at",
                "visible_at",
                "seen_at",
            ),
            # newest-first listing and cursor pagination walk this index backwards
            sa.Index("ix_notice_user_id", "user_id", "id"),
            # one notice per user and dedupe_key: partial, since nearly every notice has
            # no key, so a fan-out adds no entries to it (revision 0008; it was a UNIQUE
            # constraint over every row). An ON CONFLICT on it names the predicate
            # (store.writes), or the database finds no index to infer
            sa.Index(
                "uq_notice_user_dedupe",
                "user_id",
                "dedupe_key",
                unique=True,
                postgresql_where=sa.text("dedupe_key IS NOT NULL"),
                sqlite_where=sa.text("dedupe_key IS NOT NULL"),
            ),
            # the digest's search for users with unread mail not emailed yet: a small
            # partial index, since most notices get emailed or read
            sa.Index(
                "ix_notice_undigested",
                "user_id",
                postgresql_where=sa.text("emailed_at IS NULL AND read_status = 'Unread'"),
                sqlite_where=sa.text("emailed_at IS NULL AND read_status = 'Unread'"),
            ),
            # the sweeper's search for notices whose visible_at came: only the few
            # scheduled ones are in it (the column is cleared once announced)
            sa.Index(
                "ix_notice_scheduled",
                "visible_at",
                postgresql_where=sa.text("visible_at IS NOT NULL"),
                sqlite_where=sa.text("visible_at IS NOT NULL"),
            ),
            # "notices about this post" per user, and delete_for(post) across users:
            # partial, since most notices name no target (or actor), so a fan-out
            # without references adds no entries
            sa.Index(
                "ix_notice_target",
                "target_type",
                "target_id",
                "user_id",
                postgresql_where=sa.text("target_id IS NOT NULL"),
                sqlite_where=sa.text("target_id IS NOT NULL"),
            ),
            sa.Index(
                "ix_notice_actor",
                "actor_type",
                "actor_id",
                "user_id",
                postgresql_where=sa.text("actor_id IS NOT NULL"),
                sqlite_where=sa.text("actor_id IS NOT NULL"),
            ),
            # delete_for(object) also takes notices naming it as their action object
            sa.Index(
                "ix_notice_action_object",
                "action_object_type",
                "action_object_id",
                postgresql_where=sa.text("action_object_id IS NOT NULL"),
                sqlite_where=sa.text("action_object_id IS NOT NULL"),
            ),
            # one open group per user and key (grouping.py folds into it; a closed
            # group's key is cleared, as an expired dedupe_key is)
            # (an index, not a constraint: SQLite adds it without rebuilding the table)
            # partial: a notice outside any group (most) adds no entry to it
            sa.Index(
                "uq_notice_user_group",
                "user_id",
                "group_key",
                unique=True,
                postgresql_where=sa.text("group_key IS NOT NULL"),
                sqlite_where=sa.text("group_key IS NOT NULL"),
            ),
            NEVER_REUSE_IDS,
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        user_id: Mapped[Any] = mapped_column(user_id_type, *user_fk, nullable=False)
        sender_id: Mapped[Any] = mapped_column(user_id_type, nullable=True)
        subject: Mapped[str] = mapped_column(sa.String(255), nullable=False)
        content: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
        notice_type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
        read_status: Mapped[str] = mapped_column(
            sa.String(8), nullable=False, default=ReadStatus.UNREAD.value
        )
        send_status: Mapped[str] = mapped_column(
            sa.String(8), nullable=False, default=SendStatus.WAIT.value
        )
        url: Mapped[str | None] = mapped_column(sa.String(2048), nullable=True)
        data: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
        dedupe_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: when the user's bell (or the API) first showed the notice (None: not yet)
        seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: when the user archived the notice (None: in the inbox)
        archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: hidden from lists, counts and the stream until then (``notice_event``'s
        #: ``visible_at``); the sweeper sets it None once it published the live event
        visible_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: when the notice went out in an email digest (None: not yet)
        emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        create_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
        update_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
        )
        #: who did it, what it was done to, and with what: references to the app's rows
        #: (:mod:`notice.references`); names and links come from the app's resolver
        actor_type: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        actor_id: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        target_type: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        target_id: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        action_object_type: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        action_object_id: Mapped[str | None] = mapped_column(sa.String(MAX_REF), nullable=True)
        #: info, success, warning or error (:data:`notice.references.CATEGORIES`)
        category: Mapped[str] = mapped_column(
            sa.String(16), nullable=False, default="info", server_default="info"
        )
        #: action buttons: ``[{"label", "url", "method"}]``, None when there are none
        actions: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
        #: the open group's key (``notice_event(group_key=...)``); cleared when a later
        #: notice under the key starts a new group
        group_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
        #: notices folded into this one (None: not grouped)
        group_count: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
        #: the group's actors, newest first, at most NOTICE_GROUP_ACTORS
        group_actors: Mapped[Any] = mapped_column(sa.JSON, nullable=True)
        #: the group's window ends: later notices under the key start a new group
        group_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

        deliveries: Mapped[list[Any]] = db.relationship(
            "Delivery",
            back_populates="notice",
            cascade="all, delete-orphan",
            passive_deletes=True,
            lazy="select",
        )

        @property
        def is_read(self) -> bool:
            return bool(self.read_status == ReadStatus.READ.value)

        def is_expired(self, now: datetime | None = None) -> bool:
            return self.expires_at is not None and self.expires_at <= (now or utcnow())

        def to_dict(self) -> dict[str, Any]:
            """A JSON-ready view of the notice (what the API and the stream send)."""
            return notice_dict(self)

        def __repr__(self) -> str:
            return f"<Notice {self.id} user={self.user_id} {self.notice_type} {self.subject!r}>"

    class Delivery(db.Model):
        """One notice going out through one channel to one target (device, address)."""

        __tablename__ = "notice_delivery"
        __table_args__ = (
            sa.UniqueConstraint("notice_id", "channel", "target", name="uq_delivery_channel"),
            # the sweeper's scan: pending rows in due order
            sa.Index("ix_delivery_due", "status", "next_attempt_at"),
            NEVER_REUSE_IDS,
        )

        id: Mapped[int] = mapped_column(BigId, primary_key=True)
        # no index of its own: uq_delivery_channel's leads with notice_id and serves the
        # lookups by notice and the ON DELETE CASCADE (revision 0008 dropped
        # ix_notice_delivery_notice_id, one more entry per delivery written)
        notice_id: Mapped[int] = mapped_column(
            BigId, sa.ForeignKey("notice.id", ondelete="CASCADE"), nullable=False
        )
        channel: Mapped[str] = mapped_column(sa.String(64), nullable=False)
        #: sender-specific address within the channel, e.g. a push subscription id
        target: Mapped[str] = mapped_column(sa.String(255), nullable=False, default="")
        status: Mapped[str] = mapped_column(
            sa.String(8), nullable=False, default=DeliveryStatus.WAIT.value
        )
        attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
        #: leases lost without an outcome: claims that took the row over after its lease
        #: ran out (its worker died or froze mid-send); at NOTICE_MAX_LEASE_EXPIRIES it
        #: is Dead, so a row that kills or freezes every worker taking it stops doing so
        lease_expiries: Mapped[int] = mapped_column(
            sa.Integer, nullable=False, default=0, server_default="0"
        )
        next_attempt_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow
        )
        claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        #: who holds the lease; a worker finishes a row only while it still owns it
        claim_token: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
        last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
        #: escalation: end Skipped ("read before send") if the notice is read by the
        #: time this delivery is claimed (``notice_event(unless_read=...)``)
        unless_read: Mapped[bool] = mapped_column(
            sa.Boolean, nullable=False, default=False, server_default=sa.false()
        )
        sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
        create_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
        update_at: Mapped[datetime] = mapped_column(
            UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
        )

        notice: Mapped[Any] = db.relationship("Notice", back_populates="deliveries")

        def __repr__(self) -> str:
            return f"<Delivery {self.id} notice={self.notice_id} {self.channel} {self.status}>"

    return Models(Notice=Notice, Delivery=Delivery)


def iso_time(value: datetime | None) -> str | None:
    """ISO 8601 text of a timestamp; None stays None (JSON null)."""
    return value.isoformat() if value is not None else None
