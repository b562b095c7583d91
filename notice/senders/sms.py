"""SMS helpers: E.164 validation, segment-aware truncation and Twilio status mapping.

This is the provider-independent core of the SMS channel (issue 18). The HTTP
sender itself is not built yet; these functions are what it will call.
"""

from __future__ import annotations

import re

from notice.errors import NoticeError, PermanentError, TransientError

__all__ = [
    "InvalidPhoneNumber",
    "classify_twilio_response",
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
