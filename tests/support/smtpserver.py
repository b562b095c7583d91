"""A real SMTP server on the loopback interface for end-to-end tests.

Wraps aiosmtpd's threaded ``Controller``. Every accepted message is parsed with
``email.policy.default`` and recorded together with its envelope. Failure
scenarios can be scripted: queued replies to DATA, refused recipients and
mandatory AUTH (PLAIN/LOGIN over plain TCP).

Usage::

    with SMTPServer() as server:
        server.script_data(["451 4.3.0 Try again later"])
        ...  # talk to server.host:server.port
        assert wait_for(lambda: len(server.messages) == 1)
"""

from __future__ import annotations

import re
import socket
import threading
from collections import deque
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["ReceivedMail", "SMTPServer"]

_REPLY_RE = re.compile(r"^[2-5]\d\d(?: |$)")


@dataclass
class ReceivedMail:
    """One message accepted by the server (the reply to DATA was 2xx)."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes = b""
    auth_login: str | None = None


def _check_reply(reply: str) -> str:
    if not isinstance(reply, str) or not _REPLY_RE.match(reply) or "\n" in reply:
        raise ValueError(f"not a single-line SMTP reply like '451 4.3.0 Later': {reply!r}")
    return reply


class _Handler:
    """aiosmtpd handler. aiosmtpd treats *every* attribute named ``handle_*`` as a
    command hook, so helper methods here must not use that prefix."""

    def __init__(self, owner: SMTPServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._owner._auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._owner._rcpt_refusal(address)
        if refusal is not None:
            return refusal
        # With a RCPT hook installed, aiosmtpd leaves bookkeeping to us.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._owner._next_data_reply()
        if not reply.startswith("2"):
            return reply
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        # Parse with local (LF) line endings so get_content() does not return
        # '\r\n'; ``raw`` keeps the exact bytes seen on the wire.
        message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        self._owner._record(
            ReceivedMail(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=message,  # type: ignore[arg-type]  # policy.default -> EmailMessage
                raw=bytes(raw),
                auth_login=login,
            )
        )
        return reply


class _Controller(Controller):
    """Controller that serves on a socket we already bound (no port race) and
    counts connections as they are accepted."""

    def __init__(self, owner: SMTPServer, sock: socket.socket, **kwargs: Any) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(_Handler(owner), hostname=host, port=port, **kwargs)
        self._owner = owner
        self._sock = sock

    def _create_server(self):  # type: ignore[override]
        # Documented extension point; must hand asyncio ``_factory_invoker``.
        return self.loop.create_server(self._factory_invoker, sock=self._sock)

    def factory(self) -> SMTP:
        # Called once per accepted TCP connection, on the event-loop thread.
        self._owner._note_connection()
        return SMTP(self.handler, loop=self.loop, **self.SMTP_kwargs)


class SMTPServer:
    """Loopback SMTP server. ``host``/``port`` are valid after :meth:`start`."""

    def __init__(self, host: str = "127.0.0.1", *, session_timeout: float = 30.0) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("SMTPServer only listens on loopback addresses")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = 0
        self._session_timeout = session_timeout
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._data_replies: deque[str] = deque()
        self._refused: dict[str, str] = {}
        self._auth: tuple[str, str] | None = None
        self._connections = 0
        self._counting = False
        self._controller: _Controller | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> SMTPServer:
        if self._controller is not None:
            raise RuntimeError("SMTPServer already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((self.host, 0))
            sock.listen(128)
            self.port = sock.getsockname()[1]
            controller = _Controller(
                self,
                sock,
                ready_timeout=5.0,
                # Without a hostname aiosmtpd calls socket.getfqdn() for every
                # connection, which can stall for seconds on machines without DNS.
                server_hostname="localhost",
                auth_require_tls=False,
                authenticator=self._authenticate,
                timeout=self._session_timeout,
            )
            with self._lock:
                self._counting = False
            # start() opens (and drops) one probe connection of its own to make the
            # lazily-created SMTP instance come alive; it must not be counted.
            controller.start()
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self._connections = 0
            self._counting = True
        self._controller = controller
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            with self._lock:
                self._counting = False
            controller.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- observations ------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        """Snapshot (a copy) of the messages accepted so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start (aiosmtpd's own probe excluded)."""
        with self._lock:
            return self._connections

    # -- scripting ---------------------------------------------------------

    def script_data(self, replies: list[str]) -> None:
        """Queue replies to the DATA command, consumed one per DATA in order.

        A 2xx reply accepts and records the message; 4xx/5xx reject it. When the
        queue is empty, messages are accepted with ``250 OK``.
        """
        checked = [_check_reply(r) for r in replies]
        with self._lock:
            self._data_replies.extend(checked)

    def refuse_rcpt(self, address: str, reply: str = "550 5.1.1 No such user") -> None:
        """Make ``RCPT TO:<address>`` (case-insensitive) fail with ``reply``."""
        _check_reply(reply)
        with self._lock:
            self._refused[address.lower()] = reply

    def require_auth(self, user: str, password: str) -> None:
        """Demand AUTH PLAIN/LOGIN with these credentials before MAIL FROM.

        Without this, AUTH is still advertised and any credentials are accepted.
        """
        with self._lock:
            self._auth = (user, password)

    def reset(self) -> None:
        """Forget recorded messages, scripts, refusals, auth and the counter."""
        with self._lock:
            self._messages.clear()
            self._data_replies.clear()
            self._refused.clear()
            self._auth = None
            self._connections = 0

    # -- called from the event-loop thread -------------------------------

    def _note_connection(self) -> None:
        with self._lock:
            if self._counting:
                self._connections += 1

    def _next_data_reply(self) -> str:
        with self._lock:
            return self._data_replies.popleft() if self._data_replies else "250 OK"

    def _rcpt_refusal(self, address: str) -> str | None:
        with self._lock:
            return self._refused.get(address.lower())

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._messages.append(mail)

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        with self._lock:
            expected = self._auth
        if expected is not None:
            given = (
                auth_data.login.decode("utf-8", "replace"),
                auth_data.password.decode("utf-8", "replace"),
            )
            if given != expected:
                return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=auth_data)
