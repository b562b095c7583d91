"""The columns whose shape the app chooses, for the revisions in ``history/versions``.

``Notices(db=db, user_table=..., user_id_type=...)`` decides the type of every user id
column and whether it references the app's user table. A revision cannot know those
when it is written, so it asks here: the values come from the app's own models, which
``flask notice db`` hands to ``env.py`` (``config.attributes["notice_user_column"]``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

#: the ``config.attributes`` key holding the app's ``notice.user_id`` column
USER_COLUMN = "notice_user_column"


def user_id(name: str = "user_id", **kwargs: Any) -> sa.Column[Any]:
    """A user id column of the app's type, referencing the app's user table (with
    ``ON DELETE CASCADE``) when the app gave ``user_table``."""
    model_column: sa.Column[Any] = context.config.attributes[USER_COLUMN]
    # a ForeignKey belongs to one column: build a new one each time
    fks = [
        sa.ForeignKey(fk.target_fullname, ondelete="CASCADE") for fk in model_column.foreign_keys
    ]
    return sa.Column(name, model_column.type, *fks, **kwargs)


def user_id_type() -> Any:
    """The type of the app's user ids (for columns without a foreign key)."""
    return context.config.attributes[USER_COLUMN].type
