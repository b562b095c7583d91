"""Helpers shared by the command modules: the app's state, progress, database errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from ..errors import TablesMissing
from ..state import NoticeState, state_of
from ..sweeper import describe_db_error


def current_state() -> NoticeState:
    """The current app's notice state, or a one-line error if notice is not set up."""
    try:
        return state_of()
    except RuntimeError:
        raise click.ClickException("notice is not initialised on this app") from None


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a database failure into a one-line error (exit 1) instead of a traceback."""
    try:
        yield
    except TablesMissing as exc:  # says which table and what to run
        raise click.ClickException(f"database error: {exc}") from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database error: {describe_db_error(exc)}") from None


def counted(n: int, singular: str, plural: str) -> str:
    """``"1 delivery"``, ``"2 deliveries"``. Operator output stays English (it is
    grepped and pasted into tickets), so no gettext here, only the right form."""
    return f"{n} {singular if n == 1 else plural}"


class _Silent:
    def update(self, n: int) -> None:
        return None


@contextmanager
def progress(length: int, label: str) -> Iterator[Any]:
    """A progress bar on stderr when it is a terminal; otherwise nothing, so logs and
    pipes stay clean. Yields an object with ``update(n)``."""
    stream = sys.stderr
    if not stream.isatty():
        yield _Silent()
        return
    with click.progressbar(length=max(length, 1), label=label, file=stream) as bar:
        yield bar
