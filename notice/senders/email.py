"""The "email" sender: one message per notice over SMTP (:mod:`smtplib`).

Why smtplib and not Flask-Mail: one fewer dependency, and we need what Flask-Mail hides:
the per-recipient refusals of ``RCPT TO`` (a refused address is final for that delivery
only) and one connection held open across a batch (:meth:`EmailSender.open` /
:meth:`EmailSender.close`), re-opened once if the server dropped it.

Errors map onto :mod:`notice.errors`: a 4xx reply, a dropped connection or a timeout is
a :class:`~notice.errors.TransientError` (retried), a 5xx reply a
:class:`~notice.errors.PermanentError`; a user without an address is skipped, and so
is a notice already emailed (``emailed_at``: a digest listed it). A refused SMTP login
is transient too (the operator fixes the password, the retries go through).
Credentials never appear in messages or logs.

Messages are rendered from ``notice/email/<type>.txt`` and ``.html`` (falling back to
``default.txt`` / ``default.html``): put templates of those names in the app's
``templates`` folder to override them. They render in the recipient's locale
(:mod:`notice.i18n`), so an app's own templates can use its ``_()`` too.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import jinja2
from flask import Flask

from .. import links
from ..columns import utcnow
from ..errors import ConfigurationError, PermanentError, SkipDelivery, TransientError
from ..i18n import for_recipient
from ..models import notice_dict
from ..references import ROLES
from ..state import NoticeState, state_of
from ..store import email as email_store
from .base import Sender


@dataclass(frozen=True)
class MailConfig:
    """The ``NOTICE_MAIL_*`` keys, read once."""

    host: str
    port: int
    use_tls: bool
    use_ssl: bool
    username: str | None
    password: str | None = None
    sender: str = ""
    timeout: float = 10.0

    @classmethod
    def from_app(cls, app: Flask) -> MailConfig:
        cfg = app.config
        sender = cfg["NOTICE_MAIL_SENDER"]
        if not sender or "@" not in parseaddr(str(sender))[1]:
            raise ConfigurationError(
                "the email sender needs NOTICE_MAIL_SENDER, the From address, "
                f"e.g. 'Example <noreply@example.com>'; got {sender!r}"
            )
        if cfg["NOTICE_MAIL_PASSWORD"] and not cfg["NOTICE_MAIL_USERNAME"]:
            raise ConfigurationError("NOTICE_MAIL_PASSWORD is set without NOTICE_MAIL_USERNAME")
        return cls(
            host=str(cfg["NOTICE_MAIL_HOST"]),
            port=int(cfg["NOTICE_MAIL_PORT"]),
            use_tls=bool(cfg["NOTICE_MAIL_USE_TLS"]),
            use_ssl=bool(cfg["NOTICE_MAIL_USE_SSL"]),
            username=cfg["NOTICE_MAIL_USERNAME"],
            password=cfg["NOTICE_MAIL_PASSWORD"],
            sender=str(sender),
            timeout=float(cfg["NOTICE_MAIL_TIMEOUT"]),
        )

    def __repr__(self) -> str:  # never show the password
        return f"<MailConfig {self.host}:{self.port} user={self.username!r}>"


def _by_code(code: int, text: str) -> TransientError | PermanentError:
    return TransientError(text) if 400 <= code < 500 else PermanentError(text)


#: the attribute a PermanentError about one address carries (:func:`refused_address`)
_REFUSED = "notice_refused_address"


def _refused(text: str, address: str) -> PermanentError:
    """A PermanentError about ``address`` alone: a 5xx reply to ``RCPT TO``, or an
    address that is no mailbox. Other 5xx replies (to ``MAIL FROM``, to the message)
    are about every email and stay unmarked.

    A mark, not a subclass: :mod:`notice.errors` draws the public tree, and the error
    keeps its name in ``last_error`` and the digest's report.
    """
    error = PermanentError(text)
    vars(error)[_REFUSED] = address
    return error


def refused_address(exc: BaseException) -> str | None:
    """The address ``exc`` says is refused for good (as ``email_loader`` gave it), or
    None when ``exc`` is not about one address: the digest records such refusals so
    later runs skip that address instead of failing on it again."""
    address = vars(exc).get(_REFUSED) if isinstance(exc, PermanentError) else None
    return address if isinstance(address, str) else None


def _reply_text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(text.split())[:300]


class _Batch(threading.local):
    """Per-thread batch state: the thread dispatcher runs batches in parallel."""

    active = False
    smtp: smtplib.SMTP | None = None
    #: a connect failure in this batch; later sends fail fast instead of waiting again
    failed: TransientError | None = None
    #: notices emailed in this batch, marked ``emailed_at`` on close
    sent: list[int]
    #: the batch's notices as dicts with their references named (:meth:`prepare`)
    named: dict[int, dict[str, Any]]


class EmailSender(Sender):
    """Email each notice to the address ``@notices.email_loader`` gives for its user."""

    name = "email"

    def __init__(self) -> None:
        # weak: the app owns its state, which owns this sender; a strong reference
        # back would keep a dropped app alive
        self._app: weakref.ref[Flask] | None = None
        self.config: MailConfig | None = None
        self._batch = _Batch()
        self._env: jinja2.Environment | None = None

    def init_app(self, app: Flask) -> None:
        self._app = weakref.ref(app)
        self.config = MailConfig.from_app(app)
        links.check_base_url(app)

    # --- the sender interface --------------------------------------------------------

    def open(self) -> None:
        self._batch.active = True
        self._batch.failed = None
        self._batch.sent = []
        self._batch.named = {}

    def prepare(self, items: Sequence[tuple[Any, str]]) -> None:
        """Name the references of the batch's notices at once: one resolver call per
        reference type for the batch, not per email."""
        if self._state().reference_resolver is None:
            return
        notices = {notice.id: notice for notice, _ in items}
        dicts = [notice_dict(n) for n in notices.values()]
        self._state().name_references(dicts)
        self._batch.named = {d["id"]: d for d in dicts}

    def close(self) -> None:
        batch = self._batch
        batch.active = False
        batch.failed = None
        self._disconnect()
        batch.named = {}
        sent, batch.sent = getattr(batch, "sent", []), []
        if sent:
            self._mark_emailed(sent)

    def send(self, notice: Any) -> None:
        address, message = self._render(notice)
        self.send_message(message, address)
        if self._batch.active:
            self._batch.sent.append(notice.id)
        else:
            self._mark_emailed([notice.id])

    def preview(self, notice: Any, target: str) -> EmailMessage:
        """The message :meth:`send` would mail for ``notice``, to its user's address.

        :raise SkipDelivery: already emailed, or the user has no address.
        """
        return self._render(notice)[1]

    def _render(self, notice: Any) -> tuple[str, EmailMessage]:
        """The user's address (as ``email_loader`` gave it) and the message for it."""
        if notice.emailed_at is not None:
            # a digest listed it after its email ended Dead and an operator re-queued
            # that email, or an attempt mailed it but lost its result: mailing it again
            # would put it in the inbox twice
            raise SkipDelivery("already emailed (sent in the digest or an earlier attempt)")
        address = self.address_for(notice.user_id)
        return address, self.build_message(notice, address)

    # --- building blocks the digest shares -------------------------------------------

    @property
    def app(self) -> Flask:
        app = None if self._app is None else self._app()
        if app is None:
            raise RuntimeError("EmailSender.init_app(app) was not called, or its app is gone")
        return app

    def _state(self) -> NoticeState:
        return state_of(self.app)

    def address_for(self, user_id: Any) -> str:
        """The user's address from the app's ``email_loader``.

        :raise SkipDelivery: no loader, or it has no address for the user.
        :raise PermanentError: the address is not a single valid mailbox
            (:func:`refused_address` gives it).
        """
        loader = self._state().email_loader
        if loader is None:
            raise SkipDelivery("no @notices.email_loader is registered")
        address = loader(user_id)
        if not address:
            raise SkipDelivery(f"user {user_id} has no email address")
        address = str(address)
        name, addr = parseaddr(address)
        if "@" not in addr or any(ch in address for ch in "\r\n,"):
            raise _refused(f"user {user_id} has an invalid email address", address)
        return address

    def render(self, names: list[str], context: Mapping[str, Any]) -> str:
        """Render the first template of ``names`` that exists (app's, then ours)."""
        return self._jinja().select_template(names).render(**context)

    def new_message(self, to: str, subject: str, unsubscribe: str) -> EmailMessage:
        """A message with our standard headers, ready for :meth:`EmailMessage.set_content`."""
        config = self._config()
        msg = EmailMessage()
        # a header may not span lines; a subject with newlines would be refused
        msg["Subject"] = " ".join(subject.split())
        msg["From"] = config.sender
        msg["To"] = to
        msg["Date"] = format_datetime(utcnow())
        domain = parseaddr(config.sender)[1].rpartition("@")[2] or "localhost"
        # an explicit domain: make_msgid() would otherwise look up this host's FQDN
        msg["Message-ID"] = make_msgid(domain=domain)
        msg["Auto-Submitted"] = "auto-generated"
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return msg

    def build_message(self, notice: Any, to: str) -> EmailMessage:
        """Render ``notice`` into a text + HTML message for ``to``, in the user's locale
        (``@notices.locale_loader``, :func:`notice.i18n.for_recipient`)."""
        with for_recipient(self._state().locale_loader, notice.user_id):
            return self._build_message(notice, to)

    def _build_message(self, notice: Any, to: str) -> EmailMessage:
        app = self.app
        notice_type = str(notice.notice_type)
        unsubscribe = links.unsubscribe_url(app, notice.user_id, notice_type, self.name)
        named: dict[int, dict[str, Any]] = getattr(self._batch, "named", {})
        about = named.get(notice.id)
        if about is None:
            about = notice_dict(notice)
            self._state().name_references([about])
        context = {
            "category": about["category"],
            # the references, named by the app's resolver
            **{role: email_reference(app, about[role]) for role in ROLES},
            "actions": email_actions(app, about["actions"]),
            "notice": notice,
            "subject": notice.subject,
            "content": notice.content,
            "url": links.absolute_link(app, notice.url),
            "unsubscribe_url": unsubscribe,
            "preferences_url": links.inbox_url(app, "/preferences"),
            "inbox_url": links.inbox_url(app, "/"),
        }
        msg = self.new_message(to, notice.subject, unsubscribe)
        msg.set_content(
            self.render([f"notice/email/{notice_type}.txt", "notice/email/default.txt"], context)
        )
        msg.add_alternative(
            self.render([f"notice/email/{notice_type}.html", "notice/email/default.html"], context),
            subtype="html",
        )
        return msg

    def send_message(self, message: EmailMessage, to: str) -> None:
        """Send over this thread's batch connection (or a connection of its own outside a
        batch); map SMTP failures onto TransientError / PermanentError (a 5xx to
        ``RCPT TO``: :func:`refused_address` gives ``to``)."""
        config = self._config()
        envelope_from = parseaddr(config.sender)[1]
        envelope_to = parseaddr(to)[1]
        for attempt in (1, 2):
            reused = self._batch.smtp is not None
            smtp = self._connect()
            try:
                smtp.send_message(message, from_addr=envelope_from, to_addrs=[envelope_to])
                return
            except smtplib.SMTPRecipientsRefused as exc:
                code, resp = next(iter(exc.recipients.values()), (550, b"refused"))
                text = f"recipient refused: {code} {_reply_text(resp)}"
                if 400 <= code < 500:
                    raise TransientError(text) from None
                raise _refused(text, to) from None
            except smtplib.SMTPServerDisconnected as exc:
                self._disconnect()
                if attempt == 1 and reused:
                    continue  # the server closed our idle batch connection: reopen once
                raise TransientError(f"SMTP server disconnected: {exc}") from None
            except smtplib.SMTPResponseException as exc:
                if exc.smtp_code == 421:  # the server closed the connection (idle timeout?)
                    self._disconnect()
                    if attempt == 1 and reused:
                        continue
                raise _by_code(
                    exc.smtp_code, f"SMTP {exc.smtp_code} {_reply_text(exc.smtp_error)}"
                ) from None
            except (OSError, smtplib.SMTPException) as exc:
                self._disconnect()
                raise TransientError(f"SMTP error: {type(exc).__name__}: {exc}") from None
            finally:
                if not self._batch.active:
                    self._disconnect()

    # --- connection ------------------------------------------------------------------

    def _config(self) -> MailConfig:
        if self.config is None:
            raise RuntimeError("EmailSender.init_app(app) was not called")
        return self.config

    def _connect(self) -> smtplib.SMTP:
        batch = self._batch
        if batch.smtp is not None:
            return batch.smtp
        if batch.active and batch.failed is not None:
            raise TransientError(str(batch.failed))
        config = self._config()
        smtp: smtplib.SMTP | None = None
        try:
            context = ssl.create_default_context() if config.use_ssl or config.use_tls else None
            if config.use_ssl:
                smtp = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            if config.use_tls:
                smtp.starttls(context=context)
            if config.username:
                smtp.login(config.username, config.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            error = TransientError(f"SMTP login as {config.username!r} refused ({exc.smtp_code})")
            self._quit(smtp)
            raise self._remember(error) from None
        except (OSError, smtplib.SMTPException) as exc:
            error = TransientError(
                f"cannot connect to SMTP server {config.host}:{config.port}: "
                f"{type(exc).__name__}: {exc}"
            )
            self._quit(smtp)
            raise self._remember(error) from None
        batch.smtp = smtp
        return smtp

    def _remember(self, error: TransientError) -> TransientError:
        if self._batch.active:
            self._batch.failed = error
        return error

    def _disconnect(self) -> None:
        smtp, self._batch.smtp = self._batch.smtp, None
        self._quit(smtp)

    @staticmethod
    def _quit(smtp: smtplib.SMTP | None) -> None:
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    # --- helpers ---------------------------------------------------------------------

    def _jinja(self) -> jinja2.Environment:
        # the app's loader first (its overrides), then the templates shipped here;
        # works without the web blueprint, whose loader would otherwise be needed
        if self._env is None:
            env = self.app.jinja_env
            self._env = env.overlay(
                loader=jinja2.ChoiceLoader(
                    [env.loader, jinja2.PackageLoader("notice", "templates")]  # type: ignore[list-item]
                )
            )
        return self._env

    def _mark_emailed(self, notice_ids: list[int]) -> None:
        """Record that these notices went out by email, so the digest skips them."""
        state = self._state()
        email_store.mark_emailed(
            state.engine, state.models.Notice.__table__, notice_ids, now=utcnow()
        )


def email_reference(app: Flask, ref: dict[str, Any] | None) -> dict[str, Any] | None:
    """A named reference with its link made absolute (a path means nothing in a mail)."""
    if ref is None:
        return None
    return {**ref, "url": links.absolute_link(app, ref["url"])}


def email_actions(app: Flask, actions: list[dict[str, str]]) -> list[dict[str, str]]:
    """The notice's GET actions as email links (``label``, absolute ``url``): a mail
    client can only follow a link, and a POST needs the app's form and CSRF token."""
    found = []
    for action in actions:
        url = links.absolute_link(app, action["url"]) if action["method"] == "GET" else None
        if url is not None:
            found.append({"label": action["label"], "url": url})
    return found
