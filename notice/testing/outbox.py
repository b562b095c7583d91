"""What the test kit records, and the assertions over it.

A :class:`NoticeOutbox` holds one :class:`CapturedNotice` per delivery a capturing
sender took (see :func:`notice.testing.capture_notices`); its ``assert_*`` methods say,
when they fail, what was sent instead.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from ..models import NoticeView
from ..types import NoticeType, user_key

#: ``where`` callables filter captures: ``lambda sent: "Ana" in sent.subject``
Where = Callable[["CapturedNotice"], bool]


@dataclass(frozen=True)
class RenderedEmail:
    """The parts of a captured email a test looks at; ``message`` is the whole
    :class:`~email.message.EmailMessage` the email sender built (headers and all)."""

    to: str
    subject: str
    text: str
    html: str
    message: EmailMessage

    @classmethod
    def of(cls, message: EmailMessage) -> RenderedEmail:
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        return cls(
            to=str(message["To"]),
            subject=str(message["Subject"]),
            text=text.get_content() if isinstance(text, EmailMessage) else "",
            html=html.get_content() if isinstance(html, EmailMessage) else "",
            message=message,
        )


@dataclass(frozen=True)
class CapturedNotice:
    """One delivery a capturing sender took instead of sending it.

    ``payload`` is what the real sender would have transmitted, rendered by its own
    code (:meth:`notice.Sender.preview`): an :class:`~email.message.EmailMessage` for
    ``email``, the JSON dict for ``webpush`` and ``webhook``, None for senders that
    send the notice as it is (``memory``, ``log``).
    """

    notice: NoticeView
    channel: str
    #: the delivery's target (a push subscription id, a webhook URL), "" for none
    target: str
    payload: Any

    @property
    def user_id(self) -> Any:
        return self.notice.user_id

    @property
    def notice_type(self) -> str:
        return str(self.notice.notice_type)

    @property
    def subject(self) -> str:
        return self.notice.subject

    @property
    def email(self) -> RenderedEmail:
        """The rendered email (to, subject, text, html); TypeError for other channels."""
        if not isinstance(self.payload, EmailMessage):
            raise TypeError(f"this capture was sent on {self.channel!r}, not by email")
        return RenderedEmail.of(self.payload)

    def describe(self) -> str:
        """One line for failure messages: channel, user, type, subject (no content)."""
        target = self.target
        if "://" in target:
            # webhook URLs often carry a secret in their path or query: the host only
            target = urlsplit(target).hostname or "(url)"
        where = f" -> {target}" if target else ""
        return (
            f"{self.channel}{where} to user {self.user_id}: "
            f"[{self.notice_type}] {self.subject!r} (notice {self.notice.id})"
        )


class NoticeOutbox:
    """The captures of one :func:`~notice.testing.capture_notices` block, oldest first.

    Reading it (iterating, ``len``, :meth:`sent`, the assertions) first waits for
    deliveries the app's background dispatcher still runs (see :meth:`wait`).

    :param user_id: converts a ``to=`` argument (a user object or id) to a user id.
    :param settle: waits for deliveries in flight; None while nothing runs in the
        background.
    """

    def __init__(
        self,
        *,
        user_id: Callable[[Any], Any],
        settle: Callable[[float | None], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._captured: list[CapturedNotice] = []
        self._user_id = user_id
        self._settle = settle

    # --- recording (the capturing senders) -------------------------------------------

    def record(self, captured: CapturedNotice) -> None:
        with self._lock:
            self._captured.append(captured)

    def stop_waiting(self) -> None:
        """Nothing runs in the background any more (the capture block ended)."""
        self._settle = None

    # --- reading ---------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> None:
        """Wait until every delivery written while capturing has an outcome.

        A no-op with the ``sync`` dispatcher (it sends before ``notice_event`` or the
        commit returns) and with ``none`` (call ``notices.sweep()`` to send).

        :raise AssertionError: deliveries are still waiting after ``timeout`` seconds
            (default: the one given to ``capture_notices``).
        """
        if self._settle is not None:
            self._settle(timeout)

    def _snapshot(self) -> list[CapturedNotice]:
        self.wait()
        with self._lock:
            return list(self._captured)

    def __iter__(self) -> Iterator[CapturedNotice]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        return len(self._snapshot())

    def __getitem__(self, index: int) -> CapturedNotice:
        return self._snapshot()[index]

    def clear(self) -> None:
        """Forget what was captured so far (after waiting for what is in flight)."""
        self.wait()
        with self._lock:
            self._captured.clear()

    def sent(
        self,
        to: Any = None,
        type: NoticeType | str | None = None,
        channel: str | None = None,
        where: Where | None = None,
    ) -> list[CapturedNotice]:
        """The captures matching every criterion given, oldest first.

        :param to: a user id, or a user object (its ``get_id()`` or ``id``).
        :param type: a :class:`~notice.NoticeType` or its stored value.
        :param channel: a sender name (``"email"``, ``"webpush"``, ...).
        :param where: a predicate over :class:`CapturedNotice`.
        """
        match = self._matcher(to, type, channel, where)
        return [c for c in self._snapshot() if match(c)]

    # --- assertions ------------------------------------------------------------------

    def assert_sent(
        self,
        to: Any = None,
        type: NoticeType | str | None = None,
        channel: str | None = None,
        count: int | None = None,
        where: Where | None = None,
    ) -> list[CapturedNotice]:
        """Assert a matching notice was sent (exactly ``count`` of them, if given);
        return the matches."""
        matches = self.sent(to, type, channel, where)
        if count is None and not matches:
            self._fail("expected a notice", to, type, channel, where, len(matches))
        if count is not None and len(matches) != count:
            self._fail(f"expected {_notices(count)}", to, type, channel, where, len(matches))
        return matches

    def assert_not_sent(
        self,
        to: Any = None,
        type: NoticeType | str | None = None,
        channel: str | None = None,
        where: Where | None = None,
    ) -> None:
        """Assert no matching notice was sent."""
        self.assert_count(0, to, type, channel, where)

    def assert_count(
        self,
        n: int,
        to: Any = None,
        type: NoticeType | str | None = None,
        channel: str | None = None,
        where: Where | None = None,
    ) -> None:
        """Assert exactly ``n`` matching notices were sent (all captures without
        criteria)."""
        self.assert_sent(to, type, channel, count=n, where=where)

    def assert_nothing_sent(self) -> None:
        """Assert no notice was sent on any channel."""
        self.assert_count(0)

    # --- helpers ---------------------------------------------------------------------

    def _matcher(
        self, to: Any, type_: NoticeType | str | None, channel: str | None, where: Where | None
    ) -> Where:
        key = None if to is None else user_key(self._user_id(_id_of(to)))
        # NoticeType() refuses an unknown name: a typo fails loudly instead of matching
        # nothing, which would make assert_not_sent pass
        kind = None if type_ is None else str(NoticeType(str(type_)))

        def match(c: CapturedNotice) -> bool:
            return (
                (key is None or user_key(c.user_id) == key)
                and (kind is None or c.notice_type == kind)
                and (channel is None or c.channel == channel)
                and (where is None or bool(where(c)))
            )

        return match

    def _fail(
        self,
        expected: str,
        to: Any,
        type_: Any,
        channel: str | None,
        where: Where | None,
        found: int,
    ) -> None:
        wanted = []
        if to is not None:
            wanted.append(f"to user {_id_of(to)!r}")
        if type_ is not None:
            wanted.append(f"of type {str(type_)!r}")
        if channel is not None:
            wanted.append(f"on channel {channel!r}")
        if where is not None:
            wanted.append(f"matching {getattr(where, '__name__', repr(where))}")
        with self._lock:
            captured = list(self._captured)
        listing = "\n".join(f"  - {c.describe()}" for c in captured) or "  (nothing)"
        raise AssertionError(
            f"{' '.join([expected, *wanted])}; found {found}. "
            f"Sent while capturing ({len(captured)}):\n{listing}"
        )


def _id_of(user: Any) -> Any:
    """A user id from an id or a user object (flask-login's ``get_id()``, or ``id``)."""
    if user is None or isinstance(user, (str, int, uuid.UUID)):
        return user
    get_id = getattr(user, "get_id", None)
    if callable(get_id):
        return get_id()
    if hasattr(user, "id"):
        return user.id
    raise TypeError(f"to={user!r}: pass a user id or an object with get_id() or .id")


def _notices(n: int) -> str:
    return "1 notice" if n == 1 else f"{n} notices"
