"""The FCM HTTP v1 sender against a loopback FCM and token endpoint that verify the
OAuth2 JWT-bearer grant, the Bearer token and the message JSON; delivery rows on SQLite
and PostgreSQL: sends, one cached access token, dead tokens pruned, retries."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from notice import ConfigurationError, DeliveryStatus, NoticeType, notice_event
from notice.columns import utcnow
from notice.delivery import deliver
from notice.senders.fcm import REFRESH_MARGIN, FCMSender
from tests.support.emailapp import deliveries
from tests.support.mobileapp import add_device, devices
from tests.support.mobilefakes import FCMFake
from tests.support.waiting import wait_for

TOKEN_A = "fcm-token-a:APA91b" + "a" * 40
TOKEN_B = "fcm-token-b:APA91b" + "b" * 40


@pytest.fixture(scope="module")
def fake() -> Iterator[FCMFake]:
    with FCMFake() as f:
        yield f


@pytest.fixture(autouse=True)
def _fresh(fake: FCMFake) -> None:
    fake.received.clear()
    fake.rejected.clear()
    fake.unregistered.clear()
    fake.invalid.clear()
    fake.grants = 0
    fake.expires_in = 3600
    fake.delay = 0.0


def fcm_config(fake: FCMFake, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "NOTICE_SENDERS": ["fcm"],
        "NOTICE_FCM_CREDENTIALS": fake.service_account,
        "NOTICE_FCM_URL": fake.url + "/v1/",
        "NOTICE_FCM_HOSTS": ["127.0.0.1"],
        "NOTICE_FCM_TIMEOUT": 5.0,
    }
    config.update(extra)
    return config


@pytest.fixture
def fcm_app(app_factory: Any, fake: FCMFake) -> Flask:
    app: Flask = app_factory(**fcm_config(fake))
    return app


def test_a_notice_reaches_each_fcm_device_of_its_user(fcm_app: Flask, fake: FCMFake) -> None:
    first = add_device(fcm_app, 3, "fcm", TOKEN_A, "org.example.app")
    add_device(fcm_app, 3, "fcm", TOKEN_B)
    add_device(fcm_app, 4, "fcm", "someone-else")
    add_device(fcm_app, 3, "apns", "ab" * 32)  # another platform: not this sender's
    with fcm_app.app_context():
        notice_event(
            3,
            NoticeType.COMMENT,
            subject="Build failed",
            content="main is red",
            url="/builds/7",
            data={"mobile": {"screen": "builds"}},
        )
        rows = deliveries(fcm_app)
    assert [(d.channel, d.status) for d in rows] == [("fcm", "Sent"), ("fcm", "Sent")]
    assert fake.rejected == []
    assert sorted(m["token"] for m, _ in fake.received) == sorted([TOKEN_A, TOKEN_B])
    message, headers = fake.received[0]
    assert message["notification"] == {"title": "Build failed", "body": "main is red"}
    assert message["data"] == {
        "screen": "builds",
        "notice_id": str(rows[0].notice_id),
        "type": str(NoticeType.COMMENT),
        "url": "/builds/7",
    }
    assert headers["authorization"].startswith("Bearer ya29.")
    used = {d.id: d.last_used_at for d in devices(fcm_app)}
    assert used[first] is not None and utcnow() - used[first] < timedelta(minutes=1)


def test_one_access_token_serves_many_sends_and_threads(fcm_app: Flask, fake: FCMFake) -> None:
    for user in range(1, 6):
        add_device(fcm_app, user, "fcm", f"token-{user}")
    with fcm_app.app_context():
        notice_event(list(range(1, 6)), subject="hello", content="")
        sender = fcm_app.notices.state().sender("fcm")
    assert len(fake.received) == 5 and fake.grants == 1
    # many threads asking at once while the token is due: still one fetch
    sender.tokens.forget(sender.tokens.get())
    tokens: list[str] = []
    threads = [
        threading.Thread(target=lambda: tokens.append(sender.tokens.get())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.grants == 2 and len(set(tokens)) == 1


def test_the_token_is_fetched_again_shortly_before_it_expires(
    fcm_app: Flask, fake: FCMFake
) -> None:
    with fcm_app.app_context():
        sender: FCMSender = fcm_app.notices.state().sender("fcm")
    first = sender.tokens.get()
    now = utcnow()
    assert sender.tokens.get(now=now + timedelta(minutes=50)) == first
    later = now + timedelta(hours=1) - REFRESH_MARGIN + timedelta(seconds=1)
    assert sender.tokens.get(now=later) != first and fake.grants == 2


@pytest.mark.parametrize("dead", ["unregistered", "invalid"])
def test_a_dead_token_deletes_the_device_and_ends_the_delivery(
    fcm_app: Flask, fake: FCMFake, dead: str
) -> None:
    getattr(fake, dead).add(TOKEN_A)
    gone = add_device(fcm_app, 3, "fcm", TOKEN_A)
    kept = add_device(fcm_app, 3, "fcm", TOKEN_B)
    with fcm_app.app_context():
        notice_event(3, subject="x", content="")
        rows = {d.target: d for d in deliveries(fcm_app)}
    assert rows[str(gone)].status == DeliveryStatus.DEAD.value
    assert "removed" in rows[str(gone)].last_error
    assert TOKEN_A not in rows[str(gone)].last_error
    assert rows[str(kept)].status == DeliveryStatus.SENT.value
    assert [d.id for d in devices(fcm_app)] == [kept]


def test_invalid_argument_on_another_field_keeps_the_device(fcm_app: Flask, fake: FCMFake) -> None:
    fake.script(
        (
            400,
            {"Content-Type": "application/json"},
            b'{"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [{"@type": '
            b'"type.googleapis.com/google.rpc.BadRequest", "fieldViolations": '
            b'[{"field": "message.android.ttl"}]}]}}',
        )
    )
    add_device(fcm_app, 3, "fcm", TOKEN_A)
    with fcm_app.app_context():
        notice_event(3, subject="x", content="")
        [row] = deliveries(fcm_app)
    assert row.status == DeliveryStatus.DEAD.value and len(devices(fcm_app)) == 1


@pytest.mark.parametrize(
    "answer",
    [
        (
            429,
            {"Retry-After": "120"},
            b'{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [{"@type": '
            b'"type.googleapis.com/google.firebase.fcm.v1.FcmError", '
            b'"errorCode": "QUOTA_EXCEEDED"}]}}',
        ),
        (503, {"Retry-After": "120"}, b'{"error": {"code": 503, "status": "UNAVAILABLE"}}'),
    ],
)
def test_quota_and_outages_are_retried_after_retry_after(
    fcm_app: Flask, fake: FCMFake, answer: Any
) -> None:
    fake.script(answer)
    add_device(fcm_app, 3, "fcm", TOKEN_A)
    with fcm_app.app_context():
        before = utcnow()
        notice_event(3, subject="busy", content="")
        [row] = deliveries(fcm_app)
        assert row.status == DeliveryStatus.ERROR.value
        wait = row.next_attempt_at - before
        assert timedelta(seconds=120) <= wait < timedelta(seconds=125)
        state = fcm_app.notices.state()
        assert deliver(state, now=row.next_attempt_at - timedelta(seconds=1)).claimed == 0
        assert deliver(state, now=row.next_attempt_at).sent == 1
    assert [m["token"] for m, _ in fake.received] == [TOKEN_A]
    assert len(devices(fcm_app)) == 1


def test_a_refused_access_token_is_fetched_anew_on_the_retry(fcm_app: Flask, fake: FCMFake) -> None:
    add_device(fcm_app, 3, "fcm", TOKEN_A)
    with fcm_app.app_context():
        sender = fcm_app.notices.state().sender("fcm")
        token = sender.tokens.get()
        fake.tokens.pop(token)  # revoked on the server
        notice_event(3, subject="x", content="")
        [row] = deliveries(fcm_app)
        assert row.status == DeliveryStatus.ERROR.value
        assert deliver(fcm_app.notices.state(), now=row.next_attempt_at).sent == 1
    assert fake.grants == 2 and fake.rejected == ["bearer"]


def test_a_refused_grant_is_transient_and_logs_no_secret(
    app_factory: Any, fake: FCMFake, caplog: pytest.LogCaptureFixture
) -> None:
    other = FCMFake()  # another key: the fake refuses its assertions
    account = {**other.service_account, "token_uri": fake.url + "/token"}
    app = app_factory(**fcm_config(fake, NOTICE_FCM_CREDENTIALS=account))
    add_device(app, 3, "fcm", TOKEN_A)
    with caplog.at_level(logging.DEBUG, logger="notice"), app.app_context():
        notice_event(3, subject="x", content="")
        [row] = deliveries(app)
    assert row.status == DeliveryStatus.ERROR.value and "access token" in row.last_error
    assert fake.rejected == ["assertion: InvalidSignatureError"] and fake.received == []
    logged = caplog.text + row.last_error
    for secret in (TOKEN_A, other.service_account["private_key"][40:80], "eyJ"):
        assert secret not in logged


def test_a_device_now_of_another_user_is_skipped(app_factory: Any, fake: FCMFake) -> None:
    app = app_factory(**fcm_config(fake, NOTICE_DISPATCH="none"))
    device = add_device(app, 3, "fcm", TOKEN_A)
    Device = app.notices.device_models.Device  # type: ignore[attr-defined]
    with app.app_context():
        notice_event(3, subject="private", content="")
        # before it is sent, the phone logs in as user 4 and registers the token again
        app.db.session.get(Device, device).user_id = 4  # type: ignore[attr-defined]
        app.db.session.commit()  # type: ignore[attr-defined]
        report = deliver(app.notices.state(), now=utcnow() + timedelta(minutes=5))
        [row] = deliveries(app)
    assert report.skipped == 1 and row.status == DeliveryStatus.SKIPPED.value
    assert "another user" in row.last_error and fake.received == []


def test_config_is_checked_at_startup(app_factory: Any, fake: FCMFake) -> None:
    with pytest.raises(ConfigurationError, match="NOTICE_FCM_CREDENTIALS is not set"):
        app_factory(**fcm_config(fake, NOTICE_FCM_CREDENTIALS=None))
    with pytest.raises(ConfigurationError, match="not in NOTICE_FCM_HOSTS"):
        app_factory(**fcm_config(fake, NOTICE_FCM_HOSTS=["fcm.googleapis.com"]))
    with pytest.raises(ConfigurationError, match="https"):
        app_factory(
            **fcm_config(
                fake,
                NOTICE_FCM_URL="http://fcm.example.org/v1/",
                NOTICE_FCM_HOSTS=["fcm.example.org"],
            )
        )
    broken = {**fake.service_account, "private_key": "not a key"}
    with pytest.raises(ConfigurationError) as caught:
        app_factory(**fcm_config(fake, NOTICE_FCM_CREDENTIALS=broken))
    assert "not a key" not in str(caught.value)


def test_dispatcher_threads_share_one_access_token(app_factory: Any, fake: FCMFake) -> None:
    app = app_factory(**fcm_config(fake, NOTICE_DISPATCH="thread", NOTICE_THREADS=4))
    for user in range(1, 21):
        add_device(app, user, "fcm", f"token-{user}")
    with app.app_context():
        notice_event(list(range(1, 21)), subject="to all", content="")

        def all_sent() -> bool:
            return [d.status for d in deliveries(app)] == ["Sent"] * 20

        assert wait_for(all_sent, timeout=30)
    assert len(fake.received) == 20 and fake.grants == 1


def test_a_slow_fcm_is_cut_off_at_the_total_deadline(app_factory: Any, fake: FCMFake) -> None:
    app = app_factory(**fcm_config(fake, NOTICE_FCM_TIMEOUT=0.5))
    add_device(app, 3, "fcm", TOKEN_A)
    with app.app_context():
        app.notices.state().sender("fcm").tokens.get()  # the token comes quickly
        fake.delay = 2.0
        notice_event(3, subject="slow", content="")
        [row] = deliveries(app)
    assert row.status == DeliveryStatus.ERROR.value and "timed out" in row.last_error


def test_devices_of_an_app_off_the_list_are_skipped(app_factory: Any, fake: FCMFake) -> None:
    app = app_factory(**fcm_config(fake, NOTICE_FCM_APP_IDS=["org.example.app"]))
    add_device(app, 3, "fcm", TOKEN_A, "org.example.app")
    add_device(app, 3, "fcm", TOKEN_B)  # no app_id: sent (the project decides)
    add_device(app, 3, "fcm", "fcm-token-c:APA91b", "com.evil.app")  # stored before the list
    with app.app_context():
        notice_event(3, subject="s", content="")
        rows = deliveries(app)
    assert sorted(d.status for d in rows) == ["Sent", "Sent", "Skipped"]
    [skipped] = [d for d in rows if d.status == "Skipped"]
    assert "not an allowed one" in skipped.last_error
    # a set: an earlier test's slow send may land late on the module's fake
    assert {m["token"] for m, _ in fake.received} == {TOKEN_A, TOKEN_B}
