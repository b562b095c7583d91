"""The service API ("Simple Notification Service" routes): every route, status code,
auth failure and malformed body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.pushapp import (
    API_TOKEN,
    add_device,
    login,
    push_config,
    service_headers,
    use_session_login,
    vapid_keys,
)
from tests.support.pushservice import PushService

API = "/api/v1"
WRONG = {"Authorization": "Bearer not-the-token-0000000"}


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


@pytest.fixture
def api_app(app_factory: Any, service: PushService) -> Any:
    app = app_factory(**push_config(service))
    use_session_login(app)
    return app


@pytest.fixture
def client(api_app: Any) -> Any:
    return api_app.test_client()


def allow_topics(app: Any, *names: str) -> list[tuple[Any, str, str]]:
    """Register a topic authorizer letting every user use ``names`` (all topics when
    none are given); return the list of its ``(user_id, topic, action)`` calls."""
    calls: list[tuple[Any, str, str]] = []

    @app.notices.topic_authorizer
    def allow(user_id: Any, topic: str, action: str) -> bool:
        calls.append((user_id, topic, action))
        return not names or topic in names

    return calls


def _topic(client: Any, name: str) -> None:
    resp = client.post(f"{API}/topics/", json={"topic": name}, headers=service_headers())
    assert resp.status_code == 201


# --- auth ---------------------------------------------------------------------------

SERVICE_ONLY = [
    ("post", "/topics/", {"topic": "t"}),
    ("delete", "/topics/t", None),
    ("post", "/notifications/push", {"token": "x", "notification": {"title": "t"}}),
    ("post", "/notifications/publish", {"topic": "t", "notification": {"title": "t"}}),
]


@pytest.mark.parametrize(("method", "path", "body"), SERVICE_ONLY)
def test_service_routes_need_a_valid_token(client, method, path, body):
    for headers in ({}, WRONG, {"Authorization": f"Basic {API_TOKEN}"}):
        resp = getattr(client, method)(API + path, json=body, headers=headers)
        assert resp.status_code == 401
        assert resp.json["error"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # a logged-in user is not a service; publishing is theirs only where the topic
    # authorizer allows it, and no authorizer allows nothing
    user_headers = login(client, 1)
    resp = getattr(client, method)(API + path, json=body, headers=user_headers)
    if path == "/notifications/publish":
        assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    else:
        assert resp.status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/topics/list", "/notifications/list?topic=t", "/topics/subscribe", "/topics/unsubscribe"],
)
def test_user_or_service_routes_refuse_anonymous_callers(client, path):
    method = client.post if path.endswith("subscribe") else client.get
    kwargs = {"json": {"topic": "t", "token": "x"}} if method == client.post else {}
    assert method(API + path, **kwargs).status_code == 401
    assert method(API + path, headers=WRONG, **kwargs).status_code == 401


def test_app_hook_accepts_further_tokens(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_API_AUTH=lambda t: t == "from-the-hook"))
    client = app.test_client()
    hooked = {"Authorization": "Bearer from-the-hook"}
    assert client.post(f"{API}/topics/", json={"topic": "a"}, headers=hooked).status_code == 201
    assert client.post(f"{API}/topics/", json={"topic": "b"}, headers=WRONG).status_code == 401


# --- VAPID key ----------------------------------------------------------------------


def test_vapid_public_key(client, app_factory):
    resp = client.get(f"{API}/vapid/public/key")
    assert resp.status_code == 200
    assert resp.json == {"public_key": vapid_keys().public_key}
    plain = app_factory().test_client()
    assert plain.get(f"{API}/vapid/public/key").status_code == 404


# --- topics -------------------------------------------------------------------------


def test_create_list_delete_topics(api_app, client):
    headers = service_headers()
    assert client.get(f"{API}/topics/list", headers=headers).status_code == 204
    resp = client.post(
        f"{API}/topics/", json={"topic": "google", "description": "Google plants"}, headers=headers
    )
    assert resp.status_code == 201
    assert resp.json["topic"] == "google" and resp.json["description"] == "Google plants"
    assert (
        client.post(f"{API}/topics/", json={"topic": "google"}, headers=headers).status_code == 400
    )
    _topic(client, "amazon")
    resp = client.get(f"{API}/topics/list", headers=headers)
    assert resp.status_code == 200 and resp.json == ["amazon", "google"]
    login(client, 3)  # a logged-in user lists the topics they may subscribe to
    assert client.get(f"{API}/topics/list").status_code == 204  # no authorizer: none
    allow_topics(api_app, "google")
    assert client.get(f"{API}/topics/list").json == ["google"]
    assert client.delete(f"{API}/topics/google", headers=headers).status_code == 200
    resp = client.delete(f"{API}/topics/google", headers=headers)
    assert resp.status_code == 400 and resp.json["error"] == "unknown_topic"
    assert client.get(f"{API}/topics/list", headers=headers).json == ["amazon"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("not json", "data"),
        ("[1, 2]", "data"),
        ({}, "json"),
        ({"topic": ""}, "json"),
        ({"topic": 7}, "json"),
        ({"topic": "has space"}, "json"),
        ({"topic": "ok", "description": 5}, "json"),
    ],
)
def test_create_topic_rejects_malformed_bodies(client, body, kind):
    headers = service_headers()
    if kind == "data":
        resp = client.post(
            f"{API}/topics/", data=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        resp = client.post(f"{API}/topics/", json=body, headers=headers)
    assert resp.status_code == 400
    assert resp.is_json and "error" in resp.json


# --- subscribing --------------------------------------------------------------------


def test_browser_subscribes_its_device_to_a_topic(api_app, client, service):
    allow_topics(api_app)
    _topic(client, "google")
    browser = service.new_subscription()
    headers = login(client, 5)
    body = {"topic": "google", "token": browser}
    assert client.post(f"{API}/topics/subscribe", json=body).status_code == 400  # no CSRF
    resp = client.post(f"{API}/topics/subscribe", json=body, headers=headers)
    assert resp.status_code == 200 and resp.json == {"topic": "google", "subscribed": True}
    by_endpoint = {"topic": "google", "token": browser["endpoint"]}
    resp = client.post(f"{API}/topics/subscribe", json=by_endpoint, headers=headers)
    assert resp.json["subscribed"] is False
    with api_app.app_context():
        users, devices = api_app.notices.topics.subscribers("google")
        assert users == [] and list(devices) == [5]
    resp = client.post(f"{API}/topics/unsubscribe", json=by_endpoint, headers=headers)
    assert resp.status_code == 200 and resp.json == {"topic": "google", "unsubscribed": True}
    resp = client.post(f"{API}/topics/unsubscribe", json=by_endpoint, headers=headers)
    assert resp.json["unsubscribed"] is False


def test_user_subscribes_themselves_without_a_token(api_app, client):
    allow_topics(api_app)
    _topic(client, "graph:7")
    headers = login(client, 6)
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "graph:7"}, headers=headers)
    assert resp.status_code == 200 and resp.json["subscribed"] is True
    with api_app.app_context():
        assert api_app.notices.topics.subscribers("graph:7") == ([6], {})


def test_someone_elses_device_is_not_found(api_app, client, service):
    allow_topics(api_app)
    _topic(client, "google")
    browser = service.new_subscription()
    add_device(api_app, 1, browser)
    headers = login(client, 2)
    for path in ("/topics/subscribe", "/topics/unsubscribe"):
        for token in (browser, browser["endpoint"]):
            resp = client.post(
                API + path, json={"topic": "google", "token": token}, headers=headers
            )
            assert resp.status_code == 404
    unknown = {"topic": "google", "token": "https://fcm.googleapis.com/fcm/send/none"}
    assert client.post(f"{API}/topics/subscribe", json=unknown, headers=headers).status_code == 404


def test_service_subscribes_known_devices_and_users(api_app, client, service):
    _topic(client, "google")
    browser = service.new_subscription()
    add_device(api_app, 1, browser)
    headers = service_headers()
    body = {"topic": "google", "token": browser["endpoint"]}
    assert client.post(f"{API}/topics/subscribe", json=body, headers=headers).status_code == 200
    body = {"topic": "google", "user_id": 9}
    assert client.post(f"{API}/topics/subscribe", json=body, headers=headers).status_code == 200
    unknown = {"topic": "google", "token": service.new_subscription()}
    resp = client.post(f"{API}/topics/subscribe", json=unknown, headers=headers)
    assert resp.status_code == 400 and resp.json["error"] == "unknown_device"
    with api_app.app_context():
        users, devices = api_app.notices.topics.subscribers("google")
        assert users == [9] and list(devices) == [1]


@pytest.mark.parametrize("path", ["/topics/subscribe", "/topics/unsubscribe"])
@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "bad_request"),
        ({"token": "x"}, "bad_request"),
        ({"topic": "google", "token": 5}, "bad_token"),
        ({"topic": "google", "token": {"keys": {}}}, "bad_token"),
        ({"topic": "nope", "user_id": 1}, "unknown_topic"),
        ({"topic": "google"}, "bad_request"),
    ],
)
def test_subscribe_rejects_malformed_bodies(client, path, body, error):
    _topic(client, "google")
    resp = client.post(API + path, json=body, headers=service_headers())
    assert resp.status_code == 400
    assert resp.json["error"] == error


@pytest.mark.parametrize("path", ["/topics/subscribe", "/topics/unsubscribe"])
@pytest.mark.parametrize("user_id", [True, 2.5, "seven", [1]])
def test_a_user_id_that_is_none_is_400_naming_it(api_app, client, path, user_id):
    _topic(client, "google")
    body = {"topic": "google", "user_id": user_id}
    resp = client.post(API + path, json=body, headers=service_headers())
    assert resp.status_code == 400
    assert resp.json["error"] == "bad_parameter" and resp.json["parameter"] == "user_id"
    assert resp.json["message"]
    with api_app.app_context():
        assert api_app.notices.topics.subscribers("google") == ([], {})


def test_a_user_id_as_text_is_the_same_user(api_app, client):
    _topic(client, "google")
    body = {"topic": "google", "user_id": "9"}
    assert client.post(f"{API}/topics/subscribe", json=body, headers=service_headers()).json == {
        "topic": "google",
        "subscribed": True,
    }
    body["user_id"] = 9
    resp = client.post(f"{API}/topics/subscribe", json=body, headers=service_headers())
    assert resp.json["subscribed"] is False
    with api_app.app_context():
        assert api_app.notices.topics.subscribers("google") == ([9], {})


def test_browser_subscription_with_a_refused_endpoint_is_400(api_app, client, service):
    allow_topics(api_app)
    _topic(client, "google")
    headers = login(client, 5)
    browser = {**service.new_subscription(), "endpoint": "https://internal.example/x"}
    resp = client.post(
        f"{API}/topics/subscribe", json={"topic": "google", "token": browser}, headers=headers
    )
    assert resp.status_code == 400 and resp.json["error"] == "bad_token"


# --- notifications ------------------------------------------------------------------


def test_push_to_one_device(api_app, client, service):
    browser = service.new_subscription()
    add_device(api_app, 4, browser)
    body = {
        "token": browser,
        "notification": {"title": "Tank low", "body": "Tank 3 at 5%", "url": "/tanks/3"},
    }
    resp = client.post(f"{API}/notifications/push", json=body, headers=service_headers())
    assert resp.status_code == 200
    [msg] = service.received
    assert msg.json() == {
        "title": "Tank low",
        "body": "Tank 3 at 5%",
        "url": "/tanks/3",
        "icon": None,
        "id": resp.json["notice_id"],
        "type": "System",
    }
    by_endpoint = {"token": browser["endpoint"], "notification": "Just a title"}
    resp = client.post(f"{API}/notifications/push", json=by_endpoint, headers=service_headers())
    assert resp.status_code == 200 and service.received[1].json()["title"] == "Just a title"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "bad_request"),
        (
            {"token": "https://fcm.googleapis.com/fcm/send/unknown", "notification": "t"},
            "unknown_device",
        ),
        ({"notification": "t"}, "unknown_device"),
        ({"token": "x"}, "bad_notification"),
        ({"token": "x", "notification": {"body": "no title"}}, "bad_notification"),
        (
            {"token": "x", "notification": {"title": "t", "url": "javascript:alert(1)"}},
            "bad_notification",
        ),
        (
            {"token": "x", "notification": {"title": "t", "icon": "//evil.example/i.png"}},
            "bad_notification",
        ),
        ({"token": "x", "notification": {"title": "t", "type": "Nope"}}, "bad_notification"),
        ({"token": "x", "notification": {"title": "t", "ttl": -1}}, "bad_notification"),
        ({"token": "x", "notification": {"title": "t", "data": [1]}}, "bad_notification"),
    ],
)
def test_push_rejects_malformed_bodies(client, body, error):
    resp = client.post(f"{API}/notifications/push", json=body, headers=service_headers())
    assert resp.status_code == 400
    assert resp.json["error"] == error


def test_push_without_the_webpush_sender_is_400(app_factory, service):
    app = app_factory(**push_config(service, NOTICE_SENDERS=["memory"]))
    browser = service.new_subscription()
    add_device(app, 4, browser)
    body = {"token": browser, "notification": "hello"}
    resp = app.test_client().post(f"{API}/notifications/push", json=body, headers=service_headers())
    assert resp.status_code == 400 and resp.json["error"] == "push_disabled"


def test_publish_reaches_every_subscriber(api_app, client, service):
    _topic(client, "google")
    browsers = [service.new_subscription(f"u{i}") for i in range(3)]
    headers = service_headers()
    for i, browser in enumerate(browsers):
        add_device(api_app, 10 + i, browser)
        body = {"topic": "google", "token": browser["endpoint"]}
        assert client.post(f"{API}/topics/subscribe", json=body, headers=headers).status_code == 200
    notification = {"title": "Plant 4", "body": "Flow stopped", "urgency": "high", "ttl": 60}
    body = {"topic": "google", "notification": notification, "exclude": 12}
    resp = client.post(f"{API}/notifications/publish", json=body, headers=headers)
    assert resp.status_code == 200 and resp.json["recipients"] == 2
    assert sorted(m.token for m in service.received) == sorted(
        PushService.token_of(b) for b in browsers[:2]
    )
    assert {(m.ttl, m.headers["Urgency"]) for m in service.received} == {(60, "high")}


@pytest.mark.parametrize("exclude", [True, 2.5, [12, False]])
def test_publish_refuses_an_exclude_that_is_no_user_id(client, exclude):
    _topic(client, "google")
    body = {"topic": "google", "notification": "t", "exclude": exclude}
    resp = client.post(f"{API}/notifications/publish", json=body, headers=service_headers())
    assert resp.status_code == 400
    assert resp.json["error"] == "bad_parameter" and resp.json["parameter"] == "exclude"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (None, "bad_request"),
        ({"notification": "t"}, "bad_request"),
        ({"topic": "google"}, "bad_notification"),
        ({"topic": "google", "notification": 5}, "bad_notification"),
        ({"topic": "nope", "notification": "t"}, "unknown_topic"),
    ],
)
def test_publish_rejects_malformed_bodies(client, body, error):
    _topic(client, "google")
    resp = client.post(f"{API}/notifications/publish", json=body, headers=service_headers())
    assert resp.status_code == 400
    assert resp.json["error"] == error


def test_list_notifications_newest_first_with_paging(client):
    _topic(client, "google")
    headers = service_headers()
    for i in range(12):
        body = {"topic": "google", "notification": {"title": f"n{i}"}}
        assert (
            client.post(f"{API}/notifications/publish", json=body, headers=headers).status_code
            == 200
        )
    resp = client.get(f"{API}/notifications/list?topic=google", headers=headers)
    assert resp.status_code == 200
    assert [m["title"] for m in resp.json] == [f"n{i}" for i in range(11, 1, -1)]
    resp = client.get(f"{API}/notifications/list?topic=google&start=10&end=20", headers=headers)
    assert [m["title"] for m in resp.json] == ["n1", "n0"]
    resp = client.get(f"{API}/notifications/list?topic=google&start=20&end=30", headers=headers)
    assert resp.status_code == 204


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?topic=nope",
        "?topic=google&start=x",
        "?topic=google&start=5&end=1",
        "?topic=google&start=-1",
        "?topic=google&start=0&end=1000",
    ],
)
def test_list_notifications_rejects_bad_queries(client, query):
    _topic(client, "google")
    resp = client.get(f"{API}/notifications/list{query}", headers=service_headers())
    assert resp.status_code == 400


def test_list_notifications_for_users_the_authorizer_allows(api_app, client):
    _topic(client, "google")
    with api_app.app_context():
        api_app.notices.topics.subscribe("google", user_id=1)
        api_app.notices.publish("google", subject="hello")
    login(client, 1)  # following is not enough without an authorizer
    resp = client.get(f"{API}/notifications/list?topic=google")
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    api_app.notices.topic_authorizer(lambda user_id, topic, action: user_id == 1)
    login(client, 2)
    assert client.get(f"{API}/notifications/list?topic=google").status_code == 403
    login(client, 1)
    resp = client.get(f"{API}/notifications/list?topic=google")
    assert resp.status_code == 200 and [m["title"] for m in resp.json] == ["hello"]


def _app_with_csrf_protect(db_url: str, service: PushService, *, csrf_first: bool) -> Any:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy
    from flask_wtf.csrf import CSRFProtect

    from notice import Notices

    app = Flask("csrf_order")
    app.config.update(
        {"SQLALCHEMY_DATABASE_URI": db_url, "SECRET_KEY": "test-secret", **push_config(service)}
    )
    if csrf_first:
        CSRFProtect(app)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    if not csrf_first:
        CSRFProtect(app)
    app.db, app.notices = db, notices
    with app.app_context():
        db.create_all()
    return app


@pytest.mark.parametrize("csrf_first", [True, False])
def test_service_token_calls_work_with_flask_wtf_csrf_protect(db_url, service, csrf_first):
    """Bearer-token calls carry no CSRF token; Flask-WTF must not refuse them, whether
    the app sets CSRFProtect up before or after notice. A logged-in user's subscribe
    call still needs the token."""
    app = _app_with_csrf_protect(db_url, service, csrf_first=csrf_first)
    use_session_login(app)
    client = app.test_client()
    resp = client.post(f"{API}/topics/", json={"topic": "graph:1"}, headers=service_headers())
    assert resp.status_code == 201
    resp = client.post(
        f"{API}/notifications/publish",
        json={"topic": "graph:1", "notification": {"title": "hi"}},
        headers=service_headers(),
    )
    assert resp.status_code == 200
    login(client, 1)  # a cookie session but no X-CSRFToken header
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "graph:1"})
    assert resp.status_code == 400
    with app.app_context():
        app.db.engine.dispose()


# --- size limits --------------------------------------------------------------------


def _chunked_post(port: int, path: str, body: bytes) -> tuple[int, Any]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` (no Content-Length)."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {**service_headers(), "Content-Type": "application/json"}
        chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
        conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_service_bodies_over_the_limit_are_413(app_factory, service):
    from tests.support.sse import serving

    app = app_factory(**push_config(service), NOTICE_MAX_REQUEST=4000)
    client = app.test_client()
    _topic(client, "google")
    big = {"topic": "google", "notification": {"title": "t", "body": "x" * 4000}}
    resp = client.post(f"{API}/notifications/publish", json=big, headers=service_headers())
    assert resp.status_code == 413 and resp.json["error"] == "too_large"
    # a streamed body without a length is read only up to the limit
    import json

    with serving(app) as port:
        status, answer = _chunked_post(
            port, f"{API}/notifications/publish", json.dumps(big).encode() * 3
        )
        assert status == 413 and answer["error"] == "too_large"
        small = {"topic": "google", "notification": {"title": "t", "body": "fits"}}
        status, answer = _chunked_post(
            port, f"{API}/notifications/publish", json.dumps(small).encode()
        )
        assert status == 200 and answer["recipients"] == 0


def test_notification_over_the_content_limits_is_400(app_factory, service):
    app = app_factory(**push_config(service), NOTICE_MAX_CONTENT=100, NOTICE_MAX_DATA=50)
    client = app.test_client()
    _topic(client, "google")
    for notification, field in [
        ({"title": "t", "body": "é" * 51}, "NOTICE_MAX_CONTENT"),
        ({"title": "t", "data": {"k": "v" * 50}}, "NOTICE_MAX_DATA"),
    ]:
        body = {"topic": "google", "notification": notification}
        resp = client.post(f"{API}/notifications/publish", json=body, headers=service_headers())
        assert resp.status_code == 400, resp.json
        assert resp.json["error"] == "bad_notification" and field in resp.json["message"]


# --- topic authorization ------------------------------------------------------------

MEMBERS = {"group:1": {1, 2}}


def _members_only(app: Any) -> list[tuple[Any, str, str]]:
    """An authorizer like a private group's: members of ``MEMBERS`` only."""
    calls: list[tuple[Any, str, str]] = []

    @app.notices.topic_authorizer
    def members_only(user_id: Any, topic: str, action: str) -> bool:
        calls.append((user_id, topic, action))
        return user_id in MEMBERS.get(topic, set())

    return calls


