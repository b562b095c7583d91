"""Inbox model, first step: when a notice was seen, and when it was archived.

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.add_column(sa.Column("seen_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("archived_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notice") as batch:
        batch.drop_column("archived_at")
        batch.drop_column("seen_at")
