"""The "discord" sender: a webhook message with one embed.

Targets are ``"shared:<name>"`` (a webhook of ``NOTICE_DISCORD_SHARED``) or webhook
URLs from the target loader. Plain ``requests`` through the deadline helper is enough:
a Discord webhook is one JSON POST, and the wrapper libraries add an event loop or a
bot client without a total deadline. ``allowed_mentions`` is empty, so a notice cannot
ping ``@everyone``. A 429 carries ``retry_after`` (seconds) in its JSON body as well as
the ``Retry-After`` header; either is honoured.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PermanentError
from .chat import ChatSender
from .slack import absolute

#: Discord's limits: embed title 256, description 4096 characters
MAX_TITLE, MAX_DESCRIPTION = 256, 4096


def render(notice: Any) -> dict[str, Any]:
    embed: dict[str, Any] = {
        "title": (notice.subject or str(notice.notice_type))[:MAX_TITLE],
        "description": (notice.content or "")[:MAX_DESCRIPTION],
        "timestamp": notice.create_at.isoformat(),
    }
    link = absolute(notice.url)
    if link:
        embed["url"] = link
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


class DiscordSender(ChatSender):
    """Discord webhooks with embeds."""

    name = "discord"
    key = "DISCORD"

    def message(self, notice: Any, target: str) -> dict[str, Any]:
        return render(notice)

    def deliver(self, notice: Any, target: str) -> None:
        url = self.resolve(target)
        if url is None:
            raise PermanentError("a discord target must be a webhook URL or 'shared:<name>'")
        answer = self.post(url, json.dumps(render(notice)).encode(), {})
        wait = None
        if answer.status == 429:
            try:
                wait = float(json.loads(answer.body)["retry_after"])
            except (ValueError, KeyError, TypeError):
                wait = None
        self.classify(answer, wait)
