"""Durable, real-time notifications for Flask."""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    NoRecipientError,
    NoticeError,
    PermanentError,
    SkipDelivery,
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
    "NoticeError",
    "NoticeEvent",
    "NoticeType",
    "Notices",
    "PermanentError",
    "ReadStatus",
    "SendStatus",
    "Sender",
    "SkipDelivery",
    "TransientError",
    "notice_event",
]
