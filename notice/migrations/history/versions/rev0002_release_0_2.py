"""Release 0.2.0: lease expiries, refused digest addresses, ids SQLite never reuses.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)

#: tables whose ids are referenced or shown to clients (notice.columns.NEVER_REUSE_IDS)
NEVER_REUSE = (
    "notice",
    "notice_delivery",
    "notice_push_subscription",
    "notice_topic",
    "notice_topic_subscription",
    "notice_topic_message",
)
UNDIGESTED = "emailed_at IS NULL AND read_status = 'Unread'"


def upgrade() -> None:
    with op.batch_alter_table("notice_delivery") as batch:
        # existing rows have lost no lease: the server default fills them with 0
        batch.add_column(
            sa.Column("lease_expiries", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("notice_digest") as batch:
        batch.add_column(sa.Column("refused_address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("refused_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("refused_error", sa.Text(), nullable=True))
    _rebuild_ids(autoincrement=True)


def downgrade() -> None:
    _rebuild_ids(autoincrement=False)
    with op.batch_alter_table("notice_digest") as batch:
        batch.drop_column("refused_error")
        batch.drop_column("refused_at")
        batch.drop_column("refused_address")
    with op.batch_alter_table("notice_delivery") as batch:
        batch.drop_column("lease_expiries")


def _rebuild_ids(*, autoincrement: bool) -> None:
    """SQLite: copy each table into one declared with (or without) AUTOINCREMENT, the
    only way to change it. PostgreSQL's sequences never reuse ids: nothing to do."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in NEVER_REUSE:
        # the copy is built from reflection, which loses the partial index's WHERE:
        # drop it first and declare it again after
        if table == "notice":
            op.drop_index("ix_notice_undigested", table_name="notice")
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass
        if table == "notice":
            op.create_index(
                "ix_notice_undigested", "notice", ["user_id"], sqlite_where=sa.text(UNDIGESTED)
            )
