"""Inbox model, first step: when a notice was seen, and when it was archived; the
unread-count index covers ``archived_at`` so a badge stays an index-only scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("seen_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("archived_at", TIMESTAMP, nullable=True))
    # the unread count filters on archived_at now: keep it inside the index
    op.drop_index("ix_notice_user_read", table_name="notice")
    op.create_index(
        "ix_notice_user_read", "notice", ["user_id", "read_status", "expires_at", "archived_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_notice_user_read", table_name="notice")
    op.create_index("ix_notice_user_read", "notice", ["user_id", "read_status", "expires_at"])
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("archived_at")
        batch.drop_column("seen_at")
