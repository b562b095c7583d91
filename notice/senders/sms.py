"""The "sms" sender, the interface of SMS providers, and their helpers: E.164
validation, segment-aware truncation and Twilio's status mapping.

The sender gets each user's phone number from a target loader
(``@notices.sender("sms").target_loader``, the chat senders' shape), checks it is E.164
at send time (a bad number ends the delivery Dead with no request made), renders the
notice into as many segments as ``NOTICE_SMS_MAX_SEGMENTS`` allows and hands it to the
provider of ``NOTICE_SMS_PROVIDER``. A user the loader gives no number gets no delivery
on this channel, so a fallback chain moves on. Before each send the loader is asked
again (once per batch): a number that is no longer the user's is not texted, the
delivery ends Skipped.

A provider is a :class:`SmsProvider`: :meth:`SmsProvider.send` sends one text and
returns a :class:`SmsReceipt` or raises :class:`~notice.errors.TransientError` (retried,
after ``retry_after`` when given) or :class:`~notice.errors.PermanentError` (final).
The built-in one is Twilio's (:mod:`notice.senders.twilio_sms`).
"""

from __future__ import annotations

import importlib
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin

from notice.errors import (
    ConfigurationError,
    NoticeError,
    PermanentError,
    SkipDelivery,
    TransientError,
)

from .. import links
from .base import Sender
from .targets import LoaderTargets
from .urls import check_url

if TYPE_CHECKING:
    from flask import Flask

__all__ = [
    "InvalidPhoneNumber",
    "SmsProvider",
    "SmsReceipt",
    "SmsSender",
    "classify_twilio_response",
    "fit_sms",
    "is_gsm7",
    "truncate_sms",
    "validate_e164",
]


class InvalidPhoneNumber(NoticeError, ValueError):
    """A phone number is not in E.164 form (``+`` then 8 to 15 digits)."""


_E164 = re.compile(r"\+[1-9][0-9]{7,14}")

#: GSM 03.38 basic character set; the extension set costs two septets.
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = frozenset("^{}\\[~]|€\f")

#: Twilio error codes that mean the number itself is bad: retrying cannot help.
INVALID_NUMBER_CODES = frozenset({21211, 21614})


def validate_e164(number: str) -> str:
    """Return *number* if it is E.164, else raise :class:`InvalidPhoneNumber`.

    The number is not echoed in the error, so it cannot leak into logs.
    """
    if not isinstance(number, str) or not _E164.fullmatch(number):
        raise InvalidPhoneNumber(
            "phone number must be E.164: '+' then 8 to 15 digits, no spaces"
        )
    return number


def is_gsm7(text: str) -> bool:
    """Whether *text* fits the GSM-7 alphabet (basic or extension set)."""
    return all(c in _GSM7_BASIC or c in _GSM7_EXT for c in text)


