"""``flask notice digest``: email each opted-in user their unread notices (for cron)."""

from __future__ import annotations

import json

import click

from ..columns import utcnow
from ..errors import ConfigurationError
from ..preferences.digest import DigestReport, candidates, run_digest
from ..preferences.settings import DIGEST_FREQUENCIES
from . import notice_cli
from .common import current_state, database_errors, progress


def describe(frequency: str, report: DigestReport) -> str:
    return (
        f"digest ({frequency}): {report.sent} emails sent ({report.notices} notices), "
        f"{report.failed} failed, {report.no_address} without address, "
        f"{report.busy} busy in another run, {report.empty} with nothing new"
    )


@notice_cli.command("digest")
@click.option(
    "--frequency",
    type=click.Choice([f for f in DIGEST_FREQUENCIES if f != "off"]),
    default="daily",
    show_default=True,
    help="Email the users who chose this digest frequency.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def digest_command(frequency: str, as_json: bool) -> None:
    """Email every user on FREQUENCY one digest of their unread notices that were not
    emailed yet, then mark them emailed. Safe to re-run and to overlap; exits 1 when
    a send failed (those notices wait for the next run)."""
    state = current_state()
    now = utcnow()
    with database_errors():
        users = candidates(state, frequency, now)
        with progress(len(users), f"{frequency} digest") as bar:
            try:
                report = run_digest(
                    state, frequency, now=now, users=users, on_user=lambda _: bar.update(1)
                )
            except ConfigurationError as exc:
                raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict()) if as_json else describe(frequency, report))
    for error in report.errors:
        click.echo(f"  {error}", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)