def test_a_non_member_is_refused_subscribe_history_and_publish(api_app, client, service):
    _topic(client, "group:1")
    calls = _members_only(api_app)
    headers = login(client, 3)
    browser = service.new_subscription()
    for path, body in [
        ("/topics/subscribe", {"topic": "group:1"}),
        ("/topics/subscribe", {"topic": "group:1", "token": browser}),
        ("/notifications/publish", {"topic": "group:1", "notification": "hi"}),
    ]:
        resp = client.post(API + path, json=body, headers=headers)
        assert resp.status_code == 403, path
        assert resp.json["error"] == "forbidden" and resp.json["topic"] == "group:1"
    resp = client.get(f"{API}/notifications/list?topic=group:1")
    assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    assert client.get(f"{API}/topics/list").status_code == 204
    assert [a for _, _, a in calls] == ["subscribe", "subscribe", "publish", "history", "subscribe"]
    assert {u for u, _, _ in calls} == {3}
    with api_app.app_context():  # nothing was written, not even the device
        assert api_app.notices.topics.subscribers("group:1") == ([], {})
        PS = api_app.notices.push_models.PushSubscription
        assert api_app.db.session.query(PS).count() == 0
        assert api_app.notices.topics.messages("group:1") == []


def test_a_member_may_subscribe_read_and_publish_as_themselves(api_app, client):
    _topic(client, "group:1")
    _members_only(api_app)
    headers = login(client, 2)
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "group:1"}, headers=headers)
    assert resp.status_code == 200 and resp.json["subscribed"] is True
    assert client.get(f"{API}/topics/list").json == ["group:1"]
    with api_app.app_context():
        api_app.notices.topics.subscribe("group:1", user_id=1)
    body = {"topic": "group:1", "notification": "Gear list", "exclude": 2}
    resp = client.post(f"{API}/notifications/publish", json=body)
    assert resp.status_code == 400 and resp.json["error"] == "csrf"  # a user needs the token
    resp = client.post(f"{API}/notifications/publish", json=body, headers=headers)
    assert resp.status_code == 200 and resp.json["recipients"] == 1
    resp = client.get(f"{API}/notifications/list?topic=group:1")
    assert resp.status_code == 200
    assert [(m["title"], m["sender_id"]) for m in resp.json] == [("Gear list", 2)]


