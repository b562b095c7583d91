"""The webpush sender end to end against a strict loopback push service, the VAPID key
config, and the logged-in user's subscription endpoints."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import ConfigurationError, DeliveryStatus, Notices, notice_event
from notice.columns import utcnow
from notice.config import DEFAULTS
from notice.delivery import deliver
from notice.errors import EndpointRefused
from notice.push.config import AllowList, origin
from notice.push.vapid import load_private_key
from notice.senders.http import retry_after
from notice.senders.webpush import MAX_PAYLOAD, fit_payload
from tests.support.pushapp import (
    SUBJECT,
    add_device,
    deliveries,
    login,
    push_config,
    use_session_login,
    vapid_keys,
)
from tests.support.pushservice import PushService
from tests.support.waiting import wait_for
from tests.support.webhookserver import WebhookServer


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        svc.timeout_sleep = 1.0
        yield svc


@pytest.fixture
def push_app(app_factory: Any, service: PushService) -> Any:
    app = app_factory(**push_config(service))
    use_session_login(app)
    return app


def _subs(app: Any) -> list[Any]:
    PS = app.notices.push_models.PushSubscription
    app.db.session.expire_all()
    return list(app.db.session.execute(sa.select(PS).order_by(PS.id)).scalars())


# --- end to end ---------------------------------------------------------------------


def test_push_reaches_the_browser_decrypted_with_valid_vapid(push_app, service):
    client = push_app.test_client()
    headers = login(client, 7)
    browser = service.new_subscription("alice")
    resp = client.post("/notices/push/subscribe", json=browser, headers=headers)
    assert resp.status_code == 201, resp.json
    assert client.post("/notices/push/subscribe", json=browser, headers=headers).status_code == 200

    with push_app.app_context():
        notice = notice_event(
            7, "Comment", subject="Ana commented", content="Nice graph", url="/graphs/3"
        )
        [msg] = service.received
        assert msg.json() == {
            "title": "Ana commented",
            "body": "Nice graph",
            "url": "/graphs/3",
            "icon": None,
            "id": notice.id,
            "type": "Comment",
        }
        assert msg.token == PushService.token_of(browser)
        assert msg.claims["aud"] == service.origin
        assert msg.claims["sub"] == SUBJECT
        assert time.time() < msg.claims["exp"] <= time.time() + 15 * 60
        assert msg.headers["TTL"] == "86400"
        assert msg.headers["Urgency"] == "normal"
        [delivery] = deliveries(push_app)
        assert delivery.status == DeliveryStatus.SENT.value
        [sub] = _subs(push_app)
        assert delivery.target == str(sub.id)
        assert sub.last_success_at is not None and sub.failure_count == 0


def test_ttl_urgency_topic_and_icon_per_notice(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_PUSH_TTL=600, NOTICE_PUSH_ICON="/i.png"))
    add_device(app, 1, service.new_subscription())
    with app.app_context():
        notice_event(1, subject="default", content="")
        notice_event(
            1,
            subject="urgent",
            content="",
            data={"webpush": {"ttl": 30, "urgency": "high", "topic": "graph-7", "icon": "/b.png"}},
        )
    first, second = service.received
    assert (first.ttl, first.headers["Urgency"], "Topic" in first.headers) == (600, "normal", False)
    assert first.json()["icon"] == "/i.png"
    assert (second.ttl, second.headers["Urgency"], second.headers["Topic"]) == (
        30,
        "high",
        "graph-7",
    )
    assert second.json()["icon"] == "/b.png"


def test_each_push_signs_fresh_claims_for_its_own_origin(app_factory, service):
    with PushService(vapid_keys().public_key) as other:
        app = app_factory(
            **push_config(service, NOTICE_PUSH_ALLOWED_HOSTS=[service.origin, other.origin])
        )
        add_device(app, 1, service.new_subscription())
        add_device(app, 1, other.new_subscription())
        with app.app_context():
            notice_event(1, subject="one", content="")
            notice_event(1, subject="two", content="")
            statuses = {d.status for d in deliveries(app)}
        assert statuses == {"Sent"}
        assert [m.claims["aud"] for m in service.received] == [service.origin] * 2
        assert [m.claims["aud"] for m in other.received] == [other.origin] * 2


def test_aud_is_the_normalised_origin_of_the_endpoint(app_factory, service):
    port = service.origin.rpartition(":")[2]
    # a push service checks aud against its own origin exactly: lower-case host
    service.audience = f"http://localhost:{port}"
    app = app_factory(**push_config(service, NOTICE_PUSH_ALLOWED_HOSTS=[service.audience]))
    browser = service.new_subscription()
    add_device(
        app,
        1,
        {
            **browser,
            "endpoint": browser["endpoint"].replace(service.origin, f"HTTP://LocalHost:{port}"),
        },
    )
    with app.app_context():
        notice_event(1, subject="one", content="")
        [delivery] = deliveries(app)
    assert delivery.status == DeliveryStatus.SENT.value, delivery.last_error
    [msg] = service.received
    assert msg.claims["aud"] == f"http://localhost:{port}"


@pytest.mark.parametrize(
    ("endpoint", "aud"),
    [
        ("https://Push.Example.com:443/x", "https://push.example.com"),
        ("HTTPS://push.example.com/x?y#z", "https://push.example.com"),
        ("https://push.example.com:8443/x", "https://push.example.com:8443"),
        ("http://Push.Example.com:80/x", "http://push.example.com"),
        ("https://[::1]:443/x", "https://[::1]"),
    ],
)
def test_origin_is_normalised(endpoint, aud):
    assert origin(endpoint) == aud


def test_only_same_site_paths_and_allowed_origins_are_push_links(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_LINK_ORIGINS=["https://docs.example.org"]))
    add_device(app, 1, service.new_subscription())
    urls = {
        "/posts/1": "/posts/1",
        "https://docs.example.org/a": "https://docs.example.org/a",
        "//evil.example/x": None,
        "/\\evil.example": None,
        "javascript:alert(1)": None,
        "https://other.example/x": None,
    }
    with app.app_context():
        for url in urls:
            notice_event(1, subject=url, content="", url=url)
    assert {m.json()["title"]: m.json()["url"] for m in service.received} == urls


def test_get_actions_are_notification_buttons_with_safe_links(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_LINK_ORIGINS=["https://docs.example.org"]))
    add_device(app, 1, service.new_subscription())
    actions = [
        {"label": "Read", "url": "https://docs.example.org/a"},
        {"label": "Approve", "url": "/approve", "method": "POST"},
        {"label": "Reply", "url": "/posts/1#reply", "method": "GET"},
    ]
    with app.app_context():
        notice_event(1, subject="with", content="", actions=actions)
        notice_event(1, subject="without", content="")
    by_title = {m.json()["title"]: m.json() for m in service.received}
    assert by_title["with"]["actions"] == [
        {"title": "Read", "url": "https://docs.example.org/a"},
        {"title": "Reply", "url": "/posts/1#reply"},
    ]
    assert "actions" not in by_title["without"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"ttl": "60"}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": 28 * 24 * 3600 + 1}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"urgency": "urgent"}, "urgency"),
        ({"topic": "has space"}, "topic"),
        ({"topic": "t" * 33}, "topic"),
        ({"icon": 7}, "icon"),
        ({"icon": "javascript:alert(1)"}, "icon"),
        ({"icon": "//evil.example/i.png"}, "icon"),
        ("high", "webpush"),
    ],
)
def test_bad_push_options_are_refused_at_publish(push_app, service, options, field):
    add_device(push_app, 1, service.new_subscription())
    with push_app.app_context():
        with pytest.raises(ValueError, match=field):
            notice_event(1, subject="s", content="", data={"webpush": options})
        Notice = push_app.notices.models.Notice
        assert push_app.db.session.scalar(sa.select(sa.func.count()).select_from(Notice)) == 0
        assert deliveries(push_app) == []
    assert service.attempts == []


def test_push_options_at_the_limits_are_accepted(push_app, service):
    add_device(push_app, 1, service.new_subscription())
    with push_app.app_context():
        notice_event(
            1,
            subject="s",
            content="",
            data={
                "webpush": {
                    "ttl": 28 * 24 * 3600,
                    "urgency": "very-low",
                    "topic": "t" * 32,
                    "icon": "https://cdn.example/i.png",
                }
            },
        )
        notice_event(1, subject="nones", content="", data={"webpush": {"ttl": None}})
    first, second = service.received
    assert (first.ttl, first.headers["Urgency"], first.headers["Topic"]) == (
        28 * 24 * 3600,
        "very-low",
        "t" * 32,
    )
    assert first.json()["icon"] == "https://cdn.example/i.png"
    assert second.ttl == 86_400


def test_three_devices_are_three_independent_deliveries(push_app, service):
    browsers = [service.new_subscription(f"dev{i}") for i in range(3)]
    ids = [add_device(push_app, 5, b) for b in browsers]
    service.script(PushService.token_of(browsers[1]), [503])
    with push_app.app_context():
        notice_event(5, subject="hello", content="")
        rows = deliveries(push_app)
    assert sorted(int(d.target) for d in rows) == ids
    by_target = {int(d.target): d.status for d in rows}
    assert by_target == {ids[0]: "Sent", ids[1]: "Error", ids[2]: "Sent"}
    assert sorted(m.token for m in service.received) == sorted(
        PushService.token_of(b) for i, b in enumerate(browsers) if i != 1
    )


def test_user_without_devices_gets_no_push_delivery(push_app):
    with push_app.app_context():
        notice_event(9, subject="inbox only", content="")
        assert deliveries(push_app) == []


# --- responses ----------------------------------------------------------------------


@pytest.mark.parametrize("gone", ["mark_gone", 404])
def test_gone_subscription_is_deleted_and_not_retried(push_app, service, gone):
    browser = service.new_subscription()
    add_device(push_app, 3, browser)
    token = PushService.token_of(browser)
    if gone == "mark_gone":
        service.mark_gone(token)
    else:
        service.script(token, [404])
    with push_app.app_context():
        notice_event(3, subject="anyone there?", content="")
        [delivery] = deliveries(push_app)
        assert delivery.status == DeliveryStatus.DEAD.value
        assert "subscription removed" in delivery.last_error
        assert _subs(push_app) == []
        notice_event(3, subject="again", content="")
        assert len(deliveries(push_app)) == 1  # no device left, no new delivery
    assert service.attempts_for(token) == [410 if gone == "mark_gone" else 404]


def test_429_is_retried_after_retry_after_and_not_before(push_app, service):
    browser = service.new_subscription()
    add_device(push_app, 3, browser)
    token = PushService.token_of(browser)
    service.script(token, [(429, {"Retry-After": "120"})])
    with push_app.app_context():
        before = utcnow()
        notice_event(3, subject="busy", content="")
        [delivery] = deliveries(push_app)
        assert delivery.status == DeliveryStatus.ERROR.value
        wait = delivery.next_attempt_at - before
        assert timedelta(seconds=120) <= wait < timedelta(seconds=125)
        state = push_app.notices.state()
        early = deliver(state, now=delivery.next_attempt_at - timedelta(seconds=1))
        assert early.claimed == 0 and service.attempts_for(token) == [429]
        report = deliver(state, now=delivery.next_attempt_at)
        assert report.sent == 1
    assert service.attempts_for(token) == [429, 201]
    assert service.received[0].json()["title"] == "busy"


def test_timeout_is_retried(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_PUSH_TIMEOUT=0.3))
    browser = service.new_subscription()
    add_device(app, 3, browser)
    token = PushService.token_of(browser)
    service.script(token, ["timeout"])
    with app.app_context():
        notice_event(3, subject="slow", content="")
        [delivery] = deliveries(app)
        assert delivery.status == DeliveryStatus.ERROR.value
        assert "timed out" in delivery.last_error
        assert _subs(app)[0].failure_count == 1
        report = deliver(app.notices.state(), now=delivery.next_attempt_at)
        assert report.sent == 1
        assert _subs(app)[0].failure_count == 0
    assert service.attempts_for(token) == ["timeout", 201]


def test_server_error_and_connection_error_are_transient(app_factory, service):
    app = app_factory(**push_config(service))
    browser = service.new_subscription()
    add_device(app, 3, browser)
    service.script(PushService.token_of(browser), [500])
    with app.app_context():
        notice_event(3, subject="first", content="")
        service.stop()  # nothing listens on the port any more
        notice_event(3, subject="second", content="")
        rows = deliveries(app)
    assert [d.status for d in rows] == ["Error", "Error"]
    assert "500" in rows[0].last_error
    assert "cannot reach" in rows[1].last_error


@pytest.mark.parametrize("status", [400, 403, 413])
def test_other_client_errors_are_final(push_app, service, status):
    browser = service.new_subscription()
    add_device(push_app, 3, browser)
    service.script(PushService.token_of(browser), [status])
    with push_app.app_context():
        notice_event(3, subject="bad", content="")
        [delivery] = deliveries(push_app)
        assert delivery.status == DeliveryStatus.DEAD.value
        assert str(status) in delivery.last_error
        assert _subs(push_app)[0].failure_count == 1


def test_long_body_is_trimmed_to_fit_and_accepted(push_app, service):
    add_device(push_app, 3, service.new_subscription())
    with push_app.app_context():
        notice_event(3, subject="long", content="é" * 5000)
        [delivery] = deliveries(push_app)
    assert delivery.status == "Sent"
    [msg] = service.received
    assert len(msg.payload) <= MAX_PAYLOAD and len(msg.body) <= 4096
    body = msg.json()["body"]
    assert body.endswith("…") and body[:-1] == "é" * (len(body) - 1)


def test_payload_that_cannot_fit_fails_before_sending(push_app, service):
    browser = service.new_subscription()
    add_device(push_app, 3, browser)
    with push_app.app_context():
        # the longest url and icon publish accepts, together over the limit
        notice_event(
            3,
            subject="x",
            url="/" + "u" * 2047,
            data={"webpush": {"icon": "/" + "i" * 2047}},
            content="",
        )
        [delivery] = deliveries(push_app)
    assert delivery.status == DeliveryStatus.DEAD.value
    assert "limit" in delivery.last_error
    assert service.attempts_for(PushService.token_of(browser)) == []


def test_fit_payload_uses_the_whole_budget():
    exact = fit_payload({"title": "t", "body": "b" * 10_000})
    assert len(exact) == MAX_PAYLOAD
    assert fit_payload({"title": "t", "body": "short"}) == b'{"title":"t","body":"short"}'


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after("30") == 30.0
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert 55 <= (retry_after(http_date) or 0) <= 61
    assert retry_after("soon") is None and retry_after(None) is None


# --- allow-list ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://evil.example/push/abc",
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:8443/fcm/send/abc",
        "https://user@fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com.evil.example/x",
        "http://127.0.0.1:1/push/abc",
        "file:///etc/passwd",
        "not a url",
        # urlsplit sees *.notify.windows.com, the HTTP client connects to 169.254.169.254
        "https://169.254.169.254\\.notify.windows.com/latest",
        "https://fcm.googleapis.com%2f@evil.example/x",
        "https://db5p.notify.windows.com\t/w/",
    ],
)
def test_subscribe_refuses_endpoints_outside_the_allow_list(push_app, service, endpoint):
    client = push_app.test_client()
    headers = login(client, 1)
    browser = {**service.new_subscription(), "endpoint": endpoint}
    resp = client.post("/notices/push/subscribe", json=browser, headers=headers)
    assert resp.status_code == 400
    assert resp.json["error"] == "bad_subscription"
    with push_app.app_context():
        assert _subs(push_app) == []


def test_default_allow_list_takes_the_big_push_services():
    allow = AllowList.parse(DEFAULTS["NOTICE_PUSH_ALLOWED_HOSTS"])
    for url in (
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/abc",
        "https://db5p.notify.windows.com/w/?token=abc",
        "https://web.push.apple.com/QGx",
    ):
        assert allow.check(url) == url
    with pytest.raises(EndpointRefused):
        allow.check("https://notify.windows.com.evil.example/x")


def test_stored_endpoint_outside_the_allow_list_is_never_posted_to(app_factory, service):
    with PushService(vapid_keys().public_key) as stranger:
        app = app_factory(**push_config(service))  # stranger's origin is not allowed
        browser = stranger.new_subscription()
        add_device(app, 3, browser)
        with app.app_context():
            notice_event(3, subject="x", content="")
            [delivery] = deliveries(app)
        assert delivery.status == DeliveryStatus.DEAD.value
        assert "refused" in delivery.last_error
        assert stranger.attempts == []


# --- VAPID key config ---------------------------------------------------------------


def _start(**config: Any) -> Flask:
    """Only ``init_app``: these tests never reach the database."""
    app = Flask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI="sqlite://", **config)
    db = SQLAlchemy()
    db.init_app(app)
    Notices(db=db).init_app(app)
    return app


def _forms(keys: Any, tmp_path: Any) -> dict[str, str]:
    pem = keys.private_pem()
    path = tmp_path / "vapid.pem"
    path.write_text(pem)
    der = keys.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return {
        "path": str(path),
        "pem": pem,
        "pem_escaped": pem.replace("\n", "\\n"),
        "raw": keys.private_raw(),
        "der": base64.urlsafe_b64encode(der).decode().rstrip("="),
    }


@pytest.mark.parametrize("form", ["path", "pem", "pem_escaped", "raw", "der"])
def test_private_key_forms_all_load_the_same_key(tmp_path, form):
    keys = vapid_keys()
    assert load_private_key(_forms(keys, tmp_path)[form]).public_key == keys.public_key


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _p384_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "bad",
    [
        "secretbutnotakey!!",
        base64.urlsafe_b64encode(b"\x00" * 32).decode(),  # scalar 0 is not a key
        base64.urlsafe_b64encode(b"x" * 31).decode(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        "rsa",
        "p384",
    ],
)
def test_malformed_vapid_key_fails_at_startup_without_echoing_it(service, bad):
    value = {"rsa": _rsa_pem(), "p384": _p384_pem()}.get(bad, bad)
    with pytest.raises(ConfigurationError) as exc:
        _start(**push_config(service, NOTICE_VAPID_PRIVATE_KEY=value))
    message = str(exc.value)
    assert "NOTICE_VAPID_PRIVATE_KEY" in message
    assert value.strip() not in message


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("NOTICE_VAPID_PRIVATE_KEY", None, "NOTICE_VAPID_PRIVATE_KEY is not set"),
        ("NOTICE_VAPID_SUBJECT", None, "NOTICE_VAPID_SUBJECT is required"),
        ("NOTICE_VAPID_SUBJECT", "ops@example.org", "mailto:"),
        ("NOTICE_VAPID_PUBLIC_KEY", "BAAAA", "does not match"),
        ("NOTICE_PUSH_ALLOWED_HOSTS", "fcm.googleapis.com", "list"),
        ("NOTICE_PUSH_ALLOWED_HOSTS", ["bad host!"], "neither"),
        ("NOTICE_PUSH_URGENCY", "asap", "NOTICE_PUSH_URGENCY"),
        ("NOTICE_PUSH_TIMEOUT", 0, "NOTICE_PUSH_TIMEOUT"),
        ("NOTICE_API_TOKENS", ["short"], "16 characters"),
    ],
)
def test_bad_push_config_fails_at_startup(service, key, value, needle):
    with pytest.raises(ConfigurationError, match=needle):
        _start(**push_config(service, **{key: value}))


def test_vapid_keys_command_prints_working_config_lines(push_app, tmp_path):
    runner = push_app.test_cli_runner()
    result = runner.invoke(args=["notice", "vapid-keys"])
    assert result.exit_code == 0, result.output
    lines = dict(
        line.split(" = ", 1) for line in result.output.splitlines() if line.startswith("NOTICE_")
    )
    private = lines["NOTICE_VAPID_PRIVATE_KEY"].strip('"')
    public = lines["NOTICE_VAPID_PUBLIC_KEY"].strip('"')
    assert load_private_key(private).public_key == public
    pem = tmp_path / "k.pem"
    result = runner.invoke(args=["notice", "vapid-keys", "--pem", str(pem)])
    assert result.exit_code == 0
    assert pem.stat().st_mode & 0o077 == 0
    assert str(pem) in result.output and "BEGIN" not in result.output
    assert runner.invoke(args=["notice", "vapid-keys", "--pem", str(pem)]).exit_code != 0


# --- the user's subscription endpoints ----------------------------------------------


def test_push_key_endpoint(push_app, app_factory):
    client = push_app.test_client()
    assert client.get("/notices/push/key").json == {"public_key": vapid_keys().public_key}
    plain = app_factory()
    assert plain.test_client().get("/notices/push/key").status_code == 404


def test_subscribe_needs_login_and_csrf(push_app, service):
    client = push_app.test_client()
    browser = service.new_subscription()
    assert client.post("/notices/push/subscribe", json=browser).status_code == 401
    login(client, 1)
    assert client.post("/notices/push/subscribe", json=browser).status_code == 400
    assert (
        client.post(
            "/notices/push/subscribe", json=browser, headers={"X-CSRFToken": "wrong"}
        ).status_code
        == 400
    )
    with push_app.app_context():
        assert _subs(push_app) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda b: {"endpoint": b["endpoint"]},
        lambda b: {**b, "keys": {**b["keys"], "p256dh": "AAAA"}},
        lambda b: {**b, "keys": {**b["keys"], "auth": "c2hvcnQ"}},
        lambda b: [b],
    ],
)
def test_subscribe_rejects_malformed_subscriptions(push_app, service, change):
    client = push_app.test_client()
    headers = login(client, 1)
    resp = client.post(
        "/notices/push/subscribe", json=change(service.new_subscription()), headers=headers
    )
    assert resp.status_code == 400


def test_known_endpoint_moves_only_with_the_same_keys(push_app, service):
    browser = service.new_subscription()
    client = push_app.test_client()
    headers = login(client, 1)
    assert client.post("/notices/push/subscribe", json=browser, headers=headers).status_code == 201
    headers = login(client, 2)  # someone else logs in on the same browser
    assert client.post("/notices/push/subscribe", json=browser, headers=headers).status_code == 200
    forged = {**browser, "keys": service.new_subscription()["keys"]}
    assert client.post("/notices/push/subscribe", json=forged, headers=headers).status_code == 400
    with push_app.app_context():
        [sub] = _subs(push_app)
        assert sub.user_id == 2 and sub.auth == browser["keys"]["auth"]


def test_unsubscribe_is_owner_only(push_app, service):
    browser = service.new_subscription()
    add_device(push_app, 1, browser)
    client = push_app.test_client()
    headers = login(client, 2)
    resp = client.post(
        "/notices/push/unsubscribe", json={"endpoint": browser["endpoint"]}, headers=headers
    )
    assert resp.status_code == 404
    assert client.get("/notices/push/subscriptions").json == {"subscriptions": []}
    headers = login(client, 1)
    assert client.post("/notices/push/unsubscribe", json={}, headers=headers).status_code == 400
    [mine] = client.get("/notices/push/subscriptions").json["subscriptions"]
    assert mine["endpoint"] == browser["endpoint"]
    resp = client.post(
        "/notices/push/unsubscribe", json={"endpoint": browser["endpoint"]}, headers=headers
    )
    assert resp.status_code == 200
    with push_app.app_context():
        assert _subs(push_app) == []


def test_resubscribe_moves_the_device_and_keeps_its_topics(push_app, service):
    old = service.new_subscription("old")
    new = service.new_subscription("new")
    sub_id = add_device(push_app, 4, old)
    with push_app.app_context():
        push_app.notices.topics.create("graph:1")
        push_app.notices.topics.subscribe("graph:1", push_subscription_id=sub_id)
    client = push_app.test_client()  # the service worker: no session, no CSRF token
    body = {"old_endpoint": old["endpoint"], "old_auth": new["keys"]["auth"], "subscription": new}
    assert client.post("/notices/push/resubscribe", json=body).status_code == 404
    body["old_auth"] = old["keys"]["auth"]
    resp = client.post("/notices/push/resubscribe", json=body)
    assert resp.status_code == 200 and resp.json["id"] == sub_id
    with push_app.app_context():
        [sub] = _subs(push_app)
        assert (sub.user_id, sub.endpoint) == (4, new["endpoint"])
        push_app.notices.publish("graph:1", subject="moved")
    assert [m.token for m in service.received] == [PushService.token_of(new)]


def test_resubscribe_cannot_take_over_another_users_device(push_app, service):
    """Knowing a victim's endpoint must not let a user re-key it or move it."""
    attacker, victim = service.new_subscription("a"), service.new_subscription("v")
    add_device(push_app, 2, attacker)
    add_device(push_app, 1, victim)
    client = push_app.test_client()
    hijack = {**victim, "keys": attacker["keys"]}
    body = {
        "old_endpoint": attacker["endpoint"],
        "old_auth": attacker["keys"]["auth"],
        "subscription": hijack,
    }
    assert client.post("/notices/push/resubscribe", json=body).status_code == 404
    with push_app.app_context():
        subs = {s.user_id: s for s in _subs(push_app)}
        assert subs[1].endpoint == victim["endpoint"]
        assert subs[1].auth == victim["keys"]["auth"].rstrip("=")
        assert subs[2].endpoint == attacker["endpoint"]
        notice_event(1, subject="for the victim", content="")
    assert [m.token for m in service.received] == [PushService.token_of(victim)]


