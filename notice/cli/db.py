"""``flask notice db upgrade | downgrade | current | history | stamp``: the library's
own migrations (see :mod:`notice.migrations`).

They run on the app's ``db.engine`` and record their revisions in
``notice_alembic_version``, apart from the app's own ``alembic_version``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import click
from flask import current_app

from . import notice_cli
from .common import current_state, database_errors


class _Echo:
    """A text stream writing through ``click.echo`` (so CliRunner sees Alembic's output)."""

    def write(self, text: str) -> int:
        click.echo(text, nl=False)
        return len(text)

    def flush(self) -> None:
        return None


def _runner() -> ModuleType:
    try:
        from ..migrations import runner
    except ImportError as exc:  # Alembic is an optional extra
        raise click.ClickException(
            f"notice's migrations need Alembic: pip install 'notice[migrations]' ({exc})"
        ) from None
    return runner


@contextmanager
def _errors() -> Iterator[None]:
    """Database errors and Alembic's (an unknown revision...) as one ``Error:`` line."""
    from alembic.util import CommandError

    with database_errors():
        try:
            yield
        except CommandError as exc:
            raise click.ClickException(str(exc)) from None


def _app() -> Any:
    current_state()  # a one-line error when notice is not set up on this app
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _at(runner: ModuleType) -> str:
    return ", ".join(runner.current(_app())) or "base"


@notice_cli.group("db")
def db_group() -> None:
    """The library's tables: create and upgrade them with Alembic."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade_command(revision: str) -> None:
    """Upgrade the library's tables to REVISION (default: head)."""
    runner = _runner()
    with _errors():
        made_by_create_all = runner.unrecorded_revision(_app())
        if made_by_create_all is not None:
            raise click.ClickException(
                "the library's tables exist but record no revision (db.create_all() made "
                f"them); they look like revision {made_by_create_all}: run "
                f'"flask notice db stamp {made_by_create_all}", then upgrade'
            )
        before = _at(runner)
        runner.upgrade(_app(), revision, stdout=_Echo())
        click.echo(f"notice tables: {before} -> {_at(runner)}")


@db_group.command("downgrade")
@click.argument("revision")
def downgrade_command(revision: str) -> None:
    """Downgrade the library's tables to REVISION ("base" drops them all)."""
    runner = _runner()
    with _errors():
        before = _at(runner)
        runner.downgrade(_app(), revision, stdout=_Echo())
        click.echo(f"notice tables: {before} -> {_at(runner)}")


@db_group.command("stamp")
@click.argument("revision")
def stamp_command(revision: str) -> None:
    """Record REVISION as applied without running it (a 0.1 database: "0001")."""
    runner = _runner()
    with _errors():
        runner.stamp(_app(), revision, stdout=_Echo())
    click.echo(f"notice tables stamped {revision}")


@db_group.command("current")
def current_command() -> None:
    """Show the revision the library's tables are at, and the newest one."""
    runner = _runner()
    with _errors():
        at = runner.current(_app())
    newest = runner.head()
    status = "up to date" if at == (newest,) else f"upgrade to {newest}: flask notice db upgrade"
    click.echo(f"{', '.join(at) or 'base'} ({status})")


@db_group.command("history")
def history_command() -> None:
    """List the library's revisions, oldest first."""
    for revision, summary in _runner().history():
        click.echo(f"{revision}  {summary.splitlines()[0] if summary else ''}")
