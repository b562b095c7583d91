"""Native mobile push: the ``notice_device`` table (FCM and APNs device tokens).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from notice.migrations.app_columns import user_id

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# frozen copies of the column kit (notice.columns): a revision must not change when the
# library's models do
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notice_device",
        sa.Column("id", ID, primary_key=True),
        user_id(nullable=False),
        sa.Column("platform", sa.String(8), nullable=False),
        sa.Column("token", sa.String(512), nullable=False),
        sa.Column("app_id", sa.String(255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("last_used_at", TIMESTAMP, nullable=True),
        sa.UniqueConstraint("platform", "token", name="uq_device_token"),
        # deliveries name their device by id: SQLite must never hand a deleted one out again
        sqlite_autoincrement=True,
    )
    op.create_index("ix_notice_device_user_id", "notice_device", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_notice_device_user_id", table_name="notice_device")
    op.drop_table("notice_device")
