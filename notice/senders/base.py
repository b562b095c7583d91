"""The sender interface and the lookup of senders by name or dotted path.

A sender is a plain class: ``name`` identifies its channel (stored on each delivery
row), :meth:`Sender.send` does the work, every other hook is optional. To steer a
failed send, raise :class:`~notice.errors.TransientError` (retry later, optionally
with ``retry_after``), :class:`~notice.errors.PermanentError` (give up) or
:class:`~notice.errors.SkipDelivery` (nothing to send). Any other exception is
treated as transient. The library calls senders outside any database transaction.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigurationError
from ..types import UserId

if TYPE_CHECKING:
    from flask import Flask

    from ..models import NoticeView

#: short names accepted in ``NOTICE_SENDERS``
BUILTIN_SENDERS: dict[str, str] = {
    "log": "notice.senders.log:LogSender",
    "memory": "notice.senders.memory:MemorySender",
    "webpush": "notice.senders.webpush:WebPushSender",
    "email": "notice.senders.email:EmailSender",
    "webhook": "notice.senders.webhook:WebhookSender",
    "slack": "notice.senders.slack:SlackSender",
    "discord": "notice.senders.discord:DiscordSender",
    "teams": "notice.senders.teams:TeamsSender",
    "sms": "notice.senders.sms:SmsSender",
    "fcm": "notice.senders.fcm:FCMSender",
    "apns": "notice.senders.apns:APNsSender",
}


class Sender:
    """Base class of every sender. Subclasses set ``name`` and implement :meth:`send`."""

    #: the channel name stored on delivery rows; unique among an app's senders
    name: ClassVar[str] = ""

    #: False for a sender whose calls cannot wait on anything outside the process (an
    #: in-memory outbox): it is called on the sending thread itself, with no send thread
    #: to hand the batch to and watch, and ``NOTICE_SEND_TIMEOUT`` does not apply to it
    blocking: ClassVar[bool] = True

    def init_app(self, app: Flask) -> None:
        """Read and validate this sender's config; raise ConfigurationError if wrong."""

    def targets(self, user_ids: Sequence[UserId]) -> Mapping[UserId, Sequence[str]] | None:
        """Where each user receives this channel, for senders with several per user.

        Return None (the default) for one delivery per notice; or a mapping of user id
        to target strings (e.g. push subscription ids): one delivery each, and a user
        missing from the mapping gets none. Called inside the publishing transaction.
        """
        return None

    def validate_data(self, data: object) -> None:
        """Check, at publish time, the options this sender reads from a notice's
        ``data`` (e.g. ``data["webpush"]``); raise ValueError naming the wrong field.
        A mistake is then the publisher's error and nothing is written, instead of a
        delivery failing (or being retried) later. Called by ``notice_event`` for every
        sender the event may use; the default accepts anything."""

    def open(self) -> None:
        """Called before a batch of sends (e.g. open one SMTP connection)."""

    def close(self) -> None:
        """Called after a batch of sends, also when one failed."""

    def prepare(self, items: Sequence[tuple[NoticeView, str]]) -> None:
        """Called after :meth:`open`, on the same thread, with the ``(notice, target)``
        of every send of the batch this sender is about to make, in order: load what
        the sends need in one query (a web push sender loads every subscription of the
        batch at once) instead of one per send. Sends that follow must still check
        what they use (see :meth:`send_to`) and load it themselves when it is
        missing; a failure here fails the batch's sends as a failing :meth:`open`
        does. The default does nothing."""

    def send(self, notice: NoticeView) -> None:
        """Deliver ``notice`` (read-only: every Notice column as an attribute plus
        ``to_dict()``, ``is_expired()`` and ``is_read``). Raise to report failure."""
        raise NotImplementedError(f"{type(self).__name__} must implement send(notice)")

    def send_to(self, notice: NoticeView, target: str) -> None:
        """Deliver ``notice`` to one target; the default ignores ``target``.

        Rule for senders with targets: check ``target`` here, at send time, not only in
        :meth:`targets`. A delivery may be sent long after it was written (retries,
        the sweeper), and by then its target may be gone or may belong to someone
        else (a device row deleted and its id reused, a browser now logged in as
        another user, a URL removed from the config). Load the target in the same
        query that reads what you send with, and when it no longer exists or no longer
        belongs to ``notice.user_id`` (compare with :func:`notice.types.user_key`),
        raise :class:`~notice.errors.SkipDelivery` with the reason: the delivery ends
        ``Skipped`` and the reason is kept in its ``last_error``.
        """
        self.send(notice)

    def preview(self, notice: NoticeView, target: str) -> object:
        """What :meth:`send_to` would transmit for ``notice`` to ``target``, built by the
        same code but not transmitted: the test kit (:mod:`notice.testing`) records it.

        Run the checks :meth:`send_to` runs and raise as it would
        (:class:`~notice.errors.SkipDelivery` for a user without an address, say), so a
        captured send ends as a real one would. The default returns None: the notice
        itself is all this sender sends.
        """
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def load_sender(spec: str) -> Sender:
    """Build a sender from a built-in name or ``"package.module:Class"`` path."""
    path = BUILTIN_SENDERS.get(spec, spec)
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"unknown sender {spec!r} in NOTICE_SENDERS: use one of "
            f"{', '.join(sorted(BUILTIN_SENDERS))} or a dotted path 'package.module:Class'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot load sender {spec!r} from NOTICE_SENDERS ({exc}); built-in names are "
            f"{', '.join(sorted(BUILTIN_SENDERS))}; an extra may be missing, "
            "e.g. pip install 'notice[webpush]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Sender)):
        raise ConfigurationError(f"{path} is not a notice.Sender subclass")
    if not cls.name:
        raise ConfigurationError(f"{path} must set the class attribute 'name'")
    return cls()
