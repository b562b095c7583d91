"""Exceptions raised by ``notice``.

The tree::

    NoticeError
    ├── ConfigurationError      bad NOTICE_* config or wiring, raised at startup (RuntimeError)
    ├── NoticeConfigWarning     an unknown NOTICE_* key, warned at startup (UserWarning)
    ├── TablesMissing           a library table does not exist: run the migrations (RuntimeError)
    ├── InvalidUserId           a user id that is not one: bool, float, bytes... (ValueError)
    ├── NoRecipientError        notice_event() without user_id and nobody logged in (ValueError)
    ├── InvalidNotice           notice_event(): a bad reference, category or action (ValueError)
    ├── UnknownTopic            no topic has this name (LookupError)
    ├── SubscriptionError       a push subscription that cannot be stored (ValueError)
    ├── EndpointRefused         a push endpoint outside NOTICE_PUSH_ALLOWED_HOSTS (ValueError)
    ├── BadToken                a tampered, malformed or expired unsubscribe token (ValueError)
    ├── InvalidQuietHours       quiet hours with an unknown time zone or a bad HH:MM (ValueError)
    ├── CSRFError               notice.web.auth: missing or wrong CSRF token (werkzeug BadRequest)
    ├── BadParameter            notice.web: a malformed parameter or body field (BadRequest)
    ├── TooManyStreams          notice.brokers: this process holds NOTICE_STREAM_MAX streams
    ├── BadMessage              notice.brokers: a broker message we did not write (ValueError)
    ├── InvalidPhoneNumber      notice.senders.sms: a number not in E.164 form (ValueError)
    ├── DeviceError             notice.mobile: a malformed or foreign device token (ValueError)
    └── DeliveryError           raised by a sender's ``send()`` to steer the delivery
        ├── TransientError      try again later (honours ``retry_after`` seconds)
        │   ├── BrokerError     notice.brokers: the live-stream broker is unreachable
        │   ├── TimedOut        notice.senders.http: no answer within the request's deadline
        │   └── Unreachable     notice.senders.http: no connection, or it broke
        ├── PermanentError      never try again; the delivery is final (Dead)
        └── SkipDelivery        nothing to send (no address, expired); final (Skipped)

Each keeps its builtin base, so ``except ValueError`` written before still catches it.

Any other exception a sender raises counts as a :class:`TransientError`.
Senders map third-party errors onto this tree with ``raise ... from exc``.
"""

from __future__ import annotations


class NoticeError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigurationError(NoticeError, RuntimeError):
    """The app's ``NOTICE_*`` configuration or the extension's wiring is wrong."""


class NoticeConfigWarning(NoticeError, UserWarning):
    """A ``NOTICE_*`` key the library does not know (a typo such as ``NOTICE_DISPATH``);
    warned by ``init_app``, naming the closest known key."""


class TablesMissing(NoticeError, RuntimeError):
    """A table of the library does not exist in the app's database: its migrations
    were not run (``flask notice db upgrade``), or ``db.create_all()`` was not called.

    :param table: the missing table's name.
    """

    def __init__(self, table: str) -> None:
        super().__init__(
            f"the table {table!r} of notice does not exist in this database: run "
            f'"flask notice db upgrade" (or db.create_all() in tests and scripts)'
        )
        self.table = table


class InvalidUserId(NoticeError, ValueError):
    """A value that is not a user id of this app (``True``, ``2.5``, ``b"7"``, ``"x"``
    for integer ids)."""


class NoRecipientError(NoticeError, ValueError):
    """No ``user_id`` was given and no user is logged in."""


class InvalidNotice(NoticeError, ValueError):
    """A ``notice_event()`` argument of the inbox model that is wrong: an ``actor``,
    ``target`` or ``action_object`` that is no reference, an unknown ``category``, or
    an action with a bad label, method or URL (or too many actions)."""


class UnknownTopic(NoticeError, LookupError):
    """No topic has this name."""


class SubscriptionError(NoticeError, ValueError):
    """A push subscription that cannot be stored (malformed, or its endpoint refused)."""


class EndpointRefused(NoticeError, ValueError):
    """A push endpoint that is not an allowed push service URL."""


class BadToken(NoticeError, ValueError):
    """The unsubscribe token is tampered with, malformed or expired."""


class InvalidQuietHours(NoticeError, ValueError):
    """Quiet hours that cannot be stored: an unknown IANA time zone, or a time of day
    that is not ``HH:MM``."""


class DeliveryError(NoticeError):
    """Raised by a sender to say how its delivery should continue."""


class TransientError(DeliveryError):
    """The send failed but may work later.

    :param retry_after: seconds the remote side asked us to wait (for example from
        an HTTP ``Retry-After`` header); the retry policy honours it.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """The send failed and retrying cannot help; the delivery becomes Dead."""


class SkipDelivery(DeliveryError):
    """There is nothing to send for this delivery; it becomes Skipped with a reason."""
