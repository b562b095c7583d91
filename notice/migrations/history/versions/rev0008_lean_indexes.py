"""Fewer index entries per notice and per delivery: ``uq_notice_user_dedupe`` becomes a
partial unique index (``dedupe_key IS NOT NULL``: nearly every notice has no key), and
``ix_notice_delivery_notice_id`` goes (``uq_delivery_channel`` leads with notice_id).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

DEDUPE = ["user_id", "dedupe_key"]

#: the notice table's partial indexes at 0007: ``(name, columns, WHERE, unique)``
PARTIAL = (
    ("ix_notice_undigested", ["user_id"], "emailed_at IS NULL AND read_status = 'Unread'", False),
    ("ix_notice_scheduled", ["visible_at"], "visible_at IS NOT NULL", False),
    ("ix_notice_target", ["target_type", "target_id", "user_id"], "target_id IS NOT NULL", False),
    ("ix_notice_actor", ["actor_type", "actor_id", "user_id"], "actor_id IS NOT NULL", False),
    (
        "ix_notice_action_object",
        ["action_object_type", "action_object_id"],
        "action_object_id IS NOT NULL",
        False,
    ),
    ("uq_notice_user_group", ["user_id", "group_key"], "group_key IS NOT NULL", True),
)


def upgrade() -> None:
    # uq_delivery_channel (notice_id, channel, target) serves the lookups by notice_id
    # and the ON DELETE CASCADE: this index was one more entry per delivery, for nothing
    op.drop_index("ix_notice_delivery_notice_id", table_name="notice_delivery")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_notice(unique_constraint=False)
    else:
        op.drop_constraint("uq_notice_user_dedupe", "notice", type_="unique")
    # the same name and uniqueness, minus the entry of every notice without a key (the
    # ON CONFLICT of a deduplicated insert names the predicate: store.writes)
    op.create_index(
        "uq_notice_user_dedupe",
        "notice",
        DEDUPE,
        unique=True,
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
        sqlite_where=sa.text("dedupe_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_notice_user_dedupe", table_name="notice")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_notice(unique_constraint=True)
    else:
        op.create_unique_constraint("uq_notice_user_dedupe", "notice", DEDUPE)
    op.create_index("ix_notice_delivery_notice_id", "notice_delivery", ["notice_id"])


def _rebuild_notice(*, unique_constraint: bool) -> None:
    """SQLite: copy ``notice`` into a table declared without (or again with) the
    ``uq_notice_user_dedupe`` UNIQUE constraint, which is part of SQLite's table
    definition; AUTOINCREMENT (0002) and every index are kept.

    The copy is declared from reflection: as in 0002, the partial indexes are dropped
    first and declared again after, so their WHERE never rests on reflection keeping it.
    The runner turns foreign keys off: dropping the old table deletes no delivery.
    """
    for name, _, _, _ in PARTIAL:
        op.drop_index(name, table_name="notice")
    with op.batch_alter_table(
        "notice", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        if unique_constraint:
            batch.create_unique_constraint("uq_notice_user_dedupe", DEDUPE)
        else:
            batch.drop_constraint("uq_notice_user_dedupe", type_="unique")
    for name, columns, where, unique in PARTIAL:
        op.create_index(name, "notice", columns, unique=unique, sqlite_where=sa.text(where))
