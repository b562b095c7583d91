"""The schema of release 0.1.0: every table of the library.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

A database made by ``db.create_all()`` under 0.1 is at this revision: mark it with
``flask notice db stamp 0001``, then ``flask notice db upgrade``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from notice.migrations.app_columns import user_id, user_id_type

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# frozen copies of the column kit (notice.columns) as it was: a revision must not
# change when the library's models do
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notice",
        sa.Column("id", ID, primary_key=True),
        user_id(nullable=False),
        sa.Column("sender_id", user_id_type(), nullable=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("notice_type", sa.String(32), nullable=False),
        sa.Column("read_status", sa.String(8), nullable=False),
        sa.Column("send_status", sa.String(8), nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("dedupe_key", sa.String(255), nullable=True),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("read_at", TIMESTAMP, nullable=True),
        sa.Column("emailed_at", TIMESTAMP, nullable=True),
        sa.Column("create_at", TIMESTAMP, nullable=False),
        sa.Column("update_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("user_id", "dedupe_key", name="uq_notice_user_dedupe"),
    )
    op.create_index("ix_notice_user_read", "notice", ["user_id", "read_status", "expires_at"])
    op.create_index("ix_notice_user_id", "notice", ["user_id", "id"])
    undigested = "emailed_at IS NULL AND read_status = 'Unread'"
    op.create_index(
        "ix_notice_undigested",
        "notice",
        ["user_id"],
        postgresql_where=sa.text(undigested),
        sqlite_where=sa.text(undigested),
    )

    op.create_table(
        "notice_delivery",
        sa.Column("id", ID, primary_key=True),
        sa.Column("notice_id", ID, sa.ForeignKey("notice.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TIMESTAMP, nullable=False),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", TIMESTAMP, nullable=True),
        sa.Column("create_at", TIMESTAMP, nullable=False),
        sa.Column("update_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("notice_id", "channel", "target", name="uq_delivery_channel"),
    )
    op.create_index("ix_delivery_due", "notice_delivery", ["status", "next_attempt_at"])
    op.create_index("ix_notice_delivery_notice_id", "notice_delivery", ["notice_id"])

    op.create_table(
        "notice_push_subscription",
        sa.Column("id", ID, primary_key=True),
        user_id(nullable=False),
        sa.Column("endpoint", sa.String(1024), nullable=False, unique=True),
        sa.Column("p256dh", sa.String(128), nullable=False),
        sa.Column("auth", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_success_at", TIMESTAMP, nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_notice_push_subscription_user_id", "notice_push_subscription", ["user_id"])

    op.create_table(
        "notice_topic",
        sa.Column("id", ID, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )

    op.create_table(
        "notice_topic_subscription",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "topic_id", ID, sa.ForeignKey("notice_topic.id", ondelete="CASCADE"), nullable=False
        ),
        user_id(nullable=True),
        sa.Column(
            "push_subscription_id",
            ID,
            sa.ForeignKey("notice_push_subscription.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.UniqueConstraint("topic_id", "user_id", name="uq_topic_user"),
        sa.UniqueConstraint("topic_id", "push_subscription_id", name="uq_topic_device"),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (push_subscription_id IS NULL)", name="ck_topic_subscriber"
        ),
    )
    op.create_index(
        "ix_notice_topic_subscription_user_id", "notice_topic_subscription", ["user_id"]
    )
    op.create_index(
        "ix_notice_topic_subscription_push_subscription_id",
        "notice_topic_subscription",
        ["push_subscription_id"],
    )

    op.create_table(
        "notice_topic_message",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "topic_id", ID, sa.ForeignKey("notice_topic.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("notice_type", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("sender_id", user_id_type(), nullable=True),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_topic_message_topic", "notice_topic_message", ["topic_id", "id"])

    op.create_table(
        "notice_preference",
        user_id(primary_key=True, autoincrement=False),
        sa.Column("notice_type", sa.String(32), primary_key=True),
        sa.Column("channel", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("update_at", TIMESTAMP, nullable=False),
    )

    op.create_table(
        "notice_digest",
        user_id(primary_key=True, autoincrement=False),
        sa.Column("frequency", sa.String(8), nullable=True),
        sa.Column("claimed_until", TIMESTAMP, nullable=True),
        sa.Column("claim_token", sa.String(32), nullable=True),
        sa.Column("last_sent_at", TIMESTAMP, nullable=True),
        sa.Column("update_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "notice_digest",
        "notice_preference",
        "notice_topic_message",
        "notice_topic_subscription",
        "notice_topic",
        "notice_push_subscription",
        "notice_delivery",
        "notice",
    ):
        op.drop_table(table)
