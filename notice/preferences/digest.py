"""The unread digest: one email per opted-in user listing their unread notices that
were not emailed yet, then those notices are marked ``emailed_at``.

Runs may overlap (a slow run and the next cron tick, or two hosts) and may fail half
way, so each user is handled under a lease on their ``notice_digest`` row:

1. claim: ``UPDATE notice_digest SET claim_token=... WHERE user_id=? AND lease free``
   (one writer wins; the loser skips the user);
2. read the user's unread, un-emailed notices and send one email;
3. on success mark exactly those notices emailed and free the lease in one
   transaction; on failure only free the lease, so the next run sends them.

A crash between 2 and 3 leaves the lease to expire (``NOTICE_CLAIM_TIMEOUT``) and the
next run sends those notices again: at least once, never silently lost.

Each notice reaches the inbox by email once, its own email or a digest line: a notice
whose own email delivery is Wait or Error (due for a retry, maybe held by a worker
right now) or Sent is left out of the digest, the retry mails it. Only when that email
ends Dead or Skipped does the notice join a digest, so it is not lost either. Taking
such notices over instead (list them, end the delivery Skipped) would have the digest
claim delivery rows under their lease rules, and would hold a notice back for the next
digest when its retry comes minutes later; leaving the rows alone needs no lease and
cannot race the worker that holds one. The email sender skips a notice that is already
``emailed_at`` (an operator re-queued its Dead email after a digest listed it).

An address refused for good (a 5xx reply to ``RCPT TO``, or no valid mailbox) is
recorded on the user's ``notice_digest`` row (``refused_address``, ``refused_at``,
``refused_error``) in the transaction that frees the lease; later runs skip the user
without sending while ``email_loader`` still gives that address, and count them in
:attr:`DigestReport.refused_before`. A new address is tried at once; ``retry_refused``
(``flask notice digest --retry-refused``) tries the recorded ones again, and a digest
that goes out clears the record. Other failures, 5xx replies to the sender or the
message included (they are about every email, not one address), are retried next run.

The statements live in :mod:`notice.store.digest`; this module runs the steps and
builds the emails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .. import links
from ..columns import utcnow
from ..errors import DeliveryError, SkipDelivery
from ..i18n import for_recipient, ngettext
from ..senders.email import EmailSender, email_actions, refused_address
from ..store import digest as digest_store
from ..types import NoticeType
from .settings import IMMEDIATE

if TYPE_CHECKING:
    from ..state import NoticeState

logger = logging.getLogger("notice")

#: the preference channel whose "off" keeps a type out of the digest, and the channel
#: of the per-notice emails whose pending or sent rows keep a notice out of it
EMAIL = EmailSender.name


@dataclass
class DigestReport:
    """What one digest run did, per user."""

    sent: int = 0
    #: the send failed and may work later (4xx, connection refused or dropped, timeout,
    #: or a 5xx that is not about the address); their notices wait for the next run
    failed: int = 0
    #: the address was refused for good in this run (5xx to RCPT TO, or no valid
    #: mailbox); recorded, so later runs skip it (:attr:`refused_before`)
    refused: int = 0
    #: skipped without sending: the address was refused in an earlier run and the
    #: ``email_loader`` still gives it
    refused_before: int = 0
    #: another run was emailing the user
    busy: int = 0
    #: nothing left to send once the user was claimed
    empty: int = 0
    no_address: int = 0
    #: notices listed in the emails sent
    notices: int = 0
    #: one line per failed user
    errors: list[str] = field(default_factory=list)
    #: one line per address refused in this run
    refusals: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in (
                "sent",
                "failed",
                "refused",
                "refused_before",
                "busy",
                "empty",
                "no_address",
                "notices",
            )
        }


@dataclass(frozen=True)
class DigestItem:
    """One notice as the digest templates see it."""

    id: int
    notice_type: str
    subject: str
    content: str
    link: str | None
    create_at: datetime
    category: str = "info"
    #: the notice's GET actions as links (``label``, absolute ``url``)
    actions: list[dict[str, str]] = field(default_factory=list)


def email_sender(state: NoticeState) -> EmailSender:
    """The app's "email" sender, or one built from the same ``NOTICE_MAIL_*`` config
    (the digest works without per-notice emails)."""
    sender = state.senders_by_name.get(EmailSender.name)
    if isinstance(sender, EmailSender):
        return sender
    sender = EmailSender()
    sender.init_app(state.app)
    return sender


def run_digest(
    state: NoticeState,
    frequency: str = "daily",
    *,
    now: datetime | None = None,
    sender: EmailSender | None = None,
    users: Sequence[Any] | None = None,
    on_user: Callable[[Any], None] | None = None,
    retry_refused: bool = False,
) -> DigestReport:
    """Email every user whose digest ``frequency`` matches; needs an app context.

    :param now: the time the run counts as (notice expiry, ``emailed_at``).
    :param sender: the email sender to use (default: :func:`email_sender`).
    :param users: the users to consider (default: :func:`candidates`).
    :param on_user: called with each user id once it is done (progress).
    :param retry_refused: also try addresses refused in earlier runs (the operator
        fixed them); a digest that goes out clears the refusal.
    """
    now = now or utcnow()
    sender = sender or email_sender(state)
    report = DigestReport()
    if users is None:
        users = candidates(state, frequency, now)
    sender.open()  # one SMTP connection for the whole run
    try:
        for user_id in users:
            _digest_one(
                state,
                sender,
                user_id,
                now,
                report,
                retry_refused=retry_refused,
                frequency=frequency,
            )
            if on_user is not None:
                on_user(user_id)
    finally:
        sender.close()
    return report


def _tables(state: NoticeState) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    """``notice``, ``notice_delivery``, ``notice_digest`` and ``notice_preference``."""
    prefs = state.preference_models
    return (
        state.models.Notice.__table__,
        state.models.Delivery.__table__,
        prefs.DigestSetting.__table__,
        prefs.Preference.__table__,
    )


def candidates(state: NoticeState, frequency: str, now: datetime) -> list[Any]:
    """Users on ``frequency`` (chosen, or by ``NOTICE_DIGEST_DEFAULT``) with at least
    one unread notice not emailed yet, nor being emailed on its own."""
    notice, delivery, digest, preference = _tables(state)
    settings = state.preference_settings
    return digest_store.candidates(
        state.engine,
        notice,
        delivery,
        digest,
        frequency,
        default=state.app.config["NOTICE_DIGEST_DEFAULT"],
        now=now,
        channel=EMAIL,
        preference=preference,
        mode_types=[str(t) for t in NoticeType.known() if settings.default_mode(t) == frequency],
    )


def claim(state: NoticeState, user_id: Any) -> str | None:
    """Take the user's digest lease; the token, or None when another run holds it.

    Leases run on the real clock, not the run's ``now``: a long run must not hand out
    leases that are already expired.
    """
    _, _, digest, _ = _tables(state)
    return digest_store.claim(state.engine, digest, user_id, lease=state.lease, now=utcnow())


def release(
    state: NoticeState,
    user_id: Any,
    token: str,
    now: datetime,
    *,
    emailed: Sequence[int] = (),
    refused_address: str | None = None,
    refused_error: str | None = None,
) -> None:
    """Free the lease; with ``emailed``, mark those notices emailed in the same
    transaction (also when the lease was lost: the email did go out) and clear the
    user's refused address; with ``refused_address``, record it (and
    ``refused_error``) so later runs skip it."""
    notice, _, digest, _ = _tables(state)
    digest_store.release(
        state.engine,
        notice,
        digest,
        user_id,
        token,
        now=now,
        emailed=emailed,
        refused_address=refused_address,
        refused_error=refused_error,
    )


def refused_before(state: NoticeState, user_id: Any) -> str | None:
    """The address recorded as refused for good for ``user_id``, if any."""
    _, _, digest, _ = _tables(state)
    return digest_store.refusal(state.engine, digest, user_id)


def pending_items(
    state: NoticeState, user_id: Any, now: datetime, frequency: str | None = None
) -> list[DigestItem]:
    """The user's notices for the digest: unread, not emailed, unexpired, of a type the
    user gets by email, without an email of their own that is pending or sent (see
    :func:`notice.store.digest.pending`); oldest first, at most ``NOTICE_DIGEST_LIMIT``.

    With ``frequency`` (the run's), only the types whose email mode is that frequency,
    and the "immediate" ones when it is the user's digest frequency (the notices their
    own email left out): a weekly type waits for the weekly run."""
    notice, delivery, digest, pref = _tables(state)
    settings = state.preference_settings
    with state.engine.connect() as conn:
        stored = digest_store.channel_modes(conn, pref, user_id, EMAIL)
        own = None
        if frequency is not None:
            own = digest_store.frequency_of(conn, digest, user_id) or settings.digest_default
        off = []
        for t in NoticeType.known():
            mode = settings.mode_of(t, stored.get(t))
            if frequency is None:
                listed = mode != "off"
            else:
                listed = mode == frequency or (mode == IMMEDIATE and own == frequency)
            if not listed:
                off.append(str(t))
        rows = digest_store.pending_notices(
            conn,
            notice,
            delivery,
            user_id,
            now=now,
            limit=state.app.config["NOTICE_DIGEST_LIMIT"],
            channel=EMAIL,
            exclude_types=off,
        )
    return [
        DigestItem(
            id=r.id,
            notice_type=r.notice_type,
            subject=r.subject,
            content=r.content,
            link=links.absolute_link(state.app, r.url),
            create_at=r.create_at,
            category=r.category,
            actions=email_actions(state.app, r.actions or []),
        )
        for r in rows
    ]


def build_digest(
    state: NoticeState, sender: EmailSender, user_id: Any, to: str, items: list[DigestItem]
) -> Any:
    """The digest email for ``items`` (templates ``notice/email/digest.txt|.html``), in
    the user's locale (:func:`notice.i18n.for_recipient`)."""
    with for_recipient(state.locale_loader, user_id):
        return _build_digest(state, sender, user_id, to, items)


