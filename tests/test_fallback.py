"""Fallback chains on SQLite and PostgreSQL: the next channel only after a final
failure or when the user has no target; a success stops the chain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from notice import ConfigurationError, NoticeType, notice_event
from notice.fallback import first_of_chain
from tests.support.chatfakes import ChatFake
from tests.support.emailapp import deliveries


@pytest.fixture
def fake() -> Iterator[ChatFake]:
    with ChatFake(token="xoxb-fallback", channels=("U1",)) as f:
        yield f


def fallback_app(app_factory: Any, fake: ChatFake, **config: Any) -> Any:
    settings = {
        "NOTICE_SENDERS": ["slack", "memory"],
        "NOTICE_SLACK_HOSTS": ["127.0.0.1"],
        "NOTICE_SLACK_API_URL": fake.url + "/slack/api/",
        "NOTICE_SLACK_TOKEN": "xoxb-fallback",
        "NOTICE_FALLBACK": {"Comment": ["slack", "memory"]},
    }
    settings.update(config)
    app = app_factory(**settings)

    def slack_ids(user_ids: list[int]) -> dict[int, str]:
        # user 1 is in the fake's workspace, user 2's id is unknown there, 3 has none
        return {u: f"U{u}" for u in user_ids if u in (1, 2)}

    with app.app_context():
        app.notices.sender("slack").target_loader(slack_ids)
    return app


def rows(app: Any) -> dict[int, list[tuple[str, str]]]:
    Notice = app.notices.Notice
    owner = {n.id: n.user_id for n in app.db.session.query(Notice)}
    out: dict[int, list[tuple[str, str]]] = {}
    for d in deliveries(app):
        out.setdefault(owner[d.notice_id], []).append((d.channel, d.status))
    return out


def test_chain(app_factory: Any, fake: ChatFake) -> None:
    app = fallback_app(app_factory, fake)
    with app.app_context():
        ids = notice_event([1, 2, 3], NoticeType.COMMENT, subject="s", content="c")
        before = rows(app)
        # success stops the chain; no target moves on at once
        assert before[1] == [("slack", "Sent")]
        assert before[3] == [("memory", "Sent")]
        # a final failure wrote the next channel's delivery with the failure
        assert before[2] == [("slack", "Dead"), ("memory", "Wait")]
        app.notices.deliver_due()
        assert rows(app)[2] == [("slack", "Dead"), ("memory", "Sent")]
        Notice = app.notices.Notice
        app.db.session.expire_all()
        statuses = {n.user_id: n.send_status for n in app.db.session.query(Notice)}
        # the roll-up is unchanged: a notice with a Dead delivery reads Error even when
        # its fallback was sent (the delivery rows tell the story)
        assert statuses == {1: "Sent", 2: "Error", 3: "Sent"}
        assert len(ids) == 3
    memory = app.notices.state(app).senders_by_name["memory"]
    assert sorted(n.user_id for n in memory.outbox) == [2, 3]


def test_fallback_respects_preferences(app_factory: Any, fake: ChatFake) -> None:
    """A chain passes over a channel the user turned off for the type: the fallback
    delivery is written right after the failure, too fresh for the send-time re-check
    of preferences, so the chain itself must ask."""
    app = fallback_app(
        app_factory,
        fake,
        NOTICE_SENDERS=["slack", "memory", "log"],
        NOTICE_FALLBACK={"Comment": ["slack", "memory", "log"]},
    )
    with app.app_context():
        app.notices.preferences.set(2, "Comment", "memory", False)
        notice_event([2], NoticeType.COMMENT, subject="s", content="c")
        # user 2's slack id is unknown to the fake: Dead; memory is off, so log is next
        assert rows(app)[2] == [("slack", "Dead"), ("log", "Wait")]
        app.notices.deliver_due()
        assert rows(app)[2] == [("slack", "Dead"), ("log", "Sent")]
    assert app.notices.state(app).senders_by_name["memory"].outbox == []


def test_retried_failure_does_not_fall_back(app_factory: Any, fake: ChatFake) -> None:
    app = fallback_app(app_factory, fake)
    fake.script("/slack/api/", (503, {}, b""))
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        assert rows(app)[1] == [("slack", "Error")]


def test_other_types_use_every_channel(app_factory: Any, fake: ChatFake) -> None:
    app = fallback_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.POST, subject="s", content="c")
        assert sorted(rows(app)[1]) == [("memory", "Sent"), ("slack", "Sent")]


def test_first_of_chain_keeps_other_channels() -> None:
    pairs = [("email", ""), ("slack", "U1"), ("log", "")]
    assert first_of_chain(pairs, ("slack", "email")) == [("slack", "U1"), ("log", "")]


@pytest.mark.parametrize("bad", [{"Comment": "slack"}, {"Comment": ["slack"]}, ["x"]])
def test_bad_chain_is_refused(app_factory: Any, fake: ChatFake, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="NOTICE_FALLBACK"):
        fallback_app(app_factory, fake, NOTICE_FALLBACK=bad)
