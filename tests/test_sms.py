from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from notice.config import DEFAULTS
from notice.errors import (
    ConfigurationError,
    NoticeError,
    PermanentError,
    SkipDelivery,
    TransientError,
)
from notice.senders.sms import (
    InvalidPhoneNumber,
    SmsReceipt,
    SmsSender,
    classify_twilio_response,
    fit_sms,
    is_gsm7,
    truncate_sms,
    validate_e164,
)
from tests.support.smsprovider import RecordingProvider


def test_e164_accepts_valid() -> None:
    assert validate_e164("+14155550123") == "+14155550123"


@pytest.mark.parametrize("bad", ["14155550123", "+0123456789", "+1 415 555", "+1234", ""])
def test_e164_rejects_invalid_without_echo(bad: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as info:
        validate_e164(bad)
    assert isinstance(info.value, NoticeError)
    if bad:
        assert bad not in str(info.value)


def test_gsm7_detection() -> None:
    assert is_gsm7("Hello {world} €")
    assert not is_gsm7("Привет")


def test_short_text_untouched() -> None:
    assert truncate_sms("a" * 160) == "a" * 160
    assert truncate_sms("ж" * 70) == "ж" * 70


def test_gsm7_single_segment_cut() -> None:
    out = truncate_sms("a" * 200)
    assert len(out) == 160 and out.endswith("...")


def test_gsm7_multi_segment_uses_153() -> None:
    out = truncate_sms("a" * 400, max_segments=2)
    assert len(out) == 306 and out.endswith("...")


def test_gsm7_extension_chars_cost_two() -> None:
    out = truncate_sms("€" * 100)
    assert out == "€" * 78 + "..."


def test_ucs2_limits() -> None:
    assert truncate_sms("ж" * 100) == "ж" * 69 + "…"
    assert truncate_sms("ж" * 200, max_segments=2) == "ж" * 133 + "…"


def test_status_mapping() -> None:
    assert classify_twilio_response(201, {"status": "queued"}) == "queued"
    assert classify_twilio_response(201, {"status": "sent"}) == "sent"
    assert classify_twilio_response(200, {"status": "failed"}) == "failed"


def test_retryable_with_retry_after() -> None:
    with pytest.raises(TransientError) as info:
        classify_twilio_response(429, {}, "7")
    assert info.value.retry_after == 7.0
    with pytest.raises(TransientError):
        classify_twilio_response(503, {})


@pytest.mark.parametrize("code", [21211, 21614])
def test_invalid_number_is_final(code: int) -> None:
    with pytest.raises(PermanentError):
        classify_twilio_response(400, {"code": code})


# --- fit_sms: the link survives the cut -------------------------------------------------


def test_fit_keeps_the_link_whole() -> None:
    link = "\nhttps://example.com/n/1"
    out = fit_sms("x" * 300, link)
    assert len(out) == 160 and out == "x" * (160 - 3 - len(link)) + "..." + link


def test_fit_ucs2_text_with_link() -> None:
    link = "\nhttps://e.x/1"
    out = fit_sms("ж" * 200, link, max_segments=2)
    assert out == "ж" * (134 - 1 - len(link)) + "…" + link


def test_fit_without_cut_or_with_a_link_too_long() -> None:
    assert fit_sms("short", "\nhttps://e.x/1") == "short\nhttps://e.x/1"
    huge = "\nhttps://e.x/" + "a" * 200
    assert fit_sms("text", huge) == truncate_sms("text" + huge)


# --- the sender with another provider (the documented interface) ------------------------


def sender(**config: Any) -> SmsSender:
    app = Flask("sms")
    app.config.update(DEFAULTS)
    app.config["NOTICE_SMS_PROVIDER"] = "tests.support.smsprovider:RecordingProvider"
    app.config.update(config)
    sms = SmsSender()
    sms.init_app(app)
    # user 1's numbers: one good, one not E.164 (a user-entered value, say)
    sms.target_loader(lambda ids: {u: ["+14155550123", "4155550123"] for u in ids if u == 1})
    return sms


def notice(**fields: Any) -> SimpleNamespace:
    values = {
        "user_id": 1,
        "subject": "Hi",
        "content": "there",
        "url": None,
        "notice_type": "Comment",
    }
    values.update(fields)
    return SimpleNamespace(**values)


def test_custom_provider_gets_number_and_text() -> None:
    RecordingProvider.sent.clear()
    sms = sender()
    sms.send_to(notice(url="/n/1"), "+14155550123")  # no base URL: a path is no link
    sms.send_to(notice(url="https://docs.example/a"), "+14155550123")
    assert RecordingProvider.sent == [("+14155550123", "Hi\nthere")] * 2
    linked = sender(NOTICE_LINK_ORIGINS=["https://docs.example"], NOTICE_BASE_URL="https://a.b")
    linked.send_to(notice(url="https://docs.example/a"), "+14155550123")
    linked.send_to(notice(url="/n/1"), "+14155550123")
    assert [body for _, body in RecordingProvider.sent[2:]] == [
        "Hi\nthere\nhttps://docs.example/a",
        "Hi\nthere\nhttps://a.b/n/1",
    ]


def test_failed_receipt_is_final_and_bad_number_never_reaches_the_provider() -> None:
    RecordingProvider.sent.clear()
    sms = sender()
    RecordingProvider.answer = SmsReceipt("m2", "failed", 30003)
    try:
        with pytest.raises(PermanentError, match=r"recording reports the message failed \(code"):
            sms.send_to(notice(), "+14155550123")
        with pytest.raises(PermanentError, match="E.164") as info:
            sms.send_to(notice(), "4155550123")
        assert "4155550123" not in str(info.value)
        assert len(RecordingProvider.sent) == 1
        assert sms.preview(notice(), "+14155550123") == {"to": "+14155550123", "body": "Hi\nthere"}
        with pytest.raises(SkipDelivery):
            sms.send(notice())
    finally:
        RecordingProvider.answer = SmsReceipt("m1", "queued")


def test_a_number_no_longer_the_users_is_skipped() -> None:
    RecordingProvider.sent.clear()
    sms = sender()
    for user, number in ((1, "+14155550999"), (2, "+14155550123")):
        with pytest.raises(SkipDelivery, match="no longer the user's"):
            sms.send_to(notice(user_id=user), number)
    # a batch: one loader call, then each send checked against it
    calls: list[list[Any]] = []
    sms.target_loader(lambda ids: calls.append(ids) or {"1": "+14155550123"})
    sms.prepare([(notice(), "+14155550123"), (notice(user_id=2), "+14155550123")])
    sms.send_to(notice(), "+14155550123")  # "1" and 1: user ids compare as text
    with pytest.raises(SkipDelivery):
        sms.send_to(notice(user_id=2), "+14155550123")
    sms.close()
    assert calls == [[1, 2]] and RecordingProvider.sent == [("+14155550123", "Hi\nthere")]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_SMS_MAX_SEGMENTS": 0}, "NOTICE_SMS_MAX_SEGMENTS"),
        ({"NOTICE_SMS_MAX_SEGMENTS": True}, "NOTICE_SMS_MAX_SEGMENTS"),
        ({"NOTICE_SMS_PROVIDER": "nexmo"}, "NOTICE_SMS_PROVIDER"),
        ({"NOTICE_SMS_PROVIDER": "tests.support.smsprovider:Recorded"}, "not a notice.sen"),
        ({"NOTICE_SMS_PROVIDER": "tests.nowhere:X"}, "cannot load the SMS provider"),
        ({"NOTICE_SMS_TIMEOUT": 0}, "NOTICE_SMS_TIMEOUT"),
        ({"NOTICE_SMS_HOSTS": "api.twilio.com"}, "NOTICE_SMS_HOSTS"),
    ],
)
def test_bad_settings_are_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        sender(**config)


def test_check_url_allows_http_only_to_loopback() -> None:
    provider = RecordingProvider()
    provider.hosts = ("127.0.0.1", "sms.example", "evil.example")
    assert provider.check_url("http://127.0.0.1:9/x", "K") == "http://127.0.0.1:9/x"
    assert provider.check_url("https://sms.example", "K") == "https://sms.example"
    with pytest.raises(ConfigurationError, match="must be https"):
        provider.check_url("http://evil.example/", "K")
    with pytest.raises(ConfigurationError, match="not in NOTICE_SMS_HOSTS"):
        provider.check_url("https://other.example/", "K")
