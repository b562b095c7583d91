"""Run work once a session's transaction has committed, never if it rolls back.

The publisher parks callbacks in ``session.info``; one pair of listeners on every
SQLAlchemy Session runs them after commit and drops them after rollback (the model
is Flask-SQLAlchemy's ``track_modifications``, which hooks the same events). Both the
delivery dispatcher and the live stream use it, so "nothing happens before commit"
holds for every side effect in one place.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

logger = logging.getLogger("notice")

_KEY = "notice.after_commit"
_order = itertools.count()

#: callbacks with a lower priority run first (the stream's events go out before
#: synchronous senders take their time)
EARLY, NORMAL = 0, 10


def call_after_commit(
    session: Any,
    callback: Callable[[], None],
    *,
    priority: int = NORMAL,
    description: str = "after-commit work",
) -> None:
    """Run ``callback()`` after ``session``'s transaction commits.

    A callback's exception is logged with ``description`` and does not stop the others:
    the caller's commit already succeeded, and what was not done stays in the database
    for the sweeper.
    """
    _install()
    session.info.setdefault(_KEY, []).append((priority, next(_order), callback, description))


def _after_commit(session: Session) -> None:
    for _priority, _seq, callback, description in sorted(session.info.pop(_KEY, ())):
        try:
            callback()
        except Exception:  # noqa: BLE001 - see call_after_commit
            logger.exception("%s failed after commit", description)


def _after_rollback(session: Session) -> None:
    session.info.pop(_KEY, None)


_installed = False


def _install() -> None:
    global _installed
    if not _installed:
        sa.event.listen(Session, "after_commit", _after_commit)
        sa.event.listen(Session, "after_rollback", _after_rollback)
        _installed = True
