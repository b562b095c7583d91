"""Inbox model, second step: what a notice is about (actor, target and action object,
each a type and an id), its category and its action buttons; partial indexes to list a
user's notices about one object or by one actor, and to delete those about an object.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

REF = sa.String(64)
ROLES = ("actor", "target", "action_object")


def _partial(column: str) -> dict[str, Any]:
    where = sa.text(f"{column} IS NOT NULL")
    return {"postgresql_where": where, "sqlite_where": where}


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
    op.create_index(
        "ix_notice_target",
        "notice",
        ["target_type", "target_id", "user_id"],
        **_partial("target_id"),
    )
    op.create_index(
        "ix_notice_actor", "notice", ["actor_type", "actor_id", "user_id"], **_partial("actor_id")
    )
    op.create_index(
        "ix_notice_action_object",
        "notice",
        ["action_object_type", "action_object_id"],
        **_partial("action_object_id"),
    )


def downgrade() -> None:
    for name in ("ix_notice_action_object", "ix_notice_actor", "ix_notice_target"):
        op.drop_index(name, table_name="notice")
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("actions")
        batch.drop_column("category")
        for role in reversed(ROLES):
            batch.drop_column(f"{role}_id")
            batch.drop_column(f"{role}_type")