def test_resubscribe_with_a_non_ascii_secret_is_404_not_500(push_app, service):
    old, new = service.new_subscription(), service.new_subscription()
    add_device(push_app, 4, old)
    body = {"old_endpoint": old["endpoint"], "old_auth": "é", "subscription": new}
    assert push_app.test_client().post("/notices/push/resubscribe", json=body).status_code == 404


def test_oldest_devices_are_dropped_beyond_the_limit(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_PUSH_MAX_SUBSCRIPTIONS=2))
    use_session_login(app)
    client = app.test_client()
    headers = login(client, 1)
    browsers = [service.new_subscription() for _ in range(3)]
    for browser in browsers:
        assert (
            client.post("/notices/push/subscribe", json=browser, headers=headers).status_code == 201
        )
    with app.app_context():
        assert [s.endpoint for s in _subs(app)] == [b["endpoint"] for b in browsers[1:]]


def test_device_removed_before_sending_is_skipped(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_DISPATCH="none"))
    sub_id = add_device(app, 3, service.new_subscription())
    with app.app_context():
        notice_event(3, subject="queued", content="")
        PS = app.notices.push_models.PushSubscription
        app.db.session.execute(sa.delete(PS).where(PS.id == sub_id))
        app.db.session.commit()
        report = deliver(app.notices.state(), now=utcnow() + timedelta(minutes=5))
        [delivery] = deliveries(app)
    assert report.skipped == 1 and delivery.status == DeliveryStatus.SKIPPED.value
    assert delivery.last_error == f"SkipDelivery: push subscription {sub_id} is gone"
    assert service.attempts == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_retry_for_a_removed_device_never_reaches_the_next_users_device(push_app, service):
    """SQLite handed a deleted row's id (the largest) to the next row: a retry queued for
    user 1's removed device went to user 2's new one, encrypted for user 2's browser."""
    mine, theirs = service.new_subscription("mine"), service.new_subscription("theirs")
    service.script(PushService.token_of(mine), [503])
    client = push_app.test_client()
    headers = login(client, 1)
    resp = client.post("/notices/push/subscribe", json=mine, headers=headers)
    assert resp.status_code == 201
    old_id = resp.json["id"]
    with push_app.app_context():
        notice_event(1, subject="private to user 1", content="")
        [delivery] = deliveries(push_app)
        assert (delivery.status, delivery.target) == ("Error", str(old_id))
        retry_at = delivery.next_attempt_at
    unsubscribe = {"endpoint": mine["endpoint"]}
    resp = client.post("/notices/push/unsubscribe", json=unsubscribe, headers=headers)
    assert resp.status_code == 200
    headers = login(client, 2)
    resp = client.post("/notices/push/subscribe", json=theirs, headers=headers)
    assert resp.status_code == 201
    assert resp.json["id"] != old_id  # AUTOINCREMENT: the removed device's id stays dead
    with push_app.app_context():
        report = push_app.notices.sweep(now=retry_at + timedelta(seconds=1))
        [delivery] = deliveries(push_app)
    assert report.skipped == 1 and delivery.status == DeliveryStatus.SKIPPED.value
    assert delivery.last_error == f"SkipDelivery: push subscription {old_id} is gone"
    assert service.attempts_for(PushService.token_of(theirs)) == []
    assert service.received == []