def test_the_authorizer_does_not_stand_between_a_service_and_its_topics(api_app, client):
    _topic(client, "group:1")
    calls = _members_only(api_app)
    headers = service_headers()
    body = {"topic": "group:1", "user_id": 9}
    assert client.post(f"{API}/topics/subscribe", json=body, headers=headers).status_code == 200
    body = {"topic": "group:1", "notification": "hi"}
    resp = client.post(f"{API}/notifications/publish", json=body, headers=headers)
    assert resp.status_code == 200
    resp = client.get(f"{API}/notifications/list?topic=group:1", headers=headers)
    assert resp.status_code == 200
    assert client.get(f"{API}/topics/list", headers=headers).json == ["group:1"]
    assert calls == []


def test_without_an_authorizer_users_may_not_use_topics(api_app, client, service):
    """The default: no authorizer, no topic for users (they may still leave one)."""
    _topic(client, "google")
    headers = login(client, 1)
    for body in ({"topic": "google"}, {"topic": "google", "token": service.new_subscription()}):
        resp = client.post(f"{API}/topics/subscribe", json=body, headers=headers)
        assert resp.status_code == 403 and resp.json["error"] == "forbidden"
    publish = {"topic": "google", "notification": "hi"}
    resp = client.post(f"{API}/notifications/publish", json=publish, headers=headers)
    assert resp.status_code == 403
    assert client.get(f"{API}/notifications/list?topic=google").status_code == 403
    assert client.get(f"{API}/topics/list").status_code == 204


