"""Seen, archive and unarchive through the JSON API, on SQLite and PostgreSQL: owner
checks (someone else's notice is a 404 and stays as it was), CSRF, "archive all read",
the ``archived`` listing filter and the fields in the notice JSON."""

from __future__ import annotations

from tests.test_inbox_api import API, client_for, post, publish, web  # noqa: F401


def _listed(client, query=""):
    return [n["id"] for n in client.get(f"{API}{query}").json["notices"]]


def test_archive_one_leaves_the_list_and_count_and_comes_back(web):  # noqa: F811
    first, second = publish(web, 1, 2)
    client = client_for(web, 1)
    body = post(client, f"{API}/{first}/archive").json
    assert body["notice"]["archived_at"] and body["unread"] == 1
    assert _listed(client) == [second]
    assert _listed(client, "?archived=only") == [first]
    assert _listed(client, "?archived=include") == [second, first]
    assert client.get("/notices/api/unread-count").json == {"unread": 1, "unseen": 1}
    body = post(client, f"{API}/{first}/unarchive").json
    assert body["notice"]["archived_at"] is None and body["unread"] == 2
    assert client.get(f"{API}?archived=sometimes").status_code == 400


def test_archive_all_means_all_read_and_ids_are_owner_checked(web):  # noqa: F811
    mine = publish(web, 1, 3)
    theirs = publish(web, 2, 1)
    client = client_for(web, 1)
    post(client, f"{API}/read", {"ids": mine[:2]})
    assert post(client, f"{API}/archive", {"all": True}).json == {
        "changed": 2,
        "unread": 1,
        "unseen": 1,
    }
    assert _listed(client) == [mine[2]]
    assert post(client, f"{API}/archive", {"ids": [theirs[0]]}).json["changed"] == 0
    assert post(client, f"{API}/{theirs[0]}/archive").status_code == 404
    assert post(client, f"{API}/unarchive", {"all": True}).json["changed"] == 2
    with web.app_context():
        assert web.notices.get(2, theirs[0]).archived_at is None


def test_seen_is_recorded_once_and_needs_csrf(web):  # noqa: F811
    nid = publish(web, 1)[0]
    client = client_for(web, 1)
    assert post(client, f"{API}/{nid}/seen", token=False).status_code == 400
    assert client.get(f"{API}/{nid}").json["notice"]["seen_at"] is None
    first = post(client, f"{API}/{nid}/seen").json
    assert first["notice"]["seen_at"] and first["unread"] == 1  # seen is not read
    assert post(client, f"{API}/seen", {"all": True}).json["changed"] == 0
    assert client.get(f"{API}/{nid}").json["notice"]["seen_at"] == first["notice"]["seen_at"]
    assert post(client_for(web, 2), f"{API}/{nid}/seen").status_code == 404
