"""What the HTTP senders (webhook, Web Push, chat) share: one POST bounded in time and
size, one classification of its answer, and the ``Retry-After`` parser.

``requests``' ``timeout`` bounds each socket read, not the request: a receiver that
drips a byte just inside it keeps a send busy for as long as it likes, and a body is
read whole, however large. :func:`post_with_deadline` makes the configured timeout the
total for connecting, sending and reading the answer, and reads at most a few KB of
body.
"""

from __future__ import annotations

import email.utils
import http.client
import io
import socket
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool, poolmanager

from ..errors import PermanentError, TransientError

#: body bytes kept from an answer (enough for an error message); the rest is never read
MAX_BODY = 4096

# the deadline of the request this thread is making; read when its response is built
_deadline: ContextVar[float | None] = ContextVar("notice_http_deadline", default=None)


class TimedOut(TransientError):
    """No complete status line and headers before the deadline."""


class Unreachable(TransientError):
    """No answer: connection refused or reset, TLS failure, bad URL; the message is
    the ``requests`` exception's name."""


@dataclass(frozen=True)
class Answer:
    """What :func:`post_with_deadline` read of a response."""

    status: int
    headers: Mapping[str, str]
    #: at most ``max_body`` bytes of the body, less when it ended, failed or ran out of
    #: time after the headers (the status is the answer; the body is only detail)
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def post_with_deadline(
    session: requests.Session,
    url: str,
    *,
    data: bytes,
    headers: Mapping[str, str],
    timeout: float,
    max_body: int = MAX_BODY,
) -> Answer:
    """POST ``data`` to ``url`` and return the status, headers and a body prefix, all
    within ``timeout`` seconds in total. Redirects are not followed.

    The status line and headers must arrive before the deadline. The body is read
    until it ends, ``max_body`` bytes are in, or the deadline passes, and the
    connection is closed unless the body ended (then it goes back to the pool). The
    body is asked for and read undecoded (``Accept-Encoding: identity``): a compressed
    answer could inflate far past ``max_body``.

    Use a session from :func:`deadline_session` (or with :class:`DeadlineAdapter`
    mounted): with another session only connecting and the body are bounded in total,
    and a drip-fed status line and headers still wait per read.

    :raise TimedOut: no status and headers before the deadline.
    :raise Unreachable: any other failure to get them.
    """
    deadline = time.monotonic() + timeout
    request_headers = {"Accept-Encoding": "identity", **headers}
    token = _deadline.set(deadline)
    try:
        try:
            response = session.post(
                url,
                data=data,
                headers=request_headers,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            if isinstance(exc, requests.Timeout) or time.monotonic() >= deadline:
                raise TimedOut(f"timed out after {timeout:g} s") from exc
            raise Unreachable(type(exc).__name__) from exc
        try:
            body = _read_prefix(response.raw, max_body)
        finally:
            # closes the connection when the body is not over (it is never drained)
            response.close()
        return Answer(response.status_code, response.headers, body)
    finally:
        _deadline.reset(token)


def post_as(
    what: str,
    session: requests.Session,
    url: str,
    *,
    data: bytes,
    headers: Mapping[str, str],
    timeout: float,
) -> Answer:
    """:func:`post_with_deadline`, its transport failures re-raised as transient errors
    that start with ``what`` (the sender's name) and never name the URL: webhook and
    chat URLs carry their secret in the path."""
    try:
        return post_with_deadline(session, url, data=data, headers=headers, timeout=timeout)
    except TimedOut as exc:
        raise TransientError(f"{what} {exc}") from exc
    except Unreachable as exc:
        raise TransientError(f"{what} request failed: {exc}") from exc


def raise_for_answer(answer: Answer, what: str, *, wait: float | None = None) -> None:
    """Return for a 2xx answer, else raise: 408, 429 and 5xx are retried after the
    answer's ``Retry-After`` (else ``wait``); every other status is final, redirects
    included (they are not followed) and 410 Gone (the endpoint was removed)."""
    status = answer.status
    if 200 <= status < 300:
        return
    text = f"{what} answered {status}"
    if status in (408, 429) or status >= 500:
        after = retry_after(answer.headers.get("Retry-After"))
        raise TransientError(text, retry_after=after if after is not None else wait)
    raise PermanentError(text)


def _read_prefix(raw: urllib3.BaseHTTPResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            chunk = raw.read(limit - size, decode_content=False)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError):
        pass  # past the deadline, reset, truncated: the status already says what happened
    return b"".join(parts)


def deadline_session(*, pool_connections: int = 10, pool_maxsize: int = 10) -> requests.Session:
    """A ``requests.Session`` with :class:`DeadlineAdapter` mounted for http and https."""
    session = requests.Session()
    adapter = DeadlineAdapter(pool_connections=pool_connections, pool_maxsize=pool_maxsize)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections read the status line and headers under
    :func:`post_with_deadline`'s deadline (elsewhere they behave as usual)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:  # not SOCKS
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each waiting at most until the deadline: the socket timeout
    alone restarts on every byte received."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's deadline passed")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()  # releases makefile()'s hold on the socket
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """``http.client``'s response reading through a :class:`_DeadlineReader` when
    built under a deadline: the status line and headers are read in here, before
    ``requests`` hands back a response a caller could watch."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        deadline = _deadline.get()
        fp = self.fp
        if deadline is not None and isinstance(fp, io.BufferedReader):
            raw = fp.detach()  # nothing read yet; detach() keeps the socket open
            self.fp = io.BufferedReader(_DeadlineReader(raw, sock, deadline))


class _HTTPConnection(connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS: dict[str, type[connectionpool.HTTPConnectionPool]] = {
    "http": _HTTPPool,
    "https": _HTTPSPool,
}


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (RFC 9110); None when absent or unreadable. A date in the past means now (0)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())