def _count_subscription_reads(app: Any) -> list[str]:
    """Every SELECT on the subscription table the app's engine runs from now on."""
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "push_subscription" in statement:
            statements.append(statement)

    with app.app_context():
        sa.event.listen(app.db.engine, "before_cursor_execute", before)
    return statements


def test_a_batch_loads_its_subscriptions_in_one_query(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_DISPATCH="none"))
    browsers = [service.new_subscription(f"b{i}") for i in range(5)]
    for user, browser in enumerate(browsers, start=1):
        add_device(app, user, browser)
    add_device(app, 5, service.new_subscription("b5"))  # user 5: two devices
    with app.app_context():
        notice_event([1, 2, 3, 4, 5], subject="batch", content="")
    reads = _count_subscription_reads(app)
    with app.app_context():
        report = deliver(app.notices.state())
        rows = deliveries(app)
    assert report.sent == 6
    assert {d.status for d in rows} == {DeliveryStatus.SENT.value}
    assert len(service.received) == 6
    assert all(m.json()["title"] == "batch" for m in service.received)
    assert len(reads) == 1, reads


def test_a_device_gone_mid_batch_is_not_pushed_again_in_that_batch(app_factory, service):
    # two notices to the same browser in one batch: the first push learns it is gone
    # (410); the second must not post to it from the subscriptions loaded at batch start
    app = app_factory(**push_config(service, NOTICE_DISPATCH="none"))
    browser = service.new_subscription()
    sub_id = add_device(app, 3, browser)
    token = PushService.token_of(browser)
    service.mark_gone(token)
    with app.app_context():
        notice_event(3, subject="first", content="")
        notice_event(3, subject="second", content="")
        report = deliver(app.notices.state())
        first, second = deliveries(app)
    assert (report.gave_up, report.skipped) == (1, 1)
    assert first.status == DeliveryStatus.DEAD.value
    assert second.status == DeliveryStatus.SKIPPED.value
    assert second.last_error == f"SkipDelivery: push subscription {sub_id} is gone"
    assert service.attempts_for(token) == [410]


