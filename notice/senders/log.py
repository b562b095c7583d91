"""A sender that writes each notice to the ``notice`` logger."""

from __future__ import annotations

import logging
from typing import Any

from .base import Sender

logger = logging.getLogger("notice")


class LogSender(Sender):
    """Logs one line per notice at INFO: id, user, type and subject (never content,
    which may be private)."""

    name = "log"

    def send(self, notice: Any) -> None:
        logger.info(
            "notice %s to user %s: [%s] %s",
            notice.id,
            notice.user_id,
            notice.notice_type,
            notice.subject,
        )