def test_leaving_a_topic_needs_no_permission(api_app, client):
    _topic(client, "group:1")
    with api_app.app_context():
        api_app.notices.topics.subscribe("group:1", user_id=5)
    headers = login(client, 5)  # no authorizer at all
    resp = client.post(f"{API}/topics/unsubscribe", json={"topic": "group:1"}, headers=headers)
    assert resp.status_code == 200 and resp.json["unsubscribed"] is True


# --- anonymous devices (the seed's flow, opt-in) ------------------------------------

GUEST = 0  # the user id owning anonymously registered devices


def _open_app(app_factory: Any, service: PushService, **config: Any) -> Any:
    app = app_factory(
        **push_config(
            service, NOTICE_API_ANONYMOUS_DEVICES=True, NOTICE_API_ANONYMOUS_USER=GUEST, **config
        )
    )
    use_session_login(app)
    return app


@pytest.fixture
def open_app(app_factory: Any, service: PushService) -> Any:
    return _open_app(app_factory, service)


def test_anonymous_devices_are_refused_by_default(client, service):
    _topic(client, "google")
    body = {"topic": "google", "token": service.new_subscription()}
    for path in ("/topics/subscribe", "/topics/unsubscribe"):
        resp = client.post(API + path, json=body)
        assert resp.status_code == 401 and resp.json["error"] == "unauthorized"


