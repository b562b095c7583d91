"""Run work once a session's transaction has committed, never if it rolls back.

Callbacks belong to the transaction level that registered them. A SAVEPOINT
(``session.begin_nested()``) that is released hands its callbacks to the enclosing
transaction; one that is rolled back drops them, and only them. The outermost
transaction runs what it holds after it commits and drops it after a rollback. The
publisher, the dispatcher and the live stream all go through here, so "nothing
happens before commit" holds for every side effect in one place.

SQLAlchemy fires ``after_commit`` for a released SAVEPOINT too, and ``after_rollback``
for a rolled-back one, so neither event alone says which level ended: each only notes
the outcome, and ``after_transaction_end`` (which names the transaction) acts on it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction, scoped_session

logger = logging.getLogger("notice")

_KEY = "notice.after_commit"
_OUTCOME = "notice.after_commit.outcome"
_order = itertools.count()

#: callbacks with a lower priority run first (the stream's events go out before
#: synchronous senders take their time)
EARLY, NORMAL = 0, 10

_Entry = tuple[int, int, Callable[[], None], str]


def call_after_commit(
    session: Any,
    callback: Callable[[], None],
    *,
    priority: int = NORMAL,
    description: str = "after-commit work",
) -> None:
    """Run ``callback()`` after the transaction ``session`` is in now commits for good.

    Registered inside a SAVEPOINT, it runs only if that SAVEPOINT is released and the
    outer transaction then commits. A callback's exception is logged with
    ``description`` and does not stop the others: the caller's commit already
    succeeded, and what was not done stays in the database for the sweeper.
    """
    _install()
    if isinstance(session, scoped_session):
        session = session()  # Flask-SQLAlchemy's db.session: this context's Session
    level = session.get_nested_transaction() or session.get_transaction()
    pending: dict[Any, list[_Entry]] = session.info.setdefault(_KEY, {})
    pending.setdefault(level, []).append((priority, next(_order), callback, description))


def _note_commit(session: Session) -> None:
    session.info[_OUTCOME] = "commit"


def _note_rollback(session: Session) -> None:
    session.info[_OUTCOME] = "rollback"


def _transaction_end(session: Session, transaction: SessionTransaction) -> None:
    committed = session.info.pop(_OUTCOME, None) == "commit"
    pending: dict[Any, list[_Entry]] | None = session.info.get(_KEY)
    if not pending:
        return
    entries = pending.pop(transaction, [])
    if transaction.nested:
        if committed and entries:
            # a released SAVEPOINT: its work is now the enclosing transaction's
            pending.setdefault(transaction.parent, []).extend(entries)
        return
    if transaction.parent is not None:
        return  # not the outermost level: nothing is final yet
    # callbacks registered before the transaction began (none was open) wait for it
    entries.extend(pending.pop(None, []))
    if not pending:
        session.info.pop(_KEY, None)
    if committed:
        _run(entries)


def _run(entries: list[_Entry]) -> None:
    for _priority, _seq, callback, description in sorted(entries, key=lambda e: e[:2]):
        try:
            callback()
        except Exception:  # noqa: BLE001 - see call_after_commit
            logger.exception("%s failed after commit", description)


_installed = False


def _install() -> None:
    global _installed
    if not _installed:
        sa.event.listen(Session, "after_commit", _note_commit)
        sa.event.listen(Session, "after_rollback", _note_rollback)
        sa.event.listen(Session, "after_transaction_end", _transaction_end)
        _installed = True