def test_device_that_changed_owner_is_skipped(app_factory, service):
    """A delivery's device now belongs to someone else (another user logged in on that
    browser): the notice is not pushed to them."""
    app = app_factory(**push_config(service, NOTICE_DISPATCH="none"))
    browser = service.new_subscription()
    sub_id = add_device(app, 1, browser)
    with app.app_context():
        notice_event(1, subject="private to user 1", content="")
        sub = app.db.session.get(app.notices.push_models.PushSubscription, sub_id)
        sub.user_id = 2
        app.db.session.commit()
        report = app.notices.sweep()
        [delivery] = deliveries(app)
    assert report.skipped == 1 and delivery.status == DeliveryStatus.SKIPPED.value
    assert delivery.last_error == (
        f"SkipDelivery: push subscription {sub_id} belongs to another user now"
    )
    assert service.attempts == []


def test_resubscribe_works_with_flask_wtf_csrf_protect(push_app, service):
    from flask_wtf.csrf import CSRFProtect

    CSRFProtect(push_app)  # set up after notice, as apps often do
    old, new = service.new_subscription(), service.new_subscription()
    add_device(push_app, 4, old)
    client = push_app.test_client()
    body = {"old_endpoint": old["endpoint"], "old_auth": old["keys"]["auth"], "subscription": new}
    assert client.post("/notices/push/resubscribe", json=body).status_code == 200
    headers = login(client, 4)  # our token is not Flask-WTF's: the page's calls still need it
    assert client.post("/notices/push/subscribe", json=old, headers=headers).status_code == 400


