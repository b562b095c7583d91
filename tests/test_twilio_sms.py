"""The Twilio provider against the loopback fake: settings, the total deadline,
redirects and odd answers (the delivery rows are in test_sms_delivery.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from notice.config import DEFAULTS
from notice.errors import ConfigurationError, PermanentError, TransientError
from notice.senders.http import TimedOut
from notice.senders.sms import SmsReceipt
from notice.senders.twilio_sms import TwilioProvider
from tests.support.twiliofake import TwilioFake

TOKEN = "provider-sekrit-token"
TO = "+447700900123"


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(token=TOKEN) as f:
        yield f


def provider(url: str, sid: str = "AC" + "0" * 32, **config: Any) -> TwilioProvider:
    app = Flask("twilio")
    app.config.update(DEFAULTS)
    app.config.update(
        NOTICE_SMS_HOSTS=["127.0.0.1"],
        NOTICE_TWILIO_API_URL=url,
        NOTICE_TWILIO_ACCOUNT_SID=sid,
        NOTICE_TWILIO_AUTH_TOKEN=TOKEN,
        NOTICE_TWILIO_FROM="Acme",
    )
    app.config.update(config)
    twilio = TwilioProvider()
    twilio.init_app(app)
    return twilio


def test_form_fields_and_unicode_body_reach_the_fake(fake: TwilioFake) -> None:
    receipt = provider(fake.url).send(TO, "Grüße — 👋 & =+")
    assert receipt == SmsReceipt("SM" + "0" * 31 + "1", "queued")
    assert fake.messages == [{"To": TO, "From": "Acme", "Body": "Grüße — 👋 & =+"}]


def test_twilio_environment_does_not_move_the_api(
    fake: TwilioFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    # twilio's Client would send to 127.0.0.1.us1.ie1 with these (its region routing)
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    assert provider(fake.url).send(TO, "x").status == "queued"
    assert len(fake.messages) == 1


def test_twilio_error_does_not_carry_the_number(fake: TwilioFake) -> None:
    fake.invalid.add(TO)
    with pytest.raises(PermanentError) as info:
        provider(fake.url).send(TO, "x")
    # Twilio's exception (quoting the number) is neither the cause nor the context
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert TO not in str(info.value)


def test_retry_after_as_an_http_date(fake: TwilioFake) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    fake.script((503, {"Retry-After": when}, None))
    with pytest.raises(TransientError) as info:
        provider(fake.url).send(TO, "x")
    assert info.value.retry_after is not None and 100 <= info.value.retry_after <= 121


def test_redirect_is_final_and_not_followed(fake: TwilioFake) -> None:
    fake.script((302, {"Location": fake.url + "/elsewhere"}, b""))
    with pytest.raises(PermanentError, match="twilio answered 302"):
        provider(fake.url).send(TO, "x")
    assert fake.requests == 1


def test_created_with_an_unreadable_answer_is_not_sent_twice(fake: TwilioFake) -> None:
    fake.script((201, {}, b"<html>"))
    assert provider(fake.url).send(TO, "x").status == "queued"
    assert fake.requests == 1


def test_silent_api_times_out_within_the_deadline() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        twilio = provider(url, NOTICE_SMS_TIMEOUT=0.5)
        start = time.monotonic()
        with pytest.raises(TimedOut):
            twilio.send(TO, "x")
        assert time.monotonic() - start < 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_TWILIO_ACCOUNT_SID": "AC123"}, "NOTICE_TWILIO_ACCOUNT_SID"),
        ({"NOTICE_TWILIO_AUTH_TOKEN": ""}, "NOTICE_TWILIO_AUTH_TOKEN"),
        ({"NOTICE_TWILIO_FROM": None}, "set one of NOTICE_TWILIO_FROM"),
        ({"NOTICE_TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32}, "set one of"),
        ({"NOTICE_TWILIO_FROM": "+1 415"}, "NOTICE_TWILIO_FROM"),
        ({"NOTICE_TWILIO_FROM": "TooLongSenderId"}, "NOTICE_TWILIO_FROM"),
        (
            {"NOTICE_TWILIO_FROM": None, "NOTICE_TWILIO_MESSAGING_SERVICE_SID": "MG1"},
            "NOTICE_TWILIO_MESSAGING_SERVICE_SID",
        ),
        ({"NOTICE_TWILIO_API_URL": "http://api.twilio.com"}, "must be https"),
        ({"NOTICE_SMS_HOSTS": ["api.twilio.com"]}, "not in NOTICE_SMS_HOSTS"),
    ],
)
def test_bad_settings_are_refused_without_the_token(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        provider("http://127.0.0.1:9", **config)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("source", ["+14155550100", "12345", "Acme Inc"])
def test_senders_twilio_accepts(source: str) -> None:
    assert provider("http://127.0.0.1:9", NOTICE_TWILIO_FROM=source).sender == {"from_": source}
