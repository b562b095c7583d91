"""The "slack" sender: Block Kit messages through an incoming webhook or
``chat.postMessage`` with a bot token.

Targets: ``"shared:<name>"`` posts to the incoming webhook named in
``NOTICE_SLACK_SHARED``; a webhook URL (from the target loader) posts to it; anything
else is a channel or member id (``C0123``, ``U0123``) posted with ``chat.postMessage``
and ``NOTICE_SLACK_TOKEN`` as a Bearer token. The blocks are built with ``slack-sdk``'s
Block Kit models (validated by them) and always carry a plain-text ``text`` fallback for
notifications and clients that do not render blocks.

``chat.postMessage`` answers HTTP 200 with ``{"ok": false, "error": ...}`` on most
errors: ``ratelimited`` and Slack's own failures are retried, every other error
(``channel_not_found``, ``invalid_auth``, ...) is final. The token never appears in
logs or errors.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    HeaderBlock,
    PlainTextObject,
    SectionBlock,
)

from ..errors import ConfigurationError, PermanentError, TransientError
from .chat import ChatSender

#: ``chat.postMessage`` errors worth another attempt; every other error is final
RETRIED_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

#: Slack's limits: header text 150, section text 3000 characters
MAX_HEADER, MAX_SECTION = 150, 3000


def escape(text: str) -> str:
    """Slack's mrkdwn escaping: ``&``, ``<`` and ``>`` (so a notice cannot write
    ``<!channel>`` and ping everyone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def absolute(url: str | None) -> str | None:
    return url if url and urlsplit(url).scheme in ("http", "https") else None


def render(notice: Any) -> dict[str, Any]:
    """``{"text": plain fallback, "blocks": [...]}`` for ``notice``."""
    title = notice.subject or str(notice.notice_type)
    content = notice.content or ""
    link = absolute(notice.url)
    blocks: list[Any] = [HeaderBlock(text=PlainTextObject(text=title[:MAX_HEADER]))]
    if content:
        blocks.append(
            SectionBlock(text={"type": "mrkdwn", "text": escape(content)[:MAX_SECTION]})
        )
    if link:
        blocks.append(
            ActionsBlock(elements=[ButtonElement(text="Open", url=link, action_id="open")])
        )
    fallback = "\n".join(p for p in (title, content, link) if p)
    return {"text": escape(fallback), "blocks": [b.to_dict() for b in blocks]}


class SlackSender(ChatSender):
    """Slack through incoming webhooks and ``chat.postMessage``."""

    name = "slack"
    key = "SLACK"

    def __init__(self) -> None:
        super().__init__()
        self._token: str | None = None
        self.api_url = "https://slack.com/api/"

    def init_app(self, app: Flask) -> None:
        super().init_app(app)
        token = app.config["NOTICE_SLACK_TOKEN"]
        if token is not None and (not isinstance(token, str) or not token.startswith("xox")):
            raise ConfigurationError("NOTICE_SLACK_TOKEN must be a Slack token ('xoxb-...')")
        self._token = token
        if token is not None:  # the Web API is used only with a token
            api = self.check_url(app.config["NOTICE_SLACK_API_URL"], "NOTICE_SLACK_API_URL")
            self.api_url = api if api.endswith("/") else api + "/"

    def message(self, notice: Any, target: str) -> dict[str, Any]:
        body = render(notice)
        if self.resolve(target) is None:
            body["channel"] = target
        return body

    def deliver(self, notice: Any, target: str) -> None:
        url = self.resolve(target)
        body = render(notice)
        if url is not None:
            self.classify(self.post(url, json.dumps(body).encode(), {}))
            return
        if self._token is None:
            raise PermanentError("chat.postMessage needs NOTICE_SLACK_TOKEN")
        body["channel"] = target
        answer = self.post(
            self.api_url + "chat.postMessage",
            json.dumps(body).encode(),
            {"Authorization": f"Bearer {self._token}"},
        )
        self.classify(answer)
        try:
            result = json.loads(answer.body)
        except ValueError as exc:
            raise TransientError("slack answered with a body that is not JSON") from exc
        if not isinstance(result, dict) or result.get("ok") is not True:
            error = str(result.get("error", "unknown")) if isinstance(result, dict) else "?"
            text = f"chat.postMessage failed: {error[:100]}"
            if error in RETRIED_ERRORS:
                raise TransientError(text)
            raise PermanentError(text)
