"""Durable, real-time notifications for Flask."""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    NoRecipientError,
    NoticeConfigWarning,
    NoticeError,
    PermanentError,
    SkipDelivery,
    TablesMissing,
    TransientError,
)
from .extension import Notices
from .publish import NoticeEvent, notice_event
from .senders.base import Sender
from .types import DeliveryStatus, NoticeType, ReadStatus, SendStatus

__all__ = [
    "ConfigurationError",
    "DeliveryStatus",
    "NoRecipientError",
    "NoticeConfigWarning",
    "NoticeError",
    "NoticeEvent",
    "NoticeType",
    "Notices",
    "PermanentError",
    "ReadStatus",
    "SendStatus",
    "Sender",
    "SkipDelivery",
    "TablesMissing",
    "TransientError",
    "notice_event",
]
