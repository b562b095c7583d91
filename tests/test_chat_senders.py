"""The chat senders against the loopback fake of Slack, Discord and Teams."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from notice.config import DEFAULTS
from notice.errors import ConfigurationError, PermanentError, SkipDelivery, TransientError
from notice.senders.discord import DiscordSender
from notice.senders.slack import SlackSender
from notice.senders.teams import TeamsSender
from tests.support.chatfakes import CARD_TYPE, ChatFake

TOKEN = "xoxb-secret-token-123"


@pytest.fixture
def fake() -> Iterator[ChatFake]:
    with ChatFake(token=TOKEN, channels=("C1", "U7")) as f:
        yield f


#: the per-user targets the loader gives user 5 (the notices' user) unless a test says
MINE = ("U7", "C1", "C404", "https://evil.example/hook", "http://hooks.slack.com/x")


def configure(
    sender: Any, fake: ChatFake, *, owned: tuple[str, ...] | None = MINE, **extra: Any
) -> Any:
    app = Flask("chat")
    app.config.update({k: v for k, v in DEFAULTS.items()})
    key = sender.key
    app.config.update(
        {
            f"NOTICE_{key}_HOSTS": ["127.0.0.1"],
            f"NOTICE_{key}_TIMEOUT": 2.0,
            "NOTICE_SLACK_API_URL": fake.url + "/slack/api/",
            "NOTICE_SLACK_TOKEN": TOKEN,
            "NOTICE_SLACK_SHARED": {"ops": fake.url + "/slack/hooks/T0/B0/sekrit"},
            "NOTICE_DISCORD_SHARED": {"ops": fake.url + "/discord/api/webhooks/1/sekrit"},
            "NOTICE_TEAMS_SHARED": {"ops": fake.url + "/teams/workflows/abc?sig=sekrit"},
        }
    )
    app.config.update(extra)
    sender.init_app(app)
    if owned is not None:
        sender.target_loader(lambda user_ids: {5: list(owned)})
    return sender


def notice(**kw: Any) -> Any:
    values = {
        "id": 1,
        "user_id": 5,
        "subject": "New comment",
        "content": "Ann wrote <!channel> & more",
        "notice_type": "Comment",
        "url": "https://example.com/c/1",
        "create_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
    }
    values.update(kw)
    return SimpleNamespace(**values)


def test_slack_webhook_posts_blocks_and_escaped_fallback(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    slack.send_to(notice(), "shared:ops")
    (body,) = fake.messages("/slack/hooks/")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "actions"]
    assert "&lt;!channel&gt; &amp; more" in body["text"]
    assert "<!channel>" not in body["blocks"][1]["text"]["text"]
    assert body["blocks"][2]["elements"][0]["url"] == "https://example.com/c/1"


def test_slack_post_message_sends_bearer_token(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    slack.send_to(notice(url=None, content=""), "U7")
    (path, body, headers) = fake.received[0]
    assert path == "/slack/api/chat.postMessage"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert body["channel"] == "U7"
    assert [b["type"] for b in body["blocks"]] == ["header"]


def test_slack_ok_false_errors_are_mapped(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    with pytest.raises(PermanentError, match="channel_not_found") as info:
        slack.send_to(notice(), "C404")
    assert TOKEN not in str(info.value)
    wrong = configure(SlackSender(), fake, NOTICE_SLACK_TOKEN="xoxb-wrong")
    with pytest.raises(PermanentError, match="invalid_auth"):
        wrong.send_to(notice(), "C1")
    fake.script("/slack/api/", (200, {}, b'{"ok": false, "error": "internal_error"}'))
    with pytest.raises(TransientError, match="internal_error"):
        slack.send_to(notice(), "C1")
    assert fake.messages("/slack/api/") == []


def test_slack_429_is_retried_after_its_retry_after(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    fake.script("/slack/api/", (429, {"Retry-After": "30"}, b""))
    with pytest.raises(TransientError) as info:
        slack.send_to(notice(), "C1")
    assert info.value.retry_after == 30


def test_webhook_errors_never_show_the_url(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    fake.script("/slack/hooks/", (404, {}, b"no_service"), (503, {}, b""))
    with pytest.raises(PermanentError) as final:
        slack.send_to(notice(), "shared:ops")
    with pytest.raises(TransientError) as retried:
        slack.send_to(notice(), "shared:ops")
    for exc in (final.value, retried.value):
        assert "sekrit" not in str(exc)


def test_removed_shared_target_is_skipped(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake)
    with pytest.raises(SkipDelivery):
        slack.send_to(notice(), "shared:gone")


def test_hosts_are_allow_listed(fake: ChatFake) -> None:
    with pytest.raises(ConfigurationError, match="not in NOTICE_SLACK_HOSTS") as info:
        configure(SlackSender(), fake, NOTICE_SLACK_HOSTS=["hooks.slack.com"])
    assert "sekrit" not in str(info.value)
    slack = configure(SlackSender(), fake)
    with pytest.raises(PermanentError, match="not in NOTICE_SLACK_HOSTS"):
        slack.send_to(notice(), "https://evil.example/hook")


def test_discord_embeds_and_429_retry_after_body(fake: ChatFake) -> None:
    discord = configure(DiscordSender(), fake)
    discord.send_to(notice(), "shared:ops")
    (body,) = fake.messages("/discord/")
    assert body["allowed_mentions"] == {"parse": []}
    assert body["embeds"][0]["title"] == "New comment"
    assert body["embeds"][0]["url"] == "https://example.com/c/1"
    fake.script("/discord/", (429, {}, b'{"message": "rate limited", "retry_after": 1.5}'))
    with pytest.raises(TransientError) as info:
        discord.send_to(notice(), "shared:ops")
    assert info.value.retry_after == 1.5
    fake.script("/discord/", (401, {}, b'{"message": "Invalid Webhook Token"}'))
    with pytest.raises(PermanentError):
        discord.send_to(notice(), "shared:ops")
    with pytest.raises(PermanentError):
        discord.send_to(notice(), "C1")


def test_discord_long_text_is_cut_to_the_limits(fake: ChatFake) -> None:
    discord = configure(DiscordSender(), fake)
    discord.send_to(notice(subject="s" * 300, content="c" * 5000), "shared:ops")
    assert fake.rejected == []
    (body,) = fake.messages("/discord/")
    assert len(body["embeds"][0]["description"]) == 4096


def test_teams_posts_an_adaptive_card_envelope(fake: ChatFake) -> None:
    teams = configure(TeamsSender(), fake)
    teams.send_to(notice(), "shared:ops")
    (body,) = fake.messages("/teams/")
    card = body["attachments"][0]
    assert card["contentType"] == CARD_TYPE
    assert card["content"]["actions"][0]["url"] == "https://example.com/c/1"
    assert fake.rejected == []
    fake.script("/teams/", (500, {}, b""))
    with pytest.raises(TransientError):
        teams.send_to(notice(), "shared:ops")


def test_per_user_targets_come_from_the_loader(fake: ChatFake) -> None:
    slack = configure(SlackSender(), fake, owned=None)
    assert slack.targets([1, 2]) == {}

    @slack.target_loader
    def load(user_ids: list[int]) -> dict[int, str | None]:
        return {1: "U7", 2: None}

    assert slack.targets([1, 2]) == {1: ["U7"]}


def test_plain_http_only_to_a_loopback_host(fake: ChatFake) -> None:
    # the webhook's path is its secret: over plain http anyone on the way reads it
    with pytest.raises(ConfigurationError, match="must be https") as info:
        configure(
            SlackSender(),
            fake,
            NOTICE_SLACK_HOSTS=["127.0.0.1", "hooks.slack.com"],
            NOTICE_SLACK_SHARED={"ops": "http://hooks.slack.com/services/T/B/sekrit"},
        )
    assert "sekrit" not in str(info.value)
    with pytest.raises(ConfigurationError, match="must be https"):
        configure(
            DiscordSender(),
            fake,
            NOTICE_DISCORD_HOSTS=["discord.com"],
            NOTICE_DISCORD_SHARED={"ops": "http://discord.com/api/webhooks/1/sekrit"},
        )
    slack = configure(SlackSender(), fake, NOTICE_SLACK_HOSTS=["127.0.0.1", "hooks.slack.com"])
    # a URL the loader gives is checked the same way at send time, before any request
    with pytest.raises(PermanentError, match="must be https") as sent:
        slack.send_to(notice(), "http://hooks.slack.com/x")
    assert "/x" not in str(sent.value)
    assert fake.received == []


def test_a_target_the_loader_no_longer_gives_is_skipped(fake: ChatFake) -> None:
    mine = {5: ["C1"]}

    def load(user_ids: list[int]) -> dict[int, list[str]]:
        return {u: mine[u] for u in user_ids if u in mine}

    for cls in (SlackSender, DiscordSender):
        sender = configure(cls(), fake, owned=None)
        sender.target_loader(load)
        with pytest.raises(SkipDelivery, match="no longer the user's"):
            sender.send_to(notice(), "U7")  # the user's target was U7 once, now C1
        with pytest.raises(SkipDelivery, match="no longer the user's"):
            sender.preview(notice(), "U7")
    assert fake.received == []
    slack = configure(SlackSender(), fake, owned=None)
    slack.target_loader(load)
    slack.send_to(notice(), "C1")
    assert [m["channel"] for m in fake.messages("/slack/api/")] == ["C1"]


def test_a_batch_asks_the_loader_once_and_never_for_shared_targets(fake: ChatFake) -> None:
    calls: list[list[int]] = []

    def load(user_ids: list[int]) -> dict[int, str]:
        calls.append(sorted(user_ids))
        return {u: "C1" for u in user_ids if u != 6}

    slack = configure(SlackSender(), fake, owned=None)
    slack.target_loader(load)
    items = [(notice(user_id=5), "C1"), (notice(user_id=6), "C1"), (notice(user_id=7), "C1")]
    slack.open()
    slack.prepare([*items, (notice(user_id=8), "shared:ops")])
    try:
        slack.send_to(*items[0])
        with pytest.raises(SkipDelivery):
            slack.send_to(*items[1])  # user 6 has no slack target any more
        slack.send_to(*items[2])
        slack.send_to(notice(user_id=8), "shared:ops")  # no user owns it: not asked
    finally:
        slack.close()
    assert calls == [[5, 6, 7]]
    assert len(fake.messages("/slack/api/")) == 2 and len(fake.messages("/slack/hooks/")) == 1
