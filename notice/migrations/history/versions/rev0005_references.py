"""Inbox model, second step: what a notice is about (actor, target and action object,
each a type and an id), its category and its action buttons; partial indexes to list a
user's notices about one object or by one actor, and to delete those about an object.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REF = sa.String(64)
ROLES = ("actor", "target", "action_object")
#: the partial indexes, each on rows whose second column is set
INDEXES = {
    "ix_notice_target": ("target_type", "target_id", "user_id"),
    "ix_notice_actor": ("actor_type", "actor_id", "user_id"),
    "ix_notice_action_object": ("action_object_type", "action_object_id"),
}


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        for role in ROLES:
            batch.add_column(sa.Column(f"{role}_type", REF, nullable=True))
            batch.add_column(sa.Column(f"{role}_id", REF, nullable=True))
        # existing notices are "info", the default of new ones
        batch.add_column(
            sa.Column("category", sa.String(16), nullable=False, server_default="info")
        )
        batch.add_column(sa.Column("actions", sa.JSON, nullable=True))
    # partial, as in the models: notices without references add no entries
    for name, columns in INDEXES.items():
        present = f"{columns[1]} IS NOT NULL"
        op.create_index(
            name,
            "notice",
            list(columns),
            postgresql_where=sa.text(present),
            sqlite_where=sa.text(present),
        )


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(name, table_name="notice")
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("actions")
        batch.drop_column("category")
        for role in reversed(ROLES):
            batch.drop_column(f"{role}_id")
            batch.drop_column(f"{role}_type")