def _build_digest(
    state: NoticeState, sender: EmailSender, user_id: Any, to: str, items: list[DigestItem]
) -> Any:
    app = state.app
    count = len(items)
    subject = ngettext(
        "You have %(num)d unread notification", "You have %(num)d unread notifications", count
    )
    unsubscribe = links.unsubscribe_url(app, user_id, None, links.DIGEST)
    context = {
        "subject": subject,
        "notices": items,
        "unsubscribe_url": unsubscribe,
        "preferences_url": links.inbox_url(app, "/preferences"),
        "inbox_url": links.inbox_url(app, "/"),
    }
    msg = sender.new_message(to, subject, unsubscribe)
    msg.set_content(sender.render(["notice/email/digest.txt"], context))
    msg.add_alternative(sender.render(["notice/email/digest.html"], context), subtype="html")
    return msg


def _digest_one(
    state: NoticeState,
    sender: EmailSender,
    user_id: Any,
    now: datetime,
    report: DigestReport,
    *,
    retry_refused: bool = False,
    frequency: str | None = None,
) -> None:
    token = claim(state, user_id)
    if token is None:
        report.busy += 1
        return
    sent: list[int] = []
    refused: str | None = None
    reason: str | None = None
    try:
        items = pending_items(state, user_id, now, frequency)
        if not items:
            report.empty += 1
            return
        # a refusal is final for that address: asking again every run failed every
        # run, and cron alarmed for good over one dead mailbox
        before = None if retry_refused else refused_before(state, user_id)
        try:
            to = sender.address_for(user_id)
            if before is not None and to == before:
                report.refused_before += 1
                return
            sender.send_message(build_digest(state, sender, user_id, to, items), to)
        except SkipDelivery:
            report.no_address += 1
            return
        except Exception as exc:  # noqa: BLE001 - one user's failure must not stop the run
            address = refused_address(exc)
            if address is not None and address == before:
                report.refused_before += 1  # still no valid mailbox: nothing was sent
            elif address is not None:
                refused, reason = address, _describe(exc)
                report.refused += 1
                report.refusals.append(f"user {user_id}: {reason}")
                logger.warning(
                    "digest for user %s: address refused for good, skipped until it changes: %s",
                    user_id,
                    exc,
                )
            else:
                report.failed += 1
                report.errors.append(f"user {user_id}: {_describe(exc)}")
                if isinstance(exc, DeliveryError):
                    logger.warning("digest for user %s failed: %s", user_id, exc)
                else:
                    logger.exception("digest for user %s failed", user_id)
            return
        sent = [item.id for item in items]
        report.sent += 1
        report.notices += len(sent)
    finally:
        release(
            state, user_id, token, now, emailed=sent, refused_address=refused, refused_error=reason
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
