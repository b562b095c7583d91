"""Alembic environment of the library's history, run by ``flask notice db``.

The caller (:mod:`notice.migrations.runner`) passes the connection, the app's metadata
and its ``notice.user_id`` column in ``config.attributes``; revisions are recorded in
``notice_alembic_version``, and only the library's tables are looked at.
"""

from __future__ import annotations

from alembic import context

from notice.migrations import VERSION_TABLE, only_library_objects

config = context.config

if context.is_offline_mode():
    raise SystemExit("notice's migrations run online only: flask notice db upgrade")

connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=config.attributes.get("metadata"),
    version_table=VERSION_TABLE,
    include_object=only_library_objects,
    # SQLite can alter little in place: batch mode copies the table instead
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
