"""``flask notice digest``: email each opted-in user their unread notices (for cron)."""

from __future__ import annotations

import json

import click

from ..columns import utcnow
from ..errors import ConfigurationError
from ..preferences.digest import DigestReport, candidates, run_digest
from ..preferences.settings import DIGEST_FREQUENCIES
from . import notice_cli
from .common import counted, current_state, database_errors, progress


def describe(frequency: str, report: DigestReport) -> str:
    return (
        f"digest ({frequency}): {counted(report.sent, 'email', 'emails')} sent "
        f"({counted(report.notices, 'notice', 'notices')}), "
        f"{report.failed} failed, {report.refused} refused for good, "
        f"{report.refused_before} skipped (address refused before), "
        f"{report.no_address} without address, "
        f"{report.busy} busy in another run, {report.empty} with nothing new"
    )


@notice_cli.command("digest")
@click.option(
    "--frequency",
    type=click.Choice([f for f in DIGEST_FREQUENCIES if f != "off"]),
    default="daily",
    show_default=True,
    help="Email the users who chose this digest frequency, or a type in this email mode.",
)
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Also try the addresses refused for good in earlier runs (once fixed); "
    "a digest that goes out clears the refusal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def digest_command(frequency: str, retry_refused: bool, as_json: bool) -> None:
    """Email every user on FREQUENCY one digest of their unread notices that were not
    emailed yet, then mark them emailed. Safe to re-run and to overlap.

    An address the mail server refuses for good (5xx to RCPT TO), or that is no valid
    mailbox, is recorded on the user's notice_digest row: later runs skip it until
    the email_loader gives another address, or --retry-refused.

    \b
    Exit status:
      0  no send failed, or the only failures were addresses refused for good
         (recorded; the output says so)
      1  a send failed otherwise: 4xx, connection refused or dropped, timeout,
         login refused, a 5xx to the sender or the message (those notices wait
         for the next run); or a configuration or database error
      2  bad usage
    """
    # the exit status is for cron: 1 must mean "look at the mail setup", so a dead
    # mailbox, refused once and then skipped, must not keep it at 1 run after run
    state = current_state()
    now = utcnow()
    with database_errors():
        users = candidates(state, frequency, now)
        with progress(len(users), f"{frequency} digest") as bar:
            try:
                report = run_digest(
                    state,
                    frequency,
                    now=now,
                    users=users,
                    on_user=lambda _: bar.update(1),
                    retry_refused=retry_refused,
                )
            except ConfigurationError as exc:
                raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict()) if as_json else describe(frequency, report))
    for line in report.errors:
        click.echo(f"  {line}", err=True)
    for line in report.refusals:
        click.echo(f"  {line} (refused for good; recorded)", err=True)
    if report.failed:
        raise click.exceptions.Exit(1)
    if (report.refused or report.refused_before) and not as_json:
        click.echo(
            "no retryable failures: the only failures are addresses refused for good, "
            "skipped until they change (--retry-refused tries them again); exit status 0"
        )