def _units(text: str, gsm: bool) -> list[int]:
    if gsm:
        return [2 if c in _GSM7_EXT else 1 for c in text]
    # UCS-2 counts UTF-16 code units; astral characters take two.
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def truncate_sms(text: str, max_segments: int = 1) -> str:
    """Cut *text* so it fits in *max_segments* SMS segments.

    GSM-7 text gets 160 septets in one segment or 153 per segment when
    concatenated; anything else is UCS-2 with 70 or 67 units. A cut text ends
    with an ellipsis ("..." in GSM-7, "…" in UCS-2). Characters are never split.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    gsm = is_gsm7(text)
    single, multi = (160, 153) if gsm else (70, 67)
    units = _units(text, gsm)
    total = sum(units)
    if total <= single:
        return text
    limit = single if max_segments == 1 else multi * max_segments
    if total <= limit:
        return text
    ellipsis = "..." if gsm else "…"
    budget = limit - len(ellipsis)
    used = 0
    cut = 0
    for i, width in enumerate(units):
        if used + width > budget:
            break
        used += width
        cut = i + 1
    return text[:cut] + ellipsis


def classify_twilio_response(
    status: int, body: dict[str, object], retry_after: str | None = None
) -> str:
    """Map a Twilio Messages API response to a message status or raise.

    Returns ``"queued"``, ``"sent"`` or ``"failed"`` for 2xx answers. Raises
    :class:`~notice.errors.TransientError` (with the ``Retry-After`` seconds) for
    429 and 5xx, and :class:`~notice.errors.PermanentError` for invalid numbers
    (codes 21211, 21614) and other 4xx answers.
    """
    if 200 <= status < 300:
        state = str(body.get("status", "queued"))
        if state in {"sent", "delivered"}:
            return "sent"
        if state in {"failed", "undelivered", "canceled"}:
            return "failed"
        return "queued"
    if status == 429 or status >= 500:
        seconds: float | None = None
        if retry_after is not None:
            try:
                seconds = max(0.0, float(retry_after))
            except ValueError:
                seconds = None
        raise TransientError(f"twilio answered {status}", retry_after=seconds)
    code = body.get("code")
    if isinstance(code, int) and code in INVALID_NUMBER_CODES:
        raise PermanentError(f"twilio rejected the number (code {code})")
    raise PermanentError(f"twilio answered {status} (code {code})")


def fit_sms(text: str, tail: str = "", max_segments: int = 1) -> str:
    """``text + tail`` cut to fit *max_segments*, cutting ``text`` and keeping ``tail``
    (a link) whole when they fit at all; otherwise :func:`truncate_sms` of the two."""
    whole = text + tail
    if not tail or truncate_sms(whole, max_segments) == whole:
        return truncate_sms(whole, max_segments)
    ellipsis = "..." if is_gsm7(whole) else "…"

    def fits(n: int) -> bool:
        candidate = text[:n] + ellipsis + tail
        return truncate_sms(candidate, max_segments) == candidate

    if not fits(0):
        return truncate_sms(whole, max_segments)
    low, high = 0, len(text)  # fits(low) holds, fits(high) does not (whole did not fit)
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return text[:low] + ellipsis + tail


@dataclass(frozen=True)
class SmsReceipt:
    """What a provider reports for an accepted message."""

    #: the provider's id of the message (Twilio's ``SM...`` sid)
    id: str
    #: ``"queued"`` (accepted, not yet handed to the carrier), ``"sent"`` or ``"failed"``
    status: str
    #: the provider's error code of a failed message, if any
    code: int | None = None


class SmsProvider:
    """An SMS API the "sms" sender sends through. Subclass it, implement :meth:`send`
    and name the class in ``NOTICE_SMS_PROVIDER`` (``"package.module:Class"``).

    :meth:`init_app` reads ``NOTICE_SMS_HOSTS`` and ``NOTICE_SMS_TIMEOUT`` into
    :attr:`hosts` and :attr:`timeout`; a subclass reads its own settings after calling
    it, and checks its API URL with :meth:`check_url`. :meth:`send` runs on the
    dispatcher's threads, several at once: keep per-thread clients. It must keep
    credentials and phone numbers out of the errors it raises: their text is stored in
    the delivery's ``last_error`` and logged.
    """

    #: the name ``NOTICE_SMS_PROVIDER`` knows it by (for messages)
    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.hosts: tuple[str, ...] = ()
        self.timeout = 5.0

    def init_app(self, app: Flask) -> None:
        """Read and validate the settings; raise ConfigurationError if wrong."""
        cfg = app.config
        hosts = cfg["NOTICE_SMS_HOSTS"]
        if isinstance(hosts, str) or not all(isinstance(h, str) and h for h in hosts):
            raise ConfigurationError(
                f"NOTICE_SMS_HOSTS must be a list of host names, got {hosts!r}"
            )
        self.hosts = tuple(hosts)
        timeout = cfg["NOTICE_SMS_TIMEOUT"]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError("NOTICE_SMS_TIMEOUT must be a positive number of seconds")
        self.timeout = float(timeout)

    def check_url(self, url: object, key: str) -> str:
        """``url`` if it is https (or http to a loopback host, for a test's fake) on a
        host of ``NOTICE_SMS_HOSTS``; ConfigurationError naming ``key`` otherwise."""
        # the token travels in every request's Authorization header
        return check_url(url, self.hosts, key, "NOTICE_SMS_HOSTS")

    def send(self, to: str, body: str) -> SmsReceipt:
        """Send ``body`` to the E.164 number ``to``.

        :raise TransientError: worth another attempt (rate limited, the API's own
            failure, timeout); ``retry_after`` seconds when the API said.
        :raise PermanentError: never worth another (invalid number, refused message).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement send(to, body)")


#: short names accepted in ``NOTICE_SMS_PROVIDER``
PROVIDERS = {"twilio": "notice.senders.twilio_sms:TwilioProvider"}


def load_provider(spec: object) -> SmsProvider:
    """The provider named by ``NOTICE_SMS_PROVIDER``: a short name or a dotted path."""
    path = PROVIDERS.get(spec, spec) if isinstance(spec, str) else None
    module_name, sep, attr = (path or "").partition(":")
    if not module_name or not sep or not attr:
        raise ConfigurationError(
            f"NOTICE_SMS_PROVIDER must be {' or '.join(map(repr, PROVIDERS))} or "
            f"'package.module:Class', got {spec!r}"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot load the SMS provider {spec!r} ({exc}); for twilio: "
            "pip install 'notice[sms]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, SmsProvider)):
        raise ConfigurationError(f"{path} is not a notice.senders.sms.SmsProvider subclass")
    return cls()


class SmsSender(LoaderTargets, Sender):
    """Text messages to each user's phone number, through an :class:`SmsProvider`.

    Outcomes: queued, accepted or sent by the provider: Sent; an invalid number
    (ours or the provider's verdict) or a message the provider reports failed: Dead;
    rate limits and the provider's own failures: retried, honouring ``Retry-After``; a
    number the target loader no longer gives the user: Skipped.
    """

    name = "sms"
    target_noun = "number"

    def __init__(self) -> None:
        self.provider: SmsProvider | None = None
        self.max_segments = 1
        self._origins: frozenset[str] = frozenset()
        self._base: str | None = None
        # the numbers of the batch being sent by this thread (LoaderTargets.prepare)
        self._local = threading.local()

    def init_app(self, app: Flask) -> None:
        cfg = app.config
        segments = cfg["NOTICE_SMS_MAX_SEGMENTS"]
        if isinstance(segments, bool) or not isinstance(segments, int) or not 1 <= segments <= 10:
            # Twilio refuses bodies over 1600 characters: 10 segments of 153 fit
            raise ConfigurationError(
                "NOTICE_SMS_MAX_SEGMENTS must be a whole number from 1 to 10"
            )
        self.max_segments = segments
        provider = load_provider(cfg["NOTICE_SMS_PROVIDER"])
        provider.init_app(app)
        self.provider = provider
        self._origins = links.link_origins(cfg)
        try:
            self._base = links.base_url(app)
        except ConfigurationError:
            self._base = None  # paths then stay out of the text: a phone cannot open them

    def text(self, notice: Any) -> str:
        """The message: subject, content and the notice's link (absolute, when it is a
        link at all: :func:`notice.links.safe_link`), cut to ``NOTICE_SMS_MAX_SEGMENTS``
        keeping the link whole."""
        title = notice.subject or str(notice.notice_type)
        text = "\n".join(p for p in (title, notice.content or "") if p)
        link = links.safe_link(notice.url, self._origins)
        if link is not None and link.startswith("/"):
            link = urljoin(self._base + "/", link) if self._base else None
        return fit_sms(text, f"\n{link}" if link else "", self.max_segments)

    def _number(self, target: str) -> str:
        try:
            return validate_e164(target)
        except InvalidPhoneNumber as exc:
            # final, and no request: the provider would refuse it too (and bill it)
            raise PermanentError(f"not sent: {exc}") from exc

    def preview(self, notice: Any, target: str) -> dict[str, str]:
        """``{"to": number, "body": text}`` as :meth:`send_to` would send them."""
        self.check_owner(notice, target)
        return {"to": self._number(target), "body": self.text(notice)}

    def send(self, notice: Any) -> None:
        raise SkipDelivery("the sms sender sends to phone numbers only")

    def send_to(self, notice: Any, target: str) -> None:
        if self.provider is None:
            raise RuntimeError("SmsSender.init_app(app) was not called")
        self.check_owner(notice, target)
        receipt = self.provider.send(self._number(target), self.text(notice))
        if receipt.status == "failed":
            code = f" (code {receipt.code})" if receipt.code is not None else ""
            name = self.provider.name or "the provider"
            raise PermanentError(f"{name} reports the message failed{code}")
