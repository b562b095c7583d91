"""Bad input to the web layer is a 4xx naming the parameter, never a 500: ids beyond
the id columns' range, NUL characters, non-standard or deeply nested JSON, unknown
users. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from notice import links, notice_event
from tests.support.pushapp import login, push_config, service_headers, use_session_login, vapid_keys
from tests.support.pushservice import PushService

API = "/notices/api/notices"
V1 = "/api/v1"
HUGE = "99999999999999999999"


@pytest.fixture(scope="module")
def push_service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


def _users(db: Any) -> None:
    class User(db.Model):  # type: ignore[name-defined]
        __tablename__ = "user"
        id = db.Column(db.Integer, primary_key=True)


@pytest.fixture
def web(app_factory: Any, push_service: PushService) -> Any:
    # user ids reference the app's users: an unknown one is refused by the database
    app = app_factory(
        notices_options={"user_table": "user.id"}, setup=_users, **push_config(push_service)
    )
    use_session_login(app)
    with app.app_context():
        app.db.session.execute(sa.text('INSERT INTO "user" (id) VALUES (1), (2)'))
        app.db.session.commit()
        notice_event(1, subject="mine", content="")
        app.notices.topics.create("t")
    return app


def _bad(resp: Any, parameter: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.json["error"] == "bad_parameter"
    assert resp.json["parameter"] == parameter


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"{API}/{HUGE}"),
        ("get", f"{API}/{2**63}"),
        ("post", f"{API}/{HUGE}/read"),
        ("delete", f"{API}/{HUGE}"),
    ],
)
def test_a_path_id_beyond_the_id_range_is_400(web, method, path):
    client = web.test_client()
    headers = login(client, 1)
    _bad(getattr(client, method)(path, headers=headers), "notice_id")


def test_the_largest_id_is_merely_missing(web):
    client = web.test_client()
    login(client, 1)
    assert client.get(f"{API}/{2**63 - 1}").status_code == 404


@pytest.mark.parametrize("value", ["1e30", HUGE, str(2**63), "-1", "0"])
def test_before_id_beyond_the_id_range_is_400(web, value):
    client = web.test_client()
    login(client, 1)
    _bad(client.get(f"{API}?before_id={value}"), "before_id")


@pytest.mark.parametrize("ids", ["[99999999999999999999]", "[1e999]", "[-1e999]", "[1e30]"])
def test_marking_ids_beyond_the_id_range_is_400(web, ids):
    client = web.test_client()
    headers = login(client, 1)
    resp = client.post(
        f"{API}/read", data=f'{{"ids": {ids}}}', content_type="application/json", headers=headers
    )
    _bad(resp, "ids")


def test_nul_in_a_query_parameter_is_400(web):
    client = web.test_client()
    login(client, 1)
    _bad(client.get(f"{API}?q=%00"), "q")
    _bad(client.get(f"{API}?q=a%00b"), "q")
    # the page answers with the app's 400 page
    page = client.get("/notices/?q=%00", headers={"Accept": "text/html"})
    assert page.status_code == 400 and page.mimetype == "text/html"


def test_nul_in_a_path_or_a_body_is_400(web):
    client = web.test_client()
    _bad(client.delete(f"{V1}/topics/a%00b", headers=service_headers()), "name")
    resp = client.post(f"{V1}/topics/", json={"topic": "a\x00b"}, headers=service_headers())
    _bad(resp, "body")


@pytest.mark.parametrize("start", ["1e20", "100000000000000000000", str(2**63), "-1"])
def test_history_start_beyond_range_is_400(web, start):
    client = web.test_client()
    resp = client.get(f"{V1}/notifications/list?topic=t&start={start}", headers=service_headers())
    _bad(resp, "start")


@pytest.mark.parametrize("path", ["/topics/subscribe", "/topics/unsubscribe"])
@pytest.mark.parametrize("user_id", [{"id": 1}, [[1]], 2**63, "1e3", None])
def test_a_non_scalar_user_id_is_400_naming_it(web, path, user_id):
    body = {"topic": "t", "user_id": user_id}
    resp = web.test_client().post(V1 + path, json=body, headers=service_headers())
    assert resp.status_code == 400
    if user_id is not None:
        assert resp.json["parameter"] == "user_id"


@pytest.mark.parametrize("exclude", [{"id": 1}, [[1]], [{"a": 1}], 2**63, "x"])
def test_a_non_scalar_exclude_is_400_naming_it(web, exclude):
    body = {"topic": "t", "notification": "hi", "exclude": exclude}
    resp = web.test_client().post(
        f"{V1}/notifications/publish", json=body, headers=service_headers()
    )
    _bad(resp, "exclude")


def test_subscribing_an_unknown_user_is_404_naming_it(web):
    client = web.test_client()
    body = {"topic": "t", "user_id": 3}
    resp = client.post(f"{V1}/topics/subscribe", json=body, headers=service_headers())
    assert resp.status_code == 404 and resp.mimetype == "application/json"
    assert resp.json["parameter"] == "user_id"
    # the session is usable afterwards: a known user subscribes
    body["user_id"] = 2
    resp = client.post(f"{V1}/topics/subscribe", json=body, headers=service_headers())
    assert resp.status_code == 200 and resp.json["subscribed"] is True


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_is_400(web, constant):
    body = f'{{"topic": "t", "notification": {{"title": "x", "data": {{"v": {constant}}}}}}}'
    resp = web.test_client().post(
        f"{V1}/notifications/publish",
        data=body,
        content_type="application/json",
        headers=service_headers(),
    )
    _bad(resp, "body")
    assert constant in resp.json["message"]


def _nested(depth: int) -> str:
    return '{"ids": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize("depth", [33, 900, 5000, 100_000])
@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("user", f"{API}/read"),
        ("user", "/notices/preferences.json"),
        ("user", "/notices/push/subscribe"),
        ("user", "/notices/push/unsubscribe"),
        ("anonymous", "/notices/push/resubscribe"),
        ("service", f"{V1}/topics/"),
        ("service", f"{V1}/topics/subscribe"),
        ("service", f"{V1}/notifications/publish"),
        ("service", f"{V1}/notifications/push"),
    ],
)
def test_deeply_nested_json_is_400_on_every_json_endpoint(web, role, path, depth):
    client = web.test_client()
    headers = login(client, 1) if role == "user" else {}
    if role == "service":
        headers = service_headers()
    resp = client.post(path, data=_nested(depth), content_type="application/json", headers=headers)
    _bad(resp, "body")
    assert "nested" in resp.json["message"]


def test_json_nested_32_deep_reaches_the_view(web):
    # 32 levels in all (the object and 31 arrays): the view answers, not the parser
    resp = web.test_client().post(
        f"{V1}/topics/",
        data=_nested(31),
        content_type="application/json",
        headers=service_headers(),
    )
    assert resp.status_code == 400 and resp.json["error"] == "bad_request"


@pytest.mark.parametrize("channel", ["webpush", links.DIGEST])
def test_a_deleted_users_unsubscribe_link_is_404(web, channel):
    notice_type = None if channel == links.DIGEST else "System"
    with web.app_context():
        link = "/notices/unsubscribe/" + links.make_token(web, 2, notice_type, channel)
        web.db.session.execute(sa.text('DELETE FROM "user" WHERE id = 2'))
        web.db.session.commit()
    client = web.test_client()
    assert client.get(link).status_code == 200  # the confirm page reads nothing
    resp = client.post(link)
    assert resp.status_code == 404
    assert "not valid" in resp.get_data(as_text=True)


def test_standard_json_still_works(web):
    body = json.dumps({"topic": "t", "notification": {"title": "x", "data": {"v": 1.5}}})
    resp = web.test_client().post(
        f"{V1}/notifications/publish",
        data=body,
        content_type="application/json",
        headers=service_headers(),
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "before=0001-01-01T00:00:00%2B14:00",
        "after=9999-12-31T23:59:59-14:00",
        "before=9999-12-31T23:59:59.999999-23:59",
    ],
)
def test_a_datetime_beyond_the_utc_range_is_400(web, query):
    client = web.test_client()
    login(client, 1)
    _bad(client.get(f"{API}?{query}"), query.split("=")[0])