def test_anonymous_device_subscribes_where_the_authorizer_allows(open_app, service):
    client = open_app.test_client()
    _topic(client, "google")
    _topic(client, "group:1")
    browser = service.new_subscription()
    body = {"topic": "google", "token": browser}
    resp = client.post(f"{API}/topics/subscribe", json=body)
    assert resp.status_code == 403  # no authorizer: even the opt-in opens no topic
    calls = allow_topics(open_app, "google")
    resp = client.post(f"{API}/topics/subscribe", json=body)
    assert resp.status_code == 200 and resp.json == {"topic": "google", "subscribed": True}
    assert calls == [(None, "google", "subscribe")]
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "group:1", "token": browser})
    assert resp.status_code == 403
    with open_app.app_context():
        users, devices = open_app.notices.topics.subscribers("google")
        assert users == [] and list(devices) == [GUEST]
    published = client.post(
        f"{API}/notifications/publish",
        json={"topic": "google", "notification": "Plant 4"},
        headers=service_headers(),
    )
    assert published.status_code == 200 and published.json["recipients"] == 1


def test_anonymous_callers_prove_the_device_with_its_keys(open_app, service):
    client = open_app.test_client()
    _topic(client, "google")
    allow_topics(open_app)
    browser = service.new_subscription()
    add_device(open_app, 7, browser)  # a user's browser
    by_endpoint = {"topic": "google", "token": browser["endpoint"]}
    resp = client.post(f"{API}/topics/subscribe", json=by_endpoint)
    assert resp.status_code == 400 and resp.json["error"] == "bad_token"
    forged = {**browser, "keys": service.new_subscription()["keys"]}
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "google", "token": forged})
    assert resp.status_code == 404
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "google", "token": browser})
    assert resp.status_code == 200 and resp.json["subscribed"] is True
    with open_app.app_context():  # the device keeps its owner
        assert list(open_app.notices.topics.subscribers("google")[1]) == [7]
    refused = {**service.new_subscription(), "endpoint": "https://internal.example/x"}
    resp = client.post(f"{API}/topics/subscribe", json={"topic": "google", "token": refused})
    assert resp.status_code == 400 and resp.json["error"] == "bad_token"


