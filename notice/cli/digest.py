"""``flask notice digest``: email each opted-in user their unread notices (for cron)."""

from __future__ import annotations

import click
from flask import current_app

from ..config import DIGEST_FREQUENCIES
from ..digest import run_digest
from ..errors import ConfigurationError
from . import notice_cli


@notice_cli.command("digest")
@click.option(
    "--frequency",
    type=click.Choice([f for f in DIGEST_FREQUENCIES if f != "off"]),
    default="daily",
    show_default=True,
    help="Email the users who chose this digest frequency.",
)
def digest_command(frequency: str) -> None:
    """Email every user on FREQUENCY one digest of their unread notices that were not
    emailed yet, then mark them emailed. Safe to re-run and to overlap; exits 1 when
    a send failed (those notices wait for the next run)."""
    state = current_app.extensions["notice"].state()
    try:
        report = run_digest(state, frequency)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"digest ({frequency}): {report.sent} emails sent ({report.notices} notices), "
        f"{report.failed} failed, {report.no_address} without address, "
        f"{report.busy} busy in another run, {report.empty} with nothing new"
    )
    for error in report.errors:
        click.echo(f"  {error}", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)
