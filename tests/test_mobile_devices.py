"""The mobile device registration API (``/notices/api/devices``) on SQLite and
PostgreSQL: register, list mine, delete mine; login and CSRF; a known token moves to the
caller only as a push subscription does; the per-user device limit."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from notice import ConfigurationError
from notice.mobile.devices import DeviceError, parse_registration
from tests.support.pushapp import login, use_session_login

URL = "/notices/api/devices"
FCM_TOKEN = "dGVzdC10b2tlbg:APA91bH" + "x" * 140
APNS_TOKEN = "ab" * 32


@pytest.fixture
def web(app_factory: Any) -> Flask:
    app = app_factory(NOTICE_MOBILE_MAX_DEVICES=3)
    use_session_login(app)
    return app


def _rows(app: Flask) -> list[tuple[Any, str, str, str | None]]:
    Device = app.notices.device_models.Device  # type: ignore[attr-defined]
    with app.app_context():
        rows = app.db.session.query(Device).order_by(Device.id).all()  # type: ignore[attr-defined]
        return [(r.user_id, r.platform, r.token, r.app_id) for r in rows]


def test_register_list_and_delete_my_device(web: Flask) -> None:
    client = web.test_client()
    headers = login(client, 1)
    body = {"platform": "fcm", "token": FCM_TOKEN, "app_id": "org.example.app"}
    resp = client.post(URL, json=body, headers=headers)
    assert resp.status_code == 201, resp.json
    device = resp.json["device"]
    assert resp.json["created"] is True
    assert (device["platform"], device["token"], device["app_id"]) == (
        "fcm",
        FCM_TOKEN,
        "org.example.app",
    )
    assert device["last_used_at"] is None
    again = client.post(URL, json=body, headers=headers)
    assert again.status_code == 200 and again.json["device"]["id"] == device["id"]
    listed = client.get(URL).json["devices"]
    assert [d["id"] for d in listed] == [device["id"]]
    gone = client.delete(f"{URL}/{device['id']}", headers=headers)
    assert gone.status_code == 200 and gone.json == {"removed": device["id"]}
    assert client.get(URL).json["devices"] == [] and _rows(web) == []


def test_apns_tokens_are_stored_lower_case(web: Flask) -> None:
    client = web.test_client()
    headers = login(client, 1)
    upper = {"platform": "apns", "token": APNS_TOKEN.upper(), "app_id": "org.example.app"}
    assert client.post(URL, json=upper, headers=headers).status_code == 201
    lower = {**upper, "token": APNS_TOKEN}
    assert client.post(URL, json=lower, headers=headers).status_code == 200
    assert _rows(web) == [(1, "apns", APNS_TOKEN, "org.example.app")]


def test_every_call_needs_login_and_changes_need_csrf(web: Flask) -> None:
    client = web.test_client()
    body = {"platform": "fcm", "token": FCM_TOKEN}
    assert client.get(URL).status_code == 401
    assert client.post(URL, json=body).status_code == 401
    assert client.delete(f"{URL}/1").status_code == 401
    headers = login(client, 1)
    for bad in ({}, {"X-CSRFToken": "wrong"}):
        resp = client.post(URL, json=body, headers=bad)
        assert resp.status_code == 400 and resp.json["error"] == "csrf"
    assert _rows(web) == []
    device_id = client.post(URL, json=body, headers=headers).json["device"]["id"]
    resp = client.delete(f"{URL}/{device_id}", headers={"X-CSRFToken": "wrong"})
    assert resp.status_code == 400 and resp.json["error"] == "csrf"
    assert len(_rows(web)) == 1


def test_a_user_sees_and_deletes_only_their_own_devices(web: Flask) -> None:
    alice, mallory = web.test_client(), web.test_client()
    a_headers, m_headers = login(alice, 1), login(mallory, 2)
    body = {"platform": "fcm", "token": FCM_TOKEN}
    device_id = alice.post(URL, json=body, headers=a_headers).json["device"]["id"]
    assert mallory.get(URL).json["devices"] == []
    resp = mallory.delete(f"{URL}/{device_id}", headers=m_headers)
    assert resp.status_code == 404 and resp.json["error"] == "not_found"
    assert _rows(web) == [(1, "fcm", FCM_TOKEN, None)]


def test_a_known_token_moves_to_the_caller_only_for_the_same_app(web: Flask) -> None:
    # the token is the app install's secret: sending it again is a new login in that
    # install; with another app id it is not the same install and stays where it is
    first, second = web.test_client(), web.test_client()
    body = {"platform": "apns", "token": APNS_TOKEN, "app_id": "org.example.app"}
    assert first.post(URL, json=body, headers=login(first, 1)).status_code == 201
    headers = login(second, 2)
    other_app = {**body, "app_id": "org.evil.app"}
    resp = second.post(URL, json=other_app, headers=headers)
    assert resp.status_code == 400 and resp.json["error"] == "bad_device"
    assert _rows(web) == [(1, "apns", APNS_TOKEN, "org.example.app")]
    assert second.post(URL, json=body, headers=headers).status_code == 200
    assert _rows(web) == [(2, "apns", APNS_TOKEN, "org.example.app")]
    assert first.get(URL).json["devices"] == []


def test_the_same_token_on_both_platforms_is_two_devices(web: Flask) -> None:
    client = web.test_client()
    headers = login(client, 1)
    for platform in ("fcm", "apns"):
        resp = client.post(URL, json={"platform": platform, "token": APNS_TOKEN}, headers=headers)
        assert resp.status_code == 201
    assert [r[1] for r in _rows(web)] == ["fcm", "apns"]


def test_registering_past_the_limit_drops_the_least_recently_used(web: Flask) -> None:
    client = web.test_client()
    headers = login(client, 1)
    ids = []
    for n in range(4):
        body = {"platform": "fcm", "token": f"token-{n}"}
        ids.append(client.post(URL, json=body, headers=headers).json["device"]["id"])
    assert [d["id"] for d in client.get(URL).json["devices"]] == ids[1:]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (None, "object"),
        ({"token": FCM_TOKEN}, "platform"),
        ({"platform": "gcm", "token": FCM_TOKEN}, "platform"),
        ({"platform": "fcm"}, "token"),
        ({"platform": "fcm", "token": ""}, "token"),
        ({"platform": "fcm", "token": "a b"}, "token"),
        ({"platform": "fcm", "token": "x" * 513}, "token"),
        ({"platform": "apns", "token": "zz" * 32}, "hex"),
        ({"platform": "apns", "token": "abc"}, "hex"),
        ({"platform": "fcm", "token": FCM_TOKEN, "app_id": "../x"}, "app_id"),
        ({"platform": "fcm", "token": FCM_TOKEN, "app_id": 7}, "app_id"),
    ],
)
def test_malformed_registrations_are_refused_without_echoing_the_token(
    web: Flask, body: Any, says: str
) -> None:
    client = web.test_client()
    headers = login(client, 1)
    resp = client.post(URL, json=body, headers=headers)
    assert resp.status_code == 400 and resp.json["error"] == "bad_device"
    assert says in resp.json["message"]
    assert FCM_TOKEN not in resp.json["message"]
    assert _rows(web) == []


def test_parse_registration_raises_a_notice_error() -> None:
    with pytest.raises(DeviceError) as caught:
        parse_registration({"platform": "apns", "token": "nope"})
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"NOTICE_MOBILE_MAX_DEVICES": 0}, "NOTICE_MOBILE_MAX_DEVICES"),
        ({"NOTICE_MOBILE_MAX_DEVICES": True}, "NOTICE_MOBILE_MAX_DEVICES"),
        ({"NOTICE_FCM_HOSTS": "fcm.googleapis.com"}, "NOTICE_FCM_HOSTS must be a list"),
        ({"NOTICE_FCM_URL": "https://evil.example/v1/"}, "not in NOTICE_FCM_HOSTS"),
        ({"NOTICE_FCM_TOKEN_URI": "http://oauth2.googleapis.com/token"}, "https"),
        ({"NOTICE_APNS_URL": "https://user:pw@api.push.apple.com"}, "NOTICE_APNS_URL"),
        ({"NOTICE_APNS_TIMEOUT": 0}, "NOTICE_APNS_TIMEOUT"),
        ({"NOTICE_APNS_TOPIC": "not a bundle id"}, "NOTICE_APNS_TOPIC"),
        ({"NOTICE_APNS_TOPICS": "org.example.app"}, "NOTICE_APNS_TOPICS must be"),
        ({"NOTICE_APNS_TOPICS": ["../x"]}, "NOTICE_APNS_TOPICS must be"),
        (
            {"NOTICE_APNS_TOPIC": "org.example.app", "NOTICE_APNS_TOPICS": ["org.other"]},
            "NOTICE_APNS_TOPIC must be one of NOTICE_APNS_TOPICS",
        ),
        ({"NOTICE_FCM_APP_IDS": [7]}, "NOTICE_FCM_APP_IDS must be"),
    ],
)
def test_mobile_config_is_checked_at_startup_without_the_senders(
    app_factory: Any, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        app_factory(**config)


@pytest.mark.parametrize(
    "config",
    [
        {"NOTICE_APNS_TOPIC": "org.example.app"},  # NOTICE_APNS_TOPICS' default
        {"NOTICE_APNS_TOPICS": ["org.example.app", "org.example.beta"]},
    ],
)
def test_apns_devices_register_only_with_an_allowed_topic(
    app_factory: Any, config: dict[str, Any]
) -> None:
    # our provider key is valid for every app of the team: a device registered under
    # another bundle id would have us push as that app
    app = app_factory(**config)
    use_session_login(app)
    client = app.test_client()
    headers = login(client, 1)
    evil = {"platform": "apns", "token": APNS_TOKEN, "app_id": "com.evil.app"}
    resp = client.post(URL, json=evil, headers=headers)
    assert resp.status_code == 400 and resp.json["error"] == "bad_device"
    assert "NOTICE_APNS_TOPICS" in resp.json["message"]
    assert _rows(app) == []
    good = {**evil, "app_id": "org.example.app"}
    assert client.post(URL, json=good, headers=headers).status_code == 201
    # without an app_id the device is sent with NOTICE_APNS_TOPIC's default
    bare = {"platform": "apns", "token": "cd" * 32}
    assert client.post(URL, json=bare, headers=headers).status_code == 201
    # FCM takes any app id while NOTICE_FCM_APP_IDS is not set
    fcm = {"platform": "fcm", "token": FCM_TOKEN, "app_id": "com.evil.app"}
    assert client.post(URL, json=fcm, headers=headers).status_code == 201
    assert [r[3] for r in _rows(app)] == ["org.example.app", None, "com.evil.app"]


def test_fcm_devices_register_only_with_an_allowed_app_id(app_factory: Any) -> None:
    app = app_factory(NOTICE_FCM_APP_IDS=["org.example.app"])
    use_session_login(app)
    client = app.test_client()
    headers = login(client, 1)
    body = {"platform": "fcm", "token": FCM_TOKEN, "app_id": "com.evil.app"}
    resp = client.post(URL, json=body, headers=headers)
    assert resp.status_code == 400 and "NOTICE_FCM_APP_IDS" in resp.json["message"]
    allowed = {**body, "app_id": "org.example.app"}
    assert client.post(URL, json=allowed, headers=headers).status_code == 201
    assert _rows(app) == [(1, "fcm", FCM_TOKEN, "org.example.app")]
