"""The APNs sender against a loopback APNs speaking HTTP/2 that verifies the ES256
provider token and the headers; delivery rows on SQLite and PostgreSQL: sends, one
provider token, dead tokens pruned, retries."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from notice import ConfigurationError, DeliveryStatus, NoticeType, notice_event
from notice.columns import utcnow
from notice.delivery import deliver
from notice.senders.apns import MAX_PAYLOAD, TOKEN_LIFETIME, APNsSender
from tests.support.emailapp import deliveries
from tests.support.mobileapp import add_device, devices
from tests.support.mobilefakes import APNsFake

TOKEN_A = "a1" * 32
TOKEN_B = "b2" * 32
APP = "org.example.app"


@pytest.fixture(scope="module")
def fake() -> Iterator[APNsFake]:
    with APNsFake() as f:
        yield f


@pytest.fixture(autouse=True)
def _fresh(fake: APNsFake) -> None:
    fake.received.clear()
    fake.rejected.clear()
    fake.unregistered.clear()
    fake.provider_tokens.clear()
    fake.delay = 0.0
    fake.stall = False
    fake.stalled = 0


def apns_config(fake: APNsFake, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "NOTICE_SENDERS": ["apns"],
        "NOTICE_APNS_KEY": fake.key_pem,
        "NOTICE_APNS_KEY_ID": fake.key_id,
        "NOTICE_APNS_TEAM_ID": fake.team_id,
        "NOTICE_APNS_URL": fake.url,
        "NOTICE_APNS_HOSTS": ["127.0.0.1"],
        "NOTICE_APNS_TIMEOUT": 5.0,
        "NOTICE_APNS_TOPICS": [APP],
    }
    config.update(extra)
    return config


@pytest.fixture
def apns_app(app_factory: Any, fake: APNsFake) -> Flask:
    app: Flask = app_factory(**apns_config(fake))
    return app


def test_a_notice_reaches_each_apns_device_over_http2(apns_app: Flask, fake: APNsFake) -> None:
    first = add_device(apns_app, 3, "apns", TOKEN_A, APP)
    add_device(apns_app, 3, "apns", TOKEN_B, APP)
    add_device(apns_app, 3, "fcm", "fcm-token")  # another platform: not this sender's
    expires = utcnow() + timedelta(hours=2)
    connections = fake.connections
    with apns_app.app_context():
        notice_event(
            3,
            NoticeType.COMMENT,
            subject="Build failed",
            content="main is red",
            url="/builds/7",
            expires_at=expires,
        )
        rows = deliveries(apns_app)
    assert [(d.channel, d.status) for d in rows] == [("apns", "Sent"), ("apns", "Sent")]
    assert fake.rejected == []
    assert sorted(t for t, _, _ in fake.received) == sorted([TOKEN_A, TOKEN_B])
    token, headers, payload = fake.received[0]
    assert headers["apns-topic"] == APP and headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-expiration"] == str(int(expires.timestamp()))
    assert payload["aps"]["alert"] == {"title": "Build failed", "body": "main is red"}
    assert payload["notice"] == {
        "notice_id": str(rows[0].notice_id),
        "type": str(NoticeType.COMMENT),
        "url": "/builds/7",
    }
    # one provider token for both sends, on one HTTP/2 connection
    assert len(fake.provider_tokens) == 1 and fake.connections == connections + 1
    used = {d.id: d.last_used_at for d in devices(apns_app)}
    assert used[first] is not None


def test_no_expiry_no_header_and_the_config_topic_as_fallback(
    app_factory: Any, fake: APNsFake
) -> None:
    app = app_factory(**apns_config(fake, NOTICE_APNS_TOPIC=APP, NOTICE_APNS_PRIORITY=5))
    add_device(app, 3, "apns", TOKEN_A)  # registered without an app_id
    with app.app_context():
        notice_event(3, subject="x", content="")
    [(_, headers, _)] = fake.received
    assert headers["apns-topic"] == APP and headers["apns-priority"] == "5"
    assert "apns-expiration" not in headers


def test_the_provider_token_is_reused_then_signed_again_before_an_hour(
    apns_app: Flask,
) -> None:
    with apns_app.app_context():
        sender: APNsSender = apns_app.notices.state().sender("apns")
    now = utcnow()
    first = sender.tokens.get(now=now)
    assert sender.tokens.get(now=now + timedelta(minutes=49)) == first
    assert TOKEN_LIFETIME <= timedelta(minutes=50)
    assert sender.tokens.get(now=now + TOKEN_LIFETIME) != first


@pytest.mark.parametrize(
    ("setup", "reason"),
    [("unregistered", "Unregistered"), ("bad", "BadDeviceToken")],
)
def test_a_dead_token_deletes_the_device_and_ends_the_delivery(
    apns_app: Flask, fake: APNsFake, setup: str, reason: str
) -> None:
    dead = TOKEN_A if setup == "unregistered" else "0f" * 8  # too short: BadDeviceToken
    fake.unregistered.add(TOKEN_A)
    gone = add_device(apns_app, 3, "apns", dead, APP)
    kept = add_device(apns_app, 3, "apns", TOKEN_B, APP)
    with apns_app.app_context():
        notice_event(3, subject="x", content="")
        rows = {d.target: d for d in deliveries(apns_app)}
    assert rows[str(gone)].status == DeliveryStatus.DEAD.value
    assert reason in rows[str(gone)].last_error and "removed" in rows[str(gone)].last_error
    assert dead not in rows[str(gone)].last_error
    assert rows[str(kept)].status == DeliveryStatus.SENT.value
    assert [d.id for d in devices(apns_app)] == [kept]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_outages_are_retried(apns_app: Flask, fake: APNsFake, status: int) -> None:
    reason = (
        b'{"reason": "TooManyRequests"}' if status == 429 else b'{"reason": "InternalServerError"}'
    )
    fake.script((status, {"retry-after": "90"}, reason))
    add_device(apns_app, 3, "apns", TOKEN_A, APP)
    with apns_app.app_context():
        before = utcnow()
        notice_event(3, subject="busy", content="")
        [row] = deliveries(apns_app)
        assert row.status == DeliveryStatus.ERROR.value
        assert timedelta(seconds=90) <= row.next_attempt_at - before < timedelta(seconds=95)
        assert deliver(apns_app.notices.state(), now=row.next_attempt_at).sent == 1
    assert [t for t, _, _ in fake.received] == [TOKEN_A] and len(devices(apns_app)) == 1


def test_a_refused_provider_token_is_signed_anew_on_the_retry(
    apns_app: Flask, fake: APNsFake
) -> None:
    add_device(apns_app, 3, "apns", TOKEN_A, APP)
    fake.script((403, {}, b'{"reason": "ExpiredProviderToken"}'))
    with apns_app.app_context():
        sender: APNsSender = apns_app.notices.state().sender("apns")
        first = sender.tokens.get()
        notice_event(3, subject="x", content="")
        [row] = deliveries(apns_app)
        assert row.status == DeliveryStatus.ERROR.value
        assert sender.tokens._token is None  # the refused one is forgotten
        assert deliver(apns_app.notices.state(), now=row.next_attempt_at).sent == 1
    assert len(fake.received) == 1 and len(fake.provider_tokens) == 2
    assert first in fake.provider_tokens


def test_other_client_errors_are_final_and_keep_the_device(
    app_factory: Any, fake: APNsFake, caplog: pytest.LogCaptureFixture
) -> None:
    # allowed by us, refused by APNs (the key is not this topic's)
    apns_app = app_factory(**apns_config(fake, NOTICE_APNS_TOPICS=[APP, "org.other.app"]))
    add_device(apns_app, 3, "apns", TOKEN_A, "org.other.app")
    with caplog.at_level(logging.DEBUG, logger="notice"), apns_app.app_context():
        notice_event(3, subject="x", content="")
        [row] = deliveries(apns_app)
    assert row.status == DeliveryStatus.DEAD.value and "TopicDisallowed" in row.last_error
    assert len(devices(apns_app)) == 1
    assert TOKEN_A not in caplog.text + row.last_error
    assert "eyJ" not in caplog.text  # no provider token


def test_a_long_body_is_trimmed_to_apns_limit(apns_app: Flask, fake: APNsFake) -> None:
    add_device(apns_app, 3, "apns", TOKEN_A, APP)
    with apns_app.app_context():
        notice_event(3, subject="long", content="é" * 5000)
        [row] = deliveries(apns_app)
    assert row.status == DeliveryStatus.SENT.value, row.last_error
    [(_, _, payload)] = fake.received
    body = payload["aps"]["alert"]["body"]
    assert body.endswith("…") and len(body) > 1000
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(raw) <= MAX_PAYLOAD


def test_an_unreachable_apns_is_transient(app_factory: Any, fake: APNsFake) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    app = app_factory(**apns_config(fake, NOTICE_APNS_URL=closed))
    add_device(app, 3, "apns", TOKEN_A, APP)
    with app.app_context():
        notice_event(3, subject="x", content="")
        [row] = deliveries(app)
    assert row.status == DeliveryStatus.ERROR.value and "cannot reach APNs" in row.last_error
    assert TOKEN_A not in row.last_error


def test_config_is_checked_at_startup(app_factory: Any, fake: APNsFake) -> None:
    with pytest.raises(ConfigurationError, match="NOTICE_APNS_KEY is not set"):
        app_factory(**apns_config(fake, NOTICE_APNS_KEY=None))
    with pytest.raises(ConfigurationError, match="NOTICE_APNS_KEY_ID"):
        app_factory(**apns_config(fake, NOTICE_APNS_KEY_ID=None))
    with pytest.raises(ConfigurationError, match="not in NOTICE_APNS_HOSTS"):
        app_factory(**apns_config(fake, NOTICE_APNS_HOSTS=["api.push.apple.com"]))
    with pytest.raises(ConfigurationError, match="NOTICE_APNS_PRIORITY"):
        app_factory(**apns_config(fake, NOTICE_APNS_PRIORITY=7))
    with pytest.raises(ConfigurationError) as caught:
        app_factory(**apns_config(fake, NOTICE_APNS_KEY="-----BEGIN PRIVATE KEY-----\nsekrit\n"))
    assert "sekrit" not in str(caught.value)


def test_a_slow_apns_is_retried(app_factory: Any, fake: APNsFake) -> None:
    app = app_factory(**apns_config(fake, NOTICE_APNS_TIMEOUT=0.5))
    add_device(app, 3, "apns", TOKEN_A, APP)
    fake.delay = 2.0
    with app.app_context():
        notice_event(3, subject="slow", content="")
        [row] = deliveries(app)
    assert row.status == DeliveryStatus.ERROR.value and "timed out" in row.last_error
    assert TOKEN_A not in row.last_error


def test_a_stalled_apns_ends_retried_by_the_send_timeout(app_factory: Any, fake: APNsFake) -> None:
    # PING frames every 0.1 s reset httpx's per-read timeout (NOTICE_APNS_TIMEOUT) for
    # ever: the engine's NOTICE_SEND_TIMEOUT watchdog is what bounds the send in total
    app = app_factory(
        **apns_config(fake, NOTICE_APNS_TIMEOUT=0.3),
        NOTICE_DISPATCH="none",
        NOTICE_SEND_TIMEOUT=1.5,
        NOTICE_CLAIM_TIMEOUT=5,
    )
    add_device(app, 3, "apns", TOKEN_A, APP)
    fake.stall = True
    with app.app_context():
        notice_event(3, subject="stalled", content="")
        report = app.notices.deliver_due()
        [row] = deliveries(app)
    assert fake.stalled == 1 and (report.claimed, report.failed) == (1, 1)
    assert (row.status, row.last_error) == (DeliveryStatus.ERROR.value, "timed out after 1.5 s")
    assert row.next_attempt_at > utcnow() and row.claim_token is None  # retried later
    fake.stall = False  # the fake drops the connection: the abandoned send ends


def test_devices_of_an_app_off_the_topic_list_are_skipped(
    app_factory: Any, fake: APNsFake
) -> None:
    app = app_factory(**apns_config(fake, NOTICE_APNS_TOPICS=[APP, "org.example.beta"]))
    add_device(app, 3, "apns", TOKEN_A, APP)
    # registered straight in the database (or before the list was narrowed)
    add_device(app, 3, "apns", TOKEN_B, "com.evil.app")
    with app.app_context():
        notice_event(3, subject="s", content="")
        rows = {d.target: d for d in deliveries(app)}
    statuses = sorted((d.status, d.last_error or "") for d in rows.values())
    assert statuses[0][0] == DeliveryStatus.SENT.value
    assert statuses[1][0] == DeliveryStatus.SKIPPED.value
    assert "not an allowed one" in statuses[1][1]
    assert [t for t, _, _ in fake.received] == [TOKEN_A]


def test_the_apns_sender_needs_a_topic(app_factory: Any, fake: APNsFake) -> None:
    with pytest.raises(ConfigurationError, match="NOTICE_APNS_TOPICS"):
        app_factory(**apns_config(fake, NOTICE_APNS_TOPICS=None))
    with pytest.raises(ConfigurationError, match="NOTICE_APNS_TOPICS"):
        app_factory(**apns_config(fake, NOTICE_APNS_TOPICS=[]))
    # NOTICE_APNS_TOPIC alone is the list
    app_factory(**apns_config(fake, NOTICE_APNS_TOPICS=None, NOTICE_APNS_TOPIC=APP))
