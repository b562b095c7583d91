"""Sends per second of each chat sender against its loopback fake, beside a hand-written
call of the same client library in the same run (ratio = ours / hand-written).

    .venv/bin/python bench/channels.py [-n 300]

Hand-written references: ``slack_sdk.webhook.WebhookClient.send`` for the Slack
webhook, ``slack_sdk.WebClient.chat_postMessage`` for the bot token, a plain
``requests.Session.post`` of the same JSON for Discord and Teams. Ours goes through
``Sender.send_to`` (the per-user target's owner check, rendering, allow-list check, the
total-deadline POST, the answer's classification).

It also runs every module ``bench/channels_*.py`` that defines
``run(n: int) -> list[tuple[str, float, float]]`` (channel, ours/s, hand-written/s):
other channels (SMS, mobile push) add their rows that way.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from flask import Flask  # noqa: E402
from slack_sdk import WebClient  # noqa: E402
from slack_sdk.webhook import WebhookClient  # noqa: E402

from notice.config import DEFAULTS  # noqa: E402
from notice.senders.discord import DiscordSender  # noqa: E402
from notice.senders.discord import render as discord_body  # noqa: E402
from notice.senders.slack import SlackSender, render  # noqa: E402
from notice.senders.teams import TeamsSender  # noqa: E402
from notice.senders.teams import render as teams_body  # noqa: E402
from tests.support.chatfakes import ChatFake  # noqa: E402

TOKEN = "xoxb-bench-token"
Row = tuple[str, float, float]


def rate(n: int, call: Callable[[], Any]) -> float:
    call()  # warm: connection, imports
    start = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - start)


def _configured(sender: Any, fake: ChatFake) -> Any:
    app = Flask("bench")
    app.config.update(DEFAULTS)
    app.config.update(
        {
            f"NOTICE_{sender.key}_HOSTS": ["127.0.0.1"],
            "NOTICE_SLACK_API_URL": fake.url + "/slack/api/",
            "NOTICE_SLACK_TOKEN": TOKEN,
            "NOTICE_SLACK_SHARED": {"ops": fake.url + "/slack/hooks/T/B/x"},
            "NOTICE_DISCORD_SHARED": {"ops": fake.url + "/discord/api/webhooks/1/x"},
            "NOTICE_TEAMS_SHARED": {"ops": fake.url + "/teams/workflows/1"},
        }
    )
    sender.init_app(app)
    return sender


def run(n: int) -> list[Row]:
    notice = SimpleNamespace(
        id=1,
        user_id=1,
        subject="New comment",
        content="Ann wrote something",
        notice_type="Comment",
        url="https://example.com/c/1",
        create_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )
    rows: list[Row] = []
    with ChatFake(token=TOKEN, channels=("C1",)) as fake:
        slack = _configured(SlackSender(), fake)
        # the per-user target is checked against the loader before each send (a dict
        # here; an app's loader is one query per batch)
        slack.target_loader(lambda user_ids: {1: ["C1"]})
        hook = WebhookClient(fake.url + "/slack/hooks/T/B/x", timeout=5)
        body = render(notice)
        rows.append(
            (
                "slack webhook",
                rate(n, lambda: slack.send_to(notice, "shared:ops")),
                rate(n, lambda: hook.send(text=body["text"], blocks=body["blocks"])),
            )
        )
        client = WebClient(token=TOKEN, base_url=fake.url + "/slack/api/", timeout=5)
        rows.append(
            (
                "slack chat.postMessage",
                rate(n, lambda: slack.send_to(notice, "C1")),
                rate(
                    n,
                    lambda: client.chat_postMessage(
                        channel="C1", text=body["text"], blocks=body["blocks"]
                    ),
                ),
            )
        )
        session = requests.Session()
        for name, sender, path, build in (
            ("discord", DiscordSender(), "/discord/api/webhooks/1/x", discord_body),
            ("teams", TeamsSender(), "/teams/workflows/1", teams_body),
        ):
            ours = _configured(sender, fake)
            url = fake.url + path
            rows.append(
                (
                    name,
                    rate(n, lambda ours=ours: ours.send_to(notice, "shared:ops")),
                    rate(n, lambda url=url, build=build: session.post(
                        url, json=build(notice), timeout=5
                    ).raise_for_status()),
                )
            )
        if fake.rejected:
            raise SystemExit(f"the fake refused messages: {fake.rejected[:3]}")
    return rows


def others(n: int) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(Path(__file__).parent.glob("channels_*.py")):
        spec = importlib.util.spec_from_file_location(f"bench.{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if callable(getattr(module, "run", None)):
            rows.extend(module.run(n))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="sends per measurement")
    args = parser.parse_args()
    rows = run(args.n) + others(args.n)
    print(f"{'channel':<24} {'ours/s':>9} {'hand/s':>9} {'ratio':>6}")
    for channel, ours, hand in rows:
        print(f"{channel:<24} {ours:9.0f} {hand:9.0f} {ours / hand:6.2f}")


if __name__ == "__main__":
    main()
