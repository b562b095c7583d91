"""The "teams" sender: an Adaptive Card posted to a Microsoft Teams workflow webhook
(Power Automate's "When a Teams webhook request is received").

Targets are ``"shared:<name>"`` (a webhook of ``NOTICE_TEAMS_SHARED``) or webhook URLs
from the target loader. The body is the message envelope the workflow expects: one
attachment of content type ``application/vnd.microsoft.card.adaptive`` holding an
Adaptive Card 1.4. Plain ``requests`` through the deadline helper: there is no
maintained client library for workflow webhooks, and the card is JSON.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import PermanentError
from .chat import ChatSender
from .slack import absolute

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def render(notice: Any) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": notice.subject or str(notice.notice_type),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    if notice.content:
        body.append({"type": "TextBlock", "text": notice.content, "wrap": True})
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    link = absolute(notice.url)
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


class TeamsSender(ChatSender):
    """Microsoft Teams workflow webhooks with Adaptive Cards."""

    name = "teams"
    key = "TEAMS"

    def message(self, notice: Any, target: str) -> dict[str, Any]:
        return render(notice)

    def deliver(self, notice: Any, target: str) -> None:
        url = self.resolve(target)
        if url is None:
            raise PermanentError("a teams target must be a webhook URL or 'shared:<name>'")
        self.classify(self.post(url, json.dumps(render(notice)).encode(), {}))
