"""SMS deliveries end to end on SQLite and PostgreSQL, through the twilio library to the
loopback Twilio fake: the rows' outcomes, retries, the fallback to email, and no auth
token or phone number in logs or errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from notice import NoticeType, notice_event
from notice.delivery import deliver
from notice.testing import capture_notices
from tests.support.chatfakes import ChatFake
from tests.support.emailapp import BASE_URL, deliveries, email_app
from tests.support.smtpserver import SMTPServer
from tests.support.twiliofake import TwilioFake

TOKEN = "twilio-sekrit-token-0123"
FROM = "+15005550006"
#: user id -> number given by the loader; user 3 has none, user 4's is not E.164,
#: user 5's is E.164 but Twilio refuses it (21211)
NUMBERS = {1: "+14155550101", 2: "+14155550102", 4: "0800 555 0104", 5: "+15005550001"}


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(token=TOKEN, invalid=(NUMBERS[5],)) as f:
        yield f


def twilio_settings(fake: TwilioFake) -> dict[str, Any]:
    return {
        "NOTICE_SMS_HOSTS": ["127.0.0.1"],
        "NOTICE_TWILIO_API_URL": fake.url,
        "NOTICE_TWILIO_ACCOUNT_SID": fake.sid,
        "NOTICE_TWILIO_AUTH_TOKEN": TOKEN,
        "NOTICE_TWILIO_FROM": FROM,
    }


def sms_app(app_factory: Any, fake: TwilioFake, **config: Any) -> Any:
    settings = {"NOTICE_SENDERS": ["sms"], "NOTICE_BASE_URL": BASE_URL, **twilio_settings(fake)}
    settings.update(config)
    app = app_factory(**settings)
    load_numbers(app)
    return app


def numbers(user_ids: list[int]) -> dict[int, str]:
    return {u: NUMBERS[u] for u in user_ids if u in NUMBERS}


def load_numbers(app: Any) -> None:
    with app.app_context():
        app.notices.sender("sms").target_loader(numbers)


def test_sent_to_each_users_number_and_none_without_one(
    app_factory: Any, fake: TwilioFake
) -> None:
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event([1, 2, 3], NoticeType.COMMENT, subject="Ann replied", content="Nice",
                     url="/posts/7")
        rows = deliveries(app)
        assert sorted((d.target, d.status, d.last_error) for d in rows) == [
            (NUMBERS[1], "Sent", None),
            (NUMBERS[2], "Sent", None),
        ]
    assert sorted(m["To"] for m in fake.messages) == [NUMBERS[1], NUMBERS[2]]
    assert {m["From"] for m in fake.messages} == {FROM}
    # the link made absolute against NOTICE_BASE_URL: a phone cannot open a path
    assert fake.messages[0]["Body"] == f"Ann replied\nNice\n{BASE_URL}/posts/7"
    assert fake.rejected == []


def test_messaging_service_and_long_text_cut_to_the_segments(
    app_factory: Any, fake: TwilioFake
) -> None:
    service = "MG" + "a" * 32
    app = sms_app(
        app_factory,
        fake,
        NOTICE_TWILIO_FROM=None,
        NOTICE_TWILIO_MESSAGING_SERVICE_SID=service,
        NOTICE_SMS_MAX_SEGMENTS=2,
    )
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="Long", content="word " * 200,
                     url="/n/1")
        [d] = deliveries(app)
        assert d.status == "Sent"  # Twilio answers "accepted" through a service
    [message] = fake.messages
    assert message["MessagingServiceSid"] == service and "From" not in message
    body = message["Body"]
    assert len(body) == 2 * 153 and body.endswith(f"...\n{BASE_URL}/n/1")


def test_invalid_number_is_final_without_a_request(app_factory: Any, fake: TwilioFake) -> None:
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(4, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Dead", 1)
        assert "E.164" in d.last_error and NUMBERS[4] not in d.last_error
    assert fake.requests == 0


def test_number_twilio_refuses_is_final(app_factory: Any, fake: TwilioFake) -> None:
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(5, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert d.status == "Dead" and "code 21211" in d.last_error
        # Twilio's message quotes the number; ours does not
        assert NUMBERS[5] not in d.last_error
    assert fake.rejected == [(21211, f"The 'To' number {NUMBERS[5]} is not a valid phone number.")]


def test_failed_status_is_final(app_factory: Any, fake: TwilioFake) -> None:
    fake.script((201, {}, {"sid": "SM" + "1" * 32, "status": "failed", "error_code": 30006}))
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert d.status == "Dead" and d.last_error.endswith("failed (code 30006)")


def test_429_waits_its_retry_after_then_the_retry_is_sent(
    app_factory: Any, fake: TwilioFake
) -> None:
    fake.script((429, {"Retry-After": "600"}, None))
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Error", 1) and "429" in d.last_error
        delay = d.next_attempt_at - d.update_at
        assert timedelta(seconds=590) <= delay <= timedelta(seconds=660)
        state = app.notices.state()
        assert deliver(state, now=d.next_attempt_at - timedelta(seconds=1)).claimed == 0
        report = deliver(state, now=d.next_attempt_at + timedelta(seconds=1))
        assert (report.claimed, report.sent) == (1, 1)
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Sent", 2)
    assert fake.requests == 2 and len(fake.messages) == 1


def test_retry_skips_a_number_the_user_no_longer_has(
    app_factory: Any, fake: TwilioFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.script((503, {}, None))
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert d.status == "Error"
        monkeypatch.setitem(NUMBERS, 1, "+14155550199")  # the user changed their number
        deliver(app.notices.state(), now=d.next_attempt_at + timedelta(seconds=1))
        [d] = deliveries(app)
        assert d.status == "Skipped" and "no longer the user's" in d.last_error
    assert fake.requests == 1 and fake.messages == []


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_is_retried(app_factory: Any, fake: TwilioFake, status: int) -> None:
    fake.script((status, {}, None))
    app = sms_app(app_factory, fake)
    with app.app_context():
        notice_event(1, NoticeType.COMMENT, subject="s", content="c")
        [d] = deliveries(app)
        assert (d.status, d.last_error) == ("Error", f"TransientError: twilio answered {status}")
        deliver(app.notices.state(), now=d.next_attempt_at + timedelta(seconds=1))
        [d] = deliveries(app)
        assert (d.status, d.attempts) == ("Sent", 2)
    assert len(fake.messages) == 1


def test_wrong_token_is_final_and_no_secret_or_number_is_logged(
    app_factory: Any, fake: TwilioFake, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-sekrit-token-9876"
    app = sms_app(app_factory, fake, NOTICE_TWILIO_AUTH_TOKEN=wrong)
    with app.app_context():
        notice_event([1, 4, 5], NoticeType.COMMENT, subject="s", content="c")
        rows = deliveries(app)
        assert sorted(d.status for d in rows) == ["Dead", "Dead", "Dead"]
        assert any("code 20003" in d.last_error for d in rows)
        errors = " ".join(d.last_error for d in rows)
    # the fake saw the wrong token: auth is checked, and the failure is final (no retry)
    assert fake.rejected[0][0] == 20003 and fake.messages == []
    logged = caplog.text + errors
    assert "failed for good" in caplog.text  # the failures were logged...
    for secret in (wrong, TOKEN, *NUMBERS.values()):
        assert secret not in logged  # ...without the token or a phone number


def test_fallback_sms_else_email(app_factory: Any, fake: TwilioFake) -> None:
    with SMTPServer() as smtp:
        app = email_app(
            app_factory,
            smtp,
            NOTICE_SENDERS=["sms", "email"],
            NOTICE_FALLBACK={"Comment": ["sms", "email"]},
            **twilio_settings(fake),
        )
        load_numbers(app)
        with app.app_context():
            notice_event([1, 3, 4], NoticeType.COMMENT, subject="s", content="c")
            # the invalid number's email is written with its failure, sent next round
            app.notices.deliver_due()
            Notice = app.notices.Notice
            owner = {n.id: n.user_id for n in app.db.session.query(Notice)}
            rows = sorted((owner[d.notice_id], d.channel, d.status) for d in deliveries(app))
        assert rows == [
            (1, "sms", "Sent"),  # a number: sms only
            (3, "email", "Sent"),  # no number: no sms delivery, email at once
            (4, "email", "Sent"),  # an invalid number: final, then the next channel
            (4, "sms", "Dead"),
        ]
        assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
            "user3@example.com",
            "user4@example.com",
        ]
    assert [m["To"] for m in fake.messages] == [NUMBERS[1]]


def test_chain_reaches_sms_after_a_final_failure(app_factory: Any, fake: TwilioFake) -> None:
    with ChatFake(token="xoxb-chain", channels=("U2",)) as chat, SMTPServer() as smtp:
        app = email_app(
            app_factory,
            smtp,
            NOTICE_SENDERS=["slack", "sms", "email"],
            NOTICE_FALLBACK={"Comment": ["slack", "sms", "email"]},
            NOTICE_SLACK_HOSTS=["127.0.0.1"],
            NOTICE_SLACK_API_URL=chat.url + "/slack/api/",
            NOTICE_SLACK_TOKEN="xoxb-chain",
            **twilio_settings(fake),
        )
        load_numbers(app)
        with app.app_context():
            # user 1's Slack id is unknown to the workspace (final), 2's works, 3 has none
            app.notices.sender("slack").target_loader(
                lambda ids: {u: f"U{u}" for u in ids if u in (1, 2)}
            )
            notice_event([1, 2, 3], NoticeType.COMMENT, subject="s", content="c")
            app.notices.deliver_due()
            Notice = app.notices.Notice
            owner = {n.id: n.user_id for n in app.db.session.query(Notice)}
            rows = sorted((owner[d.notice_id], d.channel, d.status) for d in deliveries(app))
        assert rows == [
            (1, "slack", "Dead"),  # channel_not_found...
            (1, "sms", "Sent"),  # ...so the next channel on which user 1 has a target
            (2, "slack", "Sent"),
            (3, "email", "Sent"),  # neither a Slack id nor a number
        ]
    assert [m["To"] for m in fake.messages] == [NUMBERS[1]]


def test_capture_records_the_text_and_sends_nothing(app_factory: Any, fake: TwilioFake) -> None:
    app = sms_app(app_factory, fake)
    with app.app_context(), capture_notices(app) as outbox:
        notice_event([1, 4], NoticeType.COMMENT, subject="Hi", content="there")
        [sent] = outbox.sent(channel="sms")
        assert sent.payload == {"to": NUMBERS[1], "body": "Hi\nthere"}
        assert [d.status for d in deliveries(app)] == ["Sent", "Dead"]
    assert fake.requests == 0
