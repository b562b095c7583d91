import pytest

from notice.errors import NoticeError, PermanentError, TransientError
from notice.senders.sms import (
    InvalidPhoneNumber,
    classify_twilio_response,
    is_gsm7,
    truncate_sms,
    validate_e164,
)


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
