"""A loopback fake of Slack, Discord and Microsoft Teams that checks their protocols.

One HTTP server, paths as the real services use them:

* ``POST /slack/hooks/<secret>``: a Slack incoming webhook. JSON with a non-empty
  ``text`` and, when present, ``blocks`` of known Block Kit types; answers ``200 ok``,
  ``400 invalid_payload`` otherwise.
* ``POST /slack/api/chat.postMessage``: ``Authorization: Bearer <token>`` must be the
  fake's token (else ``{"ok": false, "error": "invalid_auth"}``), JSON body with
  ``channel`` (``channels`` lists the known ones, else ``channel_not_found``) and ``text``.
* ``POST /discord/api/webhooks/<id>/<token>``: ``embeds`` (at most 10; title at most 256,
  description at most 4096 characters) or ``content``; answers ``204``.
* ``POST /teams/workflows/<id>``: the message envelope with one Adaptive Card
  attachment; answers ``202``.

``script(path_prefix, (status, headers, body))`` queues answers for a path; ``received``
lists every accepted message as ``(path, json body, headers)``.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BLOCK_TYPES = {"header", "section", "actions", "divider", "context", "image"}
CARD_TYPE = "application/vnd.microsoft.card.adaptive"


class ChatFake:
    def __init__(self, token: str = "xoxb-test-token", channels: tuple[str, ...] = ("C1",)):
        self.token = token
        self.channels = set(channels)
        self.received: list[tuple[str, Any, dict[str, str]]] = []
        self.rejected: list[tuple[str, str]] = []
        self._scripts: dict[str, deque[tuple[int, dict[str, str], bytes]]] = defaultdict(deque)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body are two writes: without this, Nagle holds the body
            # until the client acknowledges the headers (a delayed ACK: 40 ms)
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                status, headers, body = fake._answer(self.path, dict(self.headers), raw)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ChatFake:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, prefix: str, *answers: tuple[int, dict[str, str], bytes]) -> None:
        with self._lock:
            self._scripts[prefix].extend(answers)

    def messages(self, prefix: str) -> list[Any]:
        with self._lock:
            return [body for path, body, _ in self.received if path.startswith(prefix)]

    # --- protocol checks -------------------------------------------------------------

    def _answer(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            for prefix, queue in self._scripts.items():
                if path.startswith(prefix) and queue:
                    return queue.popleft()
        if headers.get("Content-Type", "").split(";")[0] != "application/json":
            return self._reject(path, "content type", 415, b"unsupported")
        try:
            body = json.loads(raw)
        except ValueError:
            return self._reject(path, "not json", 400, b"invalid_payload")
        if path.startswith("/slack/hooks/"):
            problem = _slack_message(body)
            if problem:
                return self._reject(path, problem, 400, b"invalid_payload")
            return self._accept(path, body, headers, 200, b"ok")
        if path == "/slack/api/chat.postMessage":
            if headers.get("Authorization") != f"Bearer {self.token}":
                return self._slack_error(path, "invalid_auth")
            problem = _slack_message(body)
            if problem:
                return self._slack_error(path, "invalid_blocks")
            if body.get("channel") not in self.channels:
                return self._slack_error(path, "channel_not_found")
            self._accept(path, body, headers, 200, b"")
            answer = {"ok": True, "channel": body["channel"], "ts": "1.000"}
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        if path.startswith("/discord/api/webhooks/"):
            problem = _discord_message(body)
            if problem:
                msg = json.dumps({"code": 50035, "message": problem}).encode()
                return self._reject(path, problem, 400, msg)
            return self._accept(path, body, headers, 204, b"")
        if path.startswith("/teams/workflows/"):
            problem = _teams_message(body)
            if problem:
                return self._reject(path, problem, 400, problem.encode())
            return self._accept(path, body, headers, 202, b"")
        return 404, {}, b"not found"

    def _accept(
        self, path: str, body: Any, headers: dict[str, str], status: int, answer: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.received.append((path, body, headers))
        return status, {}, answer

    def _reject(
        self, path: str, why: str, status: int, answer: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.rejected.append((path, why))
        return status, {}, answer

    def _slack_error(self, path: str, error: str) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.rejected.append((path, error))
        body = json.dumps({"ok": False, "error": error}).encode()
        return 200, {"Content-Type": "application/json"}, body


def _slack_message(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
        return "a plain-text 'text' is required"
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
            return f"unknown block {block!r}"
        if block["type"] == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                return "header needs plain_text of 1-150 characters"
        if block["type"] == "section":
            text = block.get("text", {})
            if text.get("type") not in ("mrkdwn", "plain_text") or len(text.get("text", "")) > 3000:
                return "section text is wrong"
    return None


def _discord_message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "not an object"
    embeds = body.get("embeds", [])
    if not body.get("content") and not embeds:
        return "Cannot send an empty message"
    if not isinstance(embeds, list) or len(embeds) > 10:
        return "embeds: at most 10"
    for embed in embeds:
        if len(embed.get("title", "")) > 256 or len(embed.get("description", "")) > 4096:
            return "embed too long"
        if "url" in embed and not str(embed["url"]).startswith(("http://", "https://")):
            return "embed url scheme"
    mentions = body.get("allowed_mentions")
    if mentions is not None and not isinstance(mentions.get("parse"), list):
        return "allowed_mentions.parse must be a list"
    return None


def _teams_message(body: Any) -> str | None:
    if not isinstance(body, dict) or body.get("type") != "message":
        return "type must be 'message'"
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return "one attachment expected"
    att = attachments[0]
    if att.get("contentType") != CARD_TYPE:
        return "contentType must be the adaptive card type"
    card = att.get("content", {})
    if card.get("type") != "AdaptiveCard" or not isinstance(card.get("version"), str):
        return "content must be an AdaptiveCard with a version"
    if not isinstance(card.get("body"), list) or not all(
        isinstance(e, dict) and e.get("type") for e in card["body"]
    ):
        return "card body must be a list of typed elements"
    for action in card.get("actions", []):
        if action.get("type") == "Action.OpenUrl" and not action.get("url"):
            return "Action.OpenUrl needs a url"
    return None
