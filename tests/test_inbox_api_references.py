"""The inbox model's references, categories and actions through the JSON API and the
live stream, on SQLite and PostgreSQL: the ``actor``, ``target`` and ``category``
filters (list and unread count), the notice JSON, and names from the app's resolver."""

from __future__ import annotations

from typing import Any

from notice import notice_event
from tests.support.sse import SSEClient, serving
from tests.test_inbox_api import API, _login, client_for, web  # noqa: F401

COUNT = "/notices/api/unread-count"


def _publish(app, user_id, **kw):
    with app.app_context():
        return notice_event(user_id, subject=kw.pop("subject", "s"), content="", **kw).id


def _listed(client, query):
    response = client.get(f"{API}?{query}")
    assert response.status_code == 200, response.json
    return [n["id"] for n in response.json["notices"]]


def test_list_and_count_filter_by_actor_target_and_category(web):  # noqa: F811
    by_ann = _publish(web, 1, actor=("user", 7), target=("post", 12))
    about_comment = _publish(web, 1, action_object=("post", 12), category="error")
    urn = _publish(web, 1, actor=("user", "urn:x:9"), category="warning")
    _publish(web, 2, actor=("user", 7), target=("post", 12))
    client = client_for(web, 1)
    assert _listed(client, "actor=user:7") == [by_ann]
    assert _listed(client, "actor=user:urn:x:9") == [urn]  # the id may hold colons
    assert _listed(client, "target=post:12") == [about_comment, by_ann]
    assert _listed(client, "category=error,warning") == [urn, about_comment]
    assert _listed(client, "category=error&category=warning&actor=user:urn:x:9") == [urn]
    assert client.get(f"{COUNT}?category=error").json == {"unread": 1, "unseen": 1}
    assert client.get(f"{COUNT}?target=post:12").json == {"unread": 2, "unseen": 2}
    assert client.get(COUNT).json == {"unread": 3, "unseen": 3}
    # the list's own unread stays the badge's: every unread notice
    assert client.get(f"{API}?category=error").json["unread"] == 3


def test_bad_filters_are_a_400_naming_the_parameter(web):  # noqa: F811
    client = client_for(web, 1)
    for query, parameter in [
        ("actor=user", "actor"),
        ("actor=:7", "actor"),
        ("target=post:", "target"),
        ("target=" + "p" * 65 + ":1", "target"),
        ("category=fatal", "category"),
    ]:
        for path in (API, COUNT):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 400, (path, query)
            assert response.json["parameter"] == parameter


def test_the_notice_json_carries_category_actions_and_named_references(web):  # noqa: F811
    calls: list[str] = []

    @web.notices.reference_resolver
    def names(kind: str, ids: list[str]) -> dict[str, Any]:
        calls.append(kind)
        return {i: (f"{kind} <{i}>", f"/{kind}s/{i}") for i in ids}

    for n in range(20):
        _publish(
            web,
            1,
            actor=("user", n % 3),
            target=("post", n),
            category="success",
            actions=[{"label": "Open", "url": f"/posts/{n}"}],
        )
    client = client_for(web, 1)
    calls.clear()
    page = client.get(f"{API}?limit=20").json["notices"]
    assert sorted(calls) == ["post", "user"]  # one call per type for the page
    first = page[0]
    assert first["category"] == "success"
    assert first["actor"] == {"type": "user", "id": "1", "name": "user <1>", "url": "/users/1"}
    assert first["target"]["name"] == "post <19>"
    assert first["action_object"] is None
    assert first["actions"] == [{"label": "Open", "url": "/posts/19", "method": "GET"}]
    one = client.get(f"{API}/{first['id']}").json["notice"]
    assert one["actor"]["name"] == "user <1>"


def test_the_live_stream_names_references_once_per_publish(app_factory):
    app = app_factory()
    calls: list[tuple[str, list[str]]] = []

    @app.notices.user_loader
    def from_header():
        from flask import request

        raw = request.headers.get("X-User")
        return int(raw) if raw else None

    @app.notices.reference_resolver
    def names(kind: str, ids: list[str]) -> dict[str, Any]:
        calls.append((kind, ids))
        return {i: (f"Ann {i}", None) for i in ids}

    with serving(app) as port:
        client = SSEClient(port, "/notices/stream", headers={"X-User": "1"})
        with client:
            client.next_of("count")
            _publish(app, 1, actor=("user", 7), category="warning")
            event = client.next_of("notice")
        # a replay after a reconnect names them too
        with SSEClient(
            port, "/notices/stream", headers={"X-User": "1", "Last-Event-ID": "0"}
        ) as again:
            replayed = again.next_of("notice")
    assert event.data["actor"] == {"type": "user", "id": "7", "name": "Ann 7", "url": None}
    assert event.data["category"] == "warning"
    assert replayed.data["actor"]["name"] == "Ann 7"
    assert calls[0] == ("user", ["7"])
    app.notices.state(app).broker.close()


def test_an_action_whose_origin_is_no_longer_allowed_is_left_out(app_factory):
    before = app_factory(NOTICE_LINK_ORIGINS=["https://docs.example.org"])
    actions = [
        {"label": "Docs", "url": "https://docs.example.org/a"},
        {"label": "Open", "url": "/posts/1"},
    ]
    _publish(before, 1, actions=actions)
    # the same database, NOTICE_LINK_ORIGINS since emptied
    after = app_factory()
    _login(after)
    [shown] = client_for(after, 1).get(API).json["notices"]
    assert shown["actions"] == [{"label": "Open", "url": "/posts/1", "method": "GET"}]
