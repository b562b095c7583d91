"""Grouping and digest modes: a notice's open group (key, count, actors, window end),
unique per user and key; a user's per-type email mode on ``notice_preference``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("group_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("group_count", sa.Integer, nullable=True))
        batch.add_column(sa.Column("group_actors", sa.JSON, nullable=True))
        batch.add_column(sa.Column("group_until", TIMESTAMP, nullable=True))
    # an index, not a constraint: SQLite adds it without rebuilding the table
    # partial: a notice outside any group (most) adds no entry to it
    op.create_index(
        "uq_notice_user_group",
        "notice",
        ["user_id", "group_key"],
        unique=True,
        postgresql_where=sa.text("group_key IS NOT NULL"),
        sqlite_where=sa.text("group_key IS NOT NULL"),
    )
    with op.batch_alter_table("notice_preference") as batch:
        batch.add_column(sa.Column("mode", sa.String(9), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notice_preference") as batch:
        batch.drop_column("mode")
    op.drop_index("uq_notice_user_group", table_name="notice")
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("group_until")
        batch.drop_column("group_actors")
        batch.drop_column("group_count")
        batch.drop_column("group_key")