# --- a push service that misbehaves: the timeout is the request's total -----------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("reply", "error"),
    [
        # a byte every 0.5 s never trips a per-read timeout of 1.5 s
        ("drip", "TransientError: push service timed out after 1.5 s"),
        # 256 MB on offer; the detail is cut from the first 4 KB read
        (("endless", 503), "TransientError: push service answered 503: " + "x" * 200),
    ],
)
def test_a_misbehaving_push_service_costs_one_deadline_and_4_kb(app_factory, service, reply, error):
    with WebhookServer() as bad:
        bad.script([reply])
        app = app_factory(
            **push_config(service, NOTICE_PUSH_TIMEOUT=1.5, NOTICE_PUSH_ALLOWED_HOSTS=[bad.origin])
        )
        browser = service.new_subscription()
        add_device(app, 3, {**browser, "endpoint": bad.origin + "/push/dripping"})
        with app.app_context():
            notice_event(3, subject="slow", content="")
            [delivery] = deliveries(app)
            assert (delivery.status, delivery.last_error) == ("Error", error)
            assert _subs(app)[0].failure_count == 1
        assert len(bad.requests) == 1
        if reply != "drip":
            assert wait_for(lambda: bad.streamed, timeout=10)
            assert bad.streamed[0] < 32 * 1024 * 1024
