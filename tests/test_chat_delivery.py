"""Chat deliveries end to end on SQLite and PostgreSQL: per-user targets from the
loader, and shared-channel routes (one delivery per event)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from notice import NoticeType, notice_event
from notice.delivery import deliver
from tests.support.chatfakes import ChatFake
from tests.support.emailapp import deliveries

TOKEN = "xoxb-delivery-token"


@pytest.fixture
def fake() -> Iterator[ChatFake]:
    with ChatFake(token=TOKEN, channels=tuple(f"U{i}" for i in range(1, 21))) as f:
        yield f


def chat_app(app_factory: Any, fake: ChatFake, **config: Any) -> Any:
    settings = {
        "NOTICE_SENDERS": ["slack", "teams"],
        "NOTICE_SLACK_HOSTS": ["127.0.0.1"],
        "NOTICE_SLACK_API_URL": fake.url + "/slack/api/",
        "NOTICE_SLACK_TOKEN": TOKEN,
        "NOTICE_SLACK_SHARED": {"ops": fake.url + "/slack/hooks/T/B/sekrit"},
        "NOTICE_TEAMS_HOSTS": ["127.0.0.1"],
        "NOTICE_TEAMS_SHARED": {"ops": fake.url + "/teams/workflows/1?sig=sekrit"},
    }
    settings.update(config)
    app = app_factory(**settings)
    # user 3 has no slack target; a test may change a user's
    moved: dict[int, str] = {}

    def slack_ids(user_ids: list[int]) -> dict[int, str]:
        return {u: moved.get(u, f"U{u}") for u in user_ids if u != 3}

    app.moved_slack_ids = moved

    with app.app_context():
        app.notices.sender("slack").target_loader(slack_ids)
    return app


def test_per_user_targets_one_row_each(app_factory: Any, fake: ChatFake) -> None:
    app = chat_app(app_factory, fake)
    with app.app_context():
        notice_event([1, 2, 3], NoticeType.COMMENT, subject="Hi", content="there")
        rows = deliveries(app)
        assert sorted((d.channel, d.target, d.status) for d in rows) == [
            ("slack", "U1", "Sent"),
            ("slack", "U2", "Sent"),
        ]
    assert sorted(m["channel"] for m in fake.messages("/slack/api/")) == ["U1", "U2"]
    assert fake.messages("/teams/") == []


def test_shared_route_sends_one_message_per_event(app_factory: Any, fake: ChatFake) -> None:
    app = chat_app(
        app_factory,
        fake,
        NOTICE_SHARED_ROUTES={"Post": {"slack": ["ops"], "teams": ["ops"]}},
    )
    with app.app_context():
        result = notice_event(
            list(range(1, 21)), NoticeType.POST, subject="New post", content="Read it"
        )
        shared = [d for d in deliveries(app) if d.target == "shared:ops"]
        assert sorted((d.channel, d.status) for d in shared) == [
            ("slack", "Sent"),
            ("teams", "Sent"),
        ]
        first = min(result)
        assert {d.notice_id for d in shared} == {first}
    assert len(fake.messages("/slack/hooks/")) == 1
    assert len(fake.messages("/teams/")) == 1
    # per-user slack deliveries still go to users with a target (all but user 3)
    assert len(fake.messages("/slack/api/")) == 19
    assert fake.rejected == []


def test_shared_route_only_for_its_type(app_factory: Any, fake: ChatFake) -> None:
    app = chat_app(app_factory, fake, NOTICE_SHARED_ROUTES={"Post": {"teams": ["ops"]}})
    with app.app_context():
        notice_event([1, 2], NoticeType.COMMENT, subject="c", content="c")
        assert [d for d in deliveries(app) if d.channel == "teams"] == []


def test_retry_skips_a_target_the_user_no_longer_has(app_factory: Any, fake: ChatFake) -> None:
    fake.script("/slack/api/", (503, {}, b""))
    app = chat_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert (d.status, d.target) == ("Error", "U1")
        app.moved_slack_ids[1] = "U2"  # the user linked another Slack account
        deliver(app.notices.state(), now=d.next_attempt_at + timedelta(seconds=1))
        [d] = deliveries(app)
        assert d.status == "Skipped" and "no longer the user's" in d.last_error
    assert fake.messages("/slack/api/") == []


def test_retry_of_a_shared_target_is_not_owner_checked(app_factory: Any, fake: ChatFake) -> None:
    fake.script("/teams/", (503, {}, b""))
    app = chat_app(app_factory, fake, NOTICE_SHARED_ROUTES={"Post": {"teams": ["ops"]}})
    with app.app_context():
        notice_event(3, NoticeType.POST, subject="p", content="p")  # 3: no slack target
        [d] = [d for d in deliveries(app) if d.channel == "teams"]
        assert (d.status, d.target) == ("Error", "shared:ops")
        deliver(app.notices.state(), now=d.next_attempt_at + timedelta(seconds=1))
        [d] = [d for d in deliveries(app) if d.channel == "teams"]
        assert (d.status, d.attempts) == ("Sent", 2)
    assert len(fake.messages("/teams/")) == 1