def test_anonymous_calls_are_rate_limited_per_address(app_factory, service):
    open_app = _open_app(app_factory, service, NOTICE_API_ANONYMOUS_RATE=3)
    client = open_app.test_client()
    _topic(client, "google")
    allow_topics(open_app)
    for _ in range(3):  # NOTICE_API_ANONYMOUS_RATE
        body = {"topic": "google", "token": service.new_subscription()}
        assert client.post(f"{API}/topics/subscribe", json=body).status_code == 200
    body = {"topic": "google", "token": service.new_subscription()}
    resp = client.post(f"{API}/topics/subscribe", json=body)
    assert resp.status_code == 429 and resp.json["error"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    other = {"REMOTE_ADDR": "192.0.2.8"}  # another address has its own count
    assert client.post(f"{API}/topics/subscribe", json=body, environ_base=other).status_code == 200
    headers = login(client, 4)  # logged-in users and services are not counted
    assert client.post(f"{API}/topics/subscribe", json=body, headers=headers).status_code == 404
    resp = client.post(
        f"{API}/topics/subscribe", json={"topic": "google", "user_id": 4}, headers=service_headers()
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "config",
    [
        {"NOTICE_API_ANONYMOUS_DEVICES": True},
        {"NOTICE_API_ANONYMOUS_DEVICES": "yes", "NOTICE_API_ANONYMOUS_USER": 0},
        {"NOTICE_API_ANONYMOUS_RATE": 0},
        {"NOTICE_API_ANONYMOUS_RATE": 2.5},
    ],
)
def test_anonymous_device_settings_are_checked(app_factory, config):
    from notice.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="NOTICE_API_ANONYMOUS"):
        app_factory(**config)
