"""Issue 16, item 4: at most N notices per user x type x channel within a period; over
the limit the delivery ends Skipped "throttled", or is left to the next digest.
SQLite and PostgreSQL, concurrent publishers included."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from notice import NoticeType, notice_event
from notice.columns import utcnow
from notice.errors import ConfigurationError
from notice.preferences.digest import run_digest
from notice.throttle import THROTTLED, THROTTLED_TO_DIGEST
from tests.support.emailapp import deliveries, email_app
from tests.support.smtpserver import SMTPServer


def _like(user: Any = 1, n: int = 0) -> Any:
    return notice_event(user, NoticeType.LIKE, subject=f"like {n}", content="")


def test_over_the_limit_the_delivery_is_skipped_throttled(app_factory):
    app = app_factory(NOTICE_THROTTLE={"Like": {"memory": [2, 3600]}})
    with app.app_context():
        memory = app.notices.sender("memory")
        for n in range(4):
            _like(n=n)
        _like(user=2)  # per user
        notice_event(1, NoticeType.COMMENT, subject="c", content="")  # per type
        assert sorted(n.subject for n in memory.outbox) == ["c", "like 0", "like 0", "like 1"]
        rows = [(d.notice.subject, d.status, d.last_error) for d in deliveries(app)]
        assert ("like 2", "Skipped", THROTTLED) in rows and ("like 3", "Skipped", THROTTLED) in rows
        # every notice stays in the inbox
        assert app.notices.unread_count(1) == 5


def test_the_period_slides(app_factory):
    app = app_factory(NOTICE_THROTTLE={"*": {"memory": [1, 60]}})
    with app.app_context():
        _like(n=0)
        _like(n=1)  # throttled
        delivery = app.notices.models.Delivery.__table__
        app.db.session.execute(
            sa.update(delivery).values(create_at=utcnow() - timedelta(seconds=61))
        )
        app.db.session.commit()
        _like(n=2)
        sent = [n.subject for n in app.notices.sender("memory").outbox]
        assert sent == ["like 0", "like 2"]


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.mark.parametrize("overflow", ["skip", "digest"])
def test_overflow_skip_or_digest(app_factory, smtp, overflow):
    app = email_app(
        app_factory,
        smtp,
        NOTICE_THROTTLE={"Like": {"email": [1, 3600]}},
        NOTICE_THROTTLE_OVERFLOW=overflow,
        NOTICE_DIGEST_DEFAULT="daily",
    )
    with app.app_context():
        _like(n=0)
        _like(n=1)
        assert len(smtp.messages) == 1
        reason = THROTTLED if overflow == "skip" else THROTTLED_TO_DIGEST
        assert [d.last_error for d in deliveries(app, "email")] == [None, reason]
        smtp.reset()
        report = run_digest(app.notices.state(), "daily")
        if overflow == "skip":
            assert report.notices == 0 and smtp.messages == []
        else:
            assert report.notices == 1
            text = smtp.messages[0].message.get_body(("plain",)).get_content()
            assert "like 1" in text and "like 0" not in text


def test_concurrent_publishers_never_pass_the_limit_together(app_factory):
    app = app_factory(NOTICE_THROTTLE={"Like": {"memory": [5, 3600]}})
    errors: list[BaseException] = []

    def publish(n: int) -> None:
        try:
            with app.app_context():
                for i in range(5):
                    _like(n=n * 10 + i)
                app.db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    workers = [threading.Thread(target=publish, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with app.app_context():
        statuses = [d.status for d in deliveries(app)]
        assert len(statuses) == 20
        assert statuses.count("Sent") == 5 and statuses.count("Skipped") == 15


@pytest.mark.parametrize(
    "config",
    [
        {"NOTICE_THROTTLE": {"Like": {"email": 3}}},
        {"NOTICE_THROTTLE": {"Like": {"email": [3, 0]}}},
        {"NOTICE_THROTTLE": {"Nope": {"email": [3, 60]}}},
        {"NOTICE_THROTTLE_OVERFLOW": "drop"},
    ],
)
def test_bad_throttle_config(app_factory, config):
    with pytest.raises(ConfigurationError, match="NOTICE_THROTTLE"):
        app_factory(**config)
