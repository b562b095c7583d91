"""Schedule: a notice hidden until ``visible_at``, deliveries that end unsent when
their notice was read first (``unless_read``), and users' quiet hours.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from notice.migrations.app_columns import user_id

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
SCHEDULED = "visible_at IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("visible_at", TIMESTAMP, nullable=True))
    # recreate="never": a plain ADD COLUMN on SQLite too (a copied table would lose
    # AUTOINCREMENT, see 0002); a constant default is all SQLite needs for it
    with op.batch_alter_table("notice_delivery", recreate="never") as batch:
        # existing rows escalate nothing: the server default fills them with false
        batch.add_column(
            sa.Column("unless_read", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # the badge counts filter on visible_at now and count seen_at (unseen): keep both
    # inside the index, so a badge stays an index-only scan
    op.drop_index("ix_notice_user_read", table_name="notice")
    op.create_index(
        "ix_notice_user_read",
        "notice",
        ["user_id", "read_status", "expires_at", "archived_at", "visible_at", "seen_at"],
    )
    op.create_index(
        "ix_notice_scheduled",
        "notice",
        ["visible_at"],
        postgresql_where=sa.text(SCHEDULED),
        sqlite_where=sa.text(SCHEDULED),
    )
    op.create_table(
        "notice_quiet_hours",
        user_id(primary_key=True, autoincrement=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("update_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notice_quiet_hours")
    op.drop_index("ix_notice_scheduled", table_name="notice")
    op.drop_index("ix_notice_user_read", table_name="notice")
    op.create_index(
        "ix_notice_user_read", "notice", ["user_id", "read_status", "expires_at", "archived_at"]
    )
    with op.batch_alter_table("notice_delivery") as batch:
        batch.drop_column("unless_read")
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("visible_at")
