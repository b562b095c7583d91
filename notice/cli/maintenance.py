"""``flask notice retry | stats | purge | send-test``: operator commands.

Exit codes: 0 success; 1 a delivery failed (``send-test``) or the database could not be
reached; 2 bad arguments.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import click

from ..columns import utcnow
from ..delivery import deliver
from ..publish import notice_event
from ..state import NoticeState
from ..store import claims, maintenance
from ..store.common import chunks
from ..types import DeliveryStatus, NoticeType
from . import notice_cli
from .common import counted, current_state, database_errors, progress
from .duration import DURATION

#: rows ``retry --dry-run`` lists before summarising the rest
SHOW_ROWS = 50


def _user_id(state: NoticeState, value: str, param: str) -> Any:
    column_type = state.models.Notice.__table__.c.user_id.type
    try:
        python_type = column_type.python_type
    except NotImplementedError:
        return value
    try:
        return python_type(value)
    except (TypeError, ValueError):
        raise click.BadParameter(
            f"{value!r} is not a valid user id ({python_type.__name__})", param_hint=param
        ) from None


# --- retry ---------------------------------------------------------------------------


@notice_cli.command("retry")
@click.option("--id", "ids", type=click.IntRange(min=1), multiple=True, help="Delivery id.")
@click.option("--type", "types", multiple=True, help="Notice type, e.g. Comment.")
@click.option("--channel", "channels", multiple=True, help="Sender name, e.g. email.")
@click.option("--user", "users", multiple=True, help="Recipient's user id.")
@click.option("--since", type=DURATION, help="Only failures this recent, e.g. 2h.")
@click.option(
    "--status",
    type=click.Choice(["error", "dead", "all"]),
    default="all",
    show_default=True,
    help="Retrying (Error), given up (Dead), or both.",
)
@click.option("--dry-run", is_flag=True, help="List what would be re-queued; change nothing.")
def retry_command(
    ids: tuple[int, ...],
    types: tuple[str, ...],
    channels: tuple[str, ...],
    users: tuple[str, ...],
    since: timedelta | None,
    status: str,
    dry_run: bool,
) -> None:
    """Re-queue failed deliveries: they become due now with a fresh attempt budget
    (the last error is kept until the next attempt). Options narrow the selection and
    may be repeated. The next sweep sends them."""
    state = current_state()
    for t in types:
        try:
            NoticeType(t)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--type") from None
    for c in channels:
        if c not in state.senders_by_name:
            known = ", ".join(sorted(state.senders_by_name)) or "none"
            raise click.BadParameter(
                f"no sender named {c!r}; known: {known}", param_hint="--channel"
            )
    statuses = (
        maintenance.FAILED_STATES
        if status == "all"
        else (DeliveryStatus.ERROR.value if status == "error" else DeliveryStatus.DEAD.value,)
    )
    now = utcnow()
    flt = maintenance.RetryFilter(
        ids=ids,
        types=types,
        channels=channels,
        users=tuple(_user_id(state, u, "--user") for u in users),
        since=None if since is None else now - since,
        statuses=statuses,
    )
    delivery = state.models.Delivery.__table__
    with database_errors():
        rows = maintenance.find_failed(
            state.engine, delivery, state.models.Notice.__table__, flt, now=now
        )
        if not rows:
            click.echo("no failed deliveries match")
            return
        if dry_run:
            click.echo(f"would re-queue {counted(len(rows), 'delivery', 'deliveries')}:")
            for row in rows[:SHOW_ROWS]:
                click.echo(
                    f"  #{row.id} notice={row.notice_id} user={row.user_id} {row.notice_type} "
                    f"{row.channel}{':' + row.target if row.target else ''} {row.status} "
                    f"attempts={row.attempts} error={row.last_error or '-'}"
                )
            if len(rows) > SHOW_ROWS:
                click.echo(f"  ... and {len(rows) - SHOW_ROWS} more")
            return
        changed = 0
        with progress(len(rows), "re-queueing") as bar:
            for part in chunks([row.id for row in rows]):
                changed += maintenance.requeue(
                    state.engine, delivery, part, now=utcnow(), statuses=statuses
                )
                bar.update(len(part))
    click.echo(f"re-queued {counted(changed, 'delivery', 'deliveries')}; the next sweep sends them")


# --- stats ---------------------------------------------------------------------------


@notice_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def stats_command(as_json: bool) -> None:
    """Deliveries by status, by channel and by age; the oldest pending; notice totals."""
    state = current_state()
    with database_errors():
        data = maintenance.stats(
            state.engine,
            state.models.Delivery.__table__,
            state.models.Notice.__table__,
            now=utcnow(),
            max_lease_expiries=state.settings.max_lease_expiries,
        )
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    d = data["deliveries"]
    statuses = [s.value for s in DeliveryStatus]
    click.echo(f"notices: {data['notices']['total']} ({data['notices']['unread']} unread)")
    click.echo(f"deliveries: {d['total']}  due now: {d['due_now']}  in flight: {d['in_flight']}")
    click.echo("  " + "  ".join(f"{s}: {d['by_status'].get(s, 0)}" for s in statuses))
    if d["by_channel"]:
        width = max(7, *(len(c) for c in d["by_channel"]))
        click.echo(f"{'channel':<{width}}" + "".join(f"{s:>9}" for s in statuses))
        for channel, counts in d["by_channel"].items():
            click.echo(f"{channel:<{width}}" + "".join(f"{counts.get(s, 0):>9}" for s in statuses))
    click.echo("pending by age: " + ", ".join(f"{k} {v}" for k, v in d["pending_by_age"].items()))
    if d["poisoned"]:
        click.echo(
            f"poison rows: {d['poisoned']} Dead after their lease expired "
            f"{state.settings.max_lease_expiries} times without an outcome "
            "(`flask notice retry --status dead` re-queues them)"
        )
    oldest = d["oldest_pending"]
    if oldest is None:
        click.echo("oldest pending: none")
    else:
        click.echo(
            f"oldest pending: #{oldest['id']} ({oldest['channel']}) created {oldest['create_at']},"
            f" {oldest['age_seconds']:.0f} s ago"
        )


# --- purge ---------------------------------------------------------------------------


@notice_cli.command("purge")
@click.option(
    "--read-older-than",
    "read_age",
    type=DURATION,
    required=True,
    help="Delete read notices created, and archived ones archived, longer ago than this, e.g. 90d.",
)
@click.option(
    "--unread-older-than",
    "unread_age",
    type=DURATION,
    help="Also delete unread notices created longer ago than this, e.g. 365d.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    default=1000,
    show_default=True,
    help="Notices deleted per transaction.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
def purge_command(
    read_age: timedelta, unread_age: timedelta | None, batch_size: int, dry_run: bool
) -> None:
    """Delete old notices and their deliveries, in bounded batches."""
    state = current_state()
    now = utcnow()
    read_before = now - read_age
    unread_before = None if unread_age is None else now - unread_age
    notice = state.models.Notice.__table__
    with database_errors():
        total = maintenance.count_purgeable(state.engine, notice, read_before, unread_before)
        if dry_run or not total:
            click.echo(
                f"{'would delete' if dry_run else 'deleted'} {counted(total, 'notice', 'notices')}"
            )
            return
        with progress(total, "purging") as bar:
            deleted = maintenance.purge(
                state.engine,
                state.models.Delivery.__table__,
                notice,
                read_before,
                unread_before,
                batch=batch_size,
                progress=bar.update,
            )
    click.echo(f"deleted {counted(deleted, 'notice', 'notices')}")


# --- send-test -----------------------------------------------------------------------


@notice_cli.command("send-test")
@click.argument("user_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a background dispatcher to finish.",
)
def send_test_command(user_id: str, timeout: float) -> None:
    """Send one SYSTEM notice to USER_ID through every sender; print each outcome.

    Exits 1 when a delivery failed or did not finish in time.
    """
    state = current_state()
    uid = _user_id(state, user_id, "USER_ID")
    names = list(state.senders_by_name)
    if not names:
        raise click.ClickException("no senders are configured (NOTICE_SENDERS)")
    delivery = state.models.Delivery.__table__
    with database_errors():
        notice = notice_event(
            uid,
            NoticeType.SYSTEM,
            subject="Test notice",
            content="A test notice sent by `flask notice send-test`.",
            channels=names,
        )
        rows = maintenance.deliveries_of(state.engine, delivery, notice.id)
        # the app's dispatcher ran (sync) or is running (thread, celery); with "none"
        # nobody has: send what is still waiting here, never a second attempt
        deliver(state, ids=[r.id for r in rows], where=claims.waiting(delivery))
        deadline = time.monotonic() + timeout
        while any(r.status == DeliveryStatus.WAIT.value for r in rows):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
            rows = maintenance.deliveries_of(state.engine, delivery, notice.id)
    click.echo(f"notice #{notice.id} to user {uid}:")
    failed = False
    for name in names:
        mine = [r for r in rows if r.channel == name]
        if not mine:
            click.echo(f"  {name}: no delivery (no target, filtered out or opted out)")
        for r in mine:
            target = f" [{r.target}]" if r.target else ""
            error = f": {r.last_error}" if r.last_error and r.status != "Sent" else ""
            click.echo(f"  {name}{target}: {r.status}{error}")
            failed = failed or r.status not in ("Sent", "Skipped")
    if failed:
        click.get_current_context().exit(1)
