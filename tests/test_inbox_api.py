"""The logged-in user's JSON API and inbox page, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask_login import LoginManager, UserMixin

from notice import NoticeType, notice_event
from notice.columns import utcnow
from notice.errors import ConfigurationError
from notice.store import Outcome, claim, finish
from notice.types import DeliveryStatus

API = "/notices/api/notices"


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def _login(app, *, login_view=None):
    manager = LoginManager(app)
    manager.login_view = login_view

    @manager.request_loader
    def from_header(request):
        raw = request.headers.get("X-User")
        return User(raw) if raw else None

    @manager.user_loader
    def load(user_id):
        return User(user_id)

    return manager


@pytest.fixture
def web(app_factory):
    app = app_factory()
    _login(app)
    return app


def client_for(app, user_id):
    """A test client logged in as ``user_id`` with the page's CSRF token at hand."""
    client = app.test_client()
    client.environ_base["HTTP_X_USER"] = str(user_id)
    page = client.get("/notices/")
    assert page.status_code == 200
    client.token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
    return client


def post(client, path, json=None, token=True):
    headers = {"X-CSRFToken": client.token} if token else {}
    return client.post(path, json=json, headers=headers)


def publish(app, user_id, n=1, **kw):
    ids = []
    with app.app_context():
        for i in range(n):
            ids.append(
                notice_event(
                    user_id,
                    subject=kw.get("subject", f"s{i}"),
                    content=kw.get("content", f"c{i}"),
                    notice_type=kw.get("notice_type", NoticeType.SYSTEM),
                    url=kw.get("url"),
                ).id
            )
    return ids


def test_list_is_newest_first_with_unread_count(web):
    ids = publish(web, 1, 3)
    publish(web, 2, 2)
    body = client_for(web, 1).get(API).json
    assert [n["id"] for n in body["notices"]] == ids[::-1]
    assert body["unread"] == 3 and body["next_before_id"] is None
    assert {n["user_id"] for n in body["notices"]} == {1}


def test_filters_read_type_text_and_dates(web):
    a = publish(web, 1, subject="Ana commented", content="nice", notice_type="Comment")[0]
    b = publish(web, 1, subject="Bo liked", content="100% sure", notice_type="Like")[0]
    c = publish(web, 1, subject="System", content="maintenance", notice_type="System")[0]
    client = client_for(web, 1)
    assert post(client, f"{API}/{b}/read").status_code == 200

    def ids(query):
        response = client.get(f"{API}?{query}")
        assert response.status_code == 200, response.json
        return [n["id"] for n in response.json["notices"]]

    assert ids("read=false") == [c, a]
    assert ids("read=true") == [b]
    assert ids("type=Comment") == [a]
    assert ids("type=Comment,Like") == [b, a]
    assert ids("type=Comment&type=System") == [c, a]
    assert ids("q=ANA") == [a]
    assert ids("q=100%25") == [b]  # % is literal, not a wildcard
    assert ids("q=%25") == [b]
    assert ids("q=maint&type=System&read=false") == [c]
    with web.app_context():
        created = web.notices.get(1, b).create_at
    future = (created + timedelta(hours=1)).isoformat()
    past = (created - timedelta(hours=1)).isoformat()
    assert ids(f"before={quote(future)}") == [c, b, a]
    assert ids(f"before={future}") == [c, b, a]  # an unencoded "+" (a space) is forgiven
    assert ids(f"after={future.replace('+00:00', 'Z')}") == []
    assert ids(f"after={quote(past)}&before={quote(future)}") == [c, b, a]
    assert ids("before=2000-01-01") == []


def test_cursor_pagination_edges(web):
    ids = publish(web, 1, 5)[::-1]  # newest first
    client = client_for(web, 1)
    pages, cursor = [], ""
    while True:
        body = client.get(f"{API}?limit=2{cursor}").json
        pages.append([n["id"] for n in body["notices"]])
        if body["next_before_id"] is None:
            break
        cursor = f"&before_id={body['next_before_id']}"
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    # a page that ends exactly at the last notice has no cursor
    body = client.get(f"{API}?limit=5").json
    assert len(body["notices"]) == 5 and body["next_before_id"] is None
    body = client.get(f"{API}?limit=4").json
    assert body["next_before_id"] == ids[3]
    assert client.get(f"{API}?before_id={ids[-1]}").json["notices"] == []
    assert [n["id"] for n in client.get(f"{API}?before_id=999999999").json["notices"]] == ids
    assert len(client.get(f"{API}?limit=100").json["notices"]) == 5


BAD_QUERIES = [
    ("read=maybe", "read"),
    ("type=Nope", "type"),
    ("before=yesterday", "before"),
    ("after=2026-13-01", "after"),
    ("after=2026-02-01&before=2026-01-01", "after"),
    ("before_id=abc", "before_id"),
    ("before_id=0", "before_id"),
    ("before_id=-3", "before_id"),
    ("limit=0", "limit"),
    ("limit=101", "limit"),
    ("limit=1.5", "limit"),
    ("q=" + "x" * 201, "q"),
]


def test_bad_list_parameters_are_400_naming_the_parameter(web):
    client = client_for(web, 1)
    for query, parameter in BAD_QUERIES:
        response = client.get(f"{API}?{query}")
        assert response.status_code == 400, query
        assert response.json["error"] == "bad_parameter", query
        assert response.json["parameter"] == parameter, query
        assert response.json["message"], query


def test_get_one_and_other_users_notice_is_404(web):
    mine = publish(web, 1)[0]
    theirs = publish(web, 2, subject="secret of user 2")[0]
    client = client_for(web, 1)
    assert client.get(f"{API}/{mine}").json["notice"]["id"] == mine
    other = client.get(f"{API}/{theirs}")
    missing = client.get(f"{API}/999999")
    assert other.status_code == missing.status_code == 404
    assert other.json == missing.json and "secret" not in other.text


def test_unread_count_endpoint(web):
    publish(web, 1, 2)
    publish(web, 2, 1)
    assert client_for(web, 1).get("/notices/api/unread-count").json == {"unread": 2, "unseen": 2}
    assert client_for(web, 3).get("/notices/api/unread-count").json == {"unread": 0, "unseen": 0}


def test_mark_one_read_and_unread(web):
    nid = publish(web, 1)[0]
    client = client_for(web, 1)
    body = post(client, f"{API}/{nid}/read").json
    assert body["notice"]["read_status"] == "Read" and body["notice"]["read_at"]
    assert body["unread"] == 0
    body = post(client, f"{API}/{nid}/unread").json
    assert body["notice"]["read_status"] == "Unread" and body["unread"] == 1


def test_marking_another_users_notice_is_404_and_changes_nothing(web):
    theirs = publish(web, 2)[0]
    client = client_for(web, 1)
    assert post(client, f"{API}/{theirs}/read").status_code == 404
    assert (
        client.delete(f"{API}/{theirs}", headers={"X-CSRFToken": client.token}).status_code == 404
    )
    with web.app_context():
        assert web.notices.unread_count(2) == 1
        assert web.notices.get(2, theirs) is not None


def test_mark_many_and_all(web):
    mine = publish(web, 1, 4)
    theirs = publish(web, 2, 1)
    client = client_for(web, 1)
    body = post(client, f"{API}/read", {"ids": [mine[0], mine[1], theirs[0]]}).json
    assert body == {"changed": 2, "unread": 2, "unseen": 2}
    body = post(client, f"{API}/unread", {"ids": [mine[0]]}).json
    # reading is seeing: mine[0], read once, stays seen when it turns unread again
    assert body == {"changed": 1, "unread": 3, "unseen": 2}
    body = post(client, f"{API}/read", {"all": True}).json
    assert body == {"changed": 3, "unread": 0, "unseen": 0}
    body = post(client, f"{API}/unread", {"all": True}).json
    assert body == {"changed": 4, "unread": 4, "unseen": 0}
    with web.app_context():
        assert web.notices.unread_count(2) == 1


def test_two_tabs_marking_all_at_once_while_deliveries_finish_both_succeed(app_factory):
    # each "mark all read" locked the user's rows in the order its plan visited them:
    # against a delivery finish (id order) or the other tab, PostgreSQL aborted one (500)
    app = app_factory(NOTICE_DISPATCH="none", NOTICE_STREAM=False)
    _login(app)
    with app.app_context():
        notice_event([1] * 200, subject="s", content="")
    tabs = [client_for(app, 1), client_for(app, 1)]
    rounds = 20
    barrier = threading.Barrier(2, timeout=60)
    answers: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def click(client) -> None:
        try:
            for _ in range(rounds):
                for action in ("read", "unread"):
                    barrier.wait()
                    response = post(client, f"{API}/{action}", {"all": True})
                    answers.append((action, response.status_code, response.json["changed"]))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            barrier.abort()
            errors.append(exc)

    def deliveries_finish() -> None:
        # a worker finishing (and failing, so they come back) the user's deliveries
        try:
            with app.app_context():
                engine = app.db.engine
                delivery = app.notices.Delivery.__table__
                notice = app.notices.Notice.__table__
                while not done.is_set():
                    token, ids = claim(
                        engine, delivery, now=utcnow(), lease=timedelta(seconds=60), limit=500
                    )
                    rows = app.db.session.execute(
                        sa.select(delivery.c.id, delivery.c.notice_id).where(delivery.c.id.in_(ids))
                    ).all()
                    app.db.session.remove()
                    failed = [Outcome(i, n, DeliveryStatus.ERROR, "x", utcnow()) for i, n in rows]
                    finish(engine, delivery, notice, token, failed, now=utcnow())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=click, args=(tab,)) for tab in tabs]
    worker = threading.Thread(target=deliveries_finish)
    for t in [*threads, worker]:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    worker.join(timeout=60)
    assert not any(t.is_alive() for t in [*threads, worker])
    assert errors == []
    assert {code for _, code, _ in answers} == {200}
    # of each pair of clicks one changed all 200 rows, the other none
    for action in ("read", "unread"):
        assert sum(n for a, _, n in answers if a == action) == 200 * rounds


BAD_BODIES = [
    ({}, "ids"),
    ({"ids": []}, "ids"),
    ({"ids": "1,2"}, "ids"),
    ({"ids": ["x"]}, "ids"),
    ({"ids": [0]}, "ids"),
    ({"ids": [True]}, "ids"),
    ({"ids": list(range(1, 1002))}, "ids"),
    ({"ids": [1], "all": True}, "ids"),
    ({"all": "yes please"}, "all"),
    ([1, 2], "body"),
]


def test_bad_mark_bodies_are_400(web):
    client = client_for(web, 1)
    for body, parameter in BAD_BODIES:
        response = post(client, f"{API}/read", body)
        assert response.status_code == 400, body
        assert response.json["error"] == "bad_parameter", body
        assert response.json["parameter"] == parameter, body
    not_json = client.post(
        f"{API}/read",
        data="{",
        headers={"X-CSRFToken": client.token, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and not_json.json["parameter"] == "body"


def test_delete(web):
    nid, keep = publish(web, 1, 2)
    client = client_for(web, 1)
    response = client.delete(f"{API}/{nid}", headers={"X-CSRFToken": client.token})
    assert response.json == {"deleted": nid, "unread": 1, "unseen": 1}
    assert client.get(f"{API}/{nid}").status_code == 404
    assert client.delete(f"{API}/{nid}", headers={"X-CSRFToken": client.token}).status_code == 404
    with web.app_context():
        deliveries = web.notices.Delivery.query.all()
    assert {d.notice_id for d in deliveries} == {keep}  # its deliveries went with it


def test_state_changes_need_the_csrf_token(web):
    nid = publish(web, 1)[0]
    client = client_for(web, 1)
    requests = [
        ("post", f"{API}/{nid}/read", {}),
        ("post", f"{API}/{nid}/unread", {}),
        ("post", f"{API}/read", {"json": {"ids": [nid]}}),
        ("post", f"{API}/read", {"json": {"all": True}}),
        ("delete", f"{API}/{nid}", {}),
        ("post", "/notices/mark", {"data": {"action": "read", "id": nid}}),
    ]
    for method, url, kwargs in requests:
        for headers in ({}, {"X-CSRFToken": "wrong-token"}):
            response = getattr(client, method)(url, headers=headers, **kwargs)
            assert response.status_code == 400, (method, url, headers)
    assert client.post(f"{API}/read", json={"all": True}).json["error"] == "csrf"
    with web.app_context():
        n = web.notices.get(1, nid)
        assert n is not None and n.read_status == "Unread"
    # the form field works as well as the header, for plain HTML forms
    form = {"action": "read", "id": nid, "csrf_token": client.token}
    assert client.post("/notices/mark", data=form).status_code == 303
    with web.app_context():
        assert web.notices.unread_count(1) == 0


def test_flask_wtf_csrfprotect_token_from_the_meta_tag(app_factory):
    from flask_wtf.csrf import CSRFProtect

    app = app_factory()
    _login(app)
    CSRFProtect(app)
    nid = publish(app, 1)[0]
    client = client_for(app, 1)  # the meta tag carries Flask-WTF's token
    missing = client.post(f"{API}/{nid}/read", headers={"Accept": "application/json"})
    assert missing.status_code == 400 and missing.json["error"] == "csrf"
    wrong = client.post(f"{API}/{nid}/read", headers={"X-CSRFToken": "nope"})
    assert wrong.status_code == 400
    assert post(client, f"{API}/{nid}/read").json["unread"] == 0


def test_not_logged_in(app_factory):
    app = app_factory()
    _login(app, login_view="login")

    @app.get("/login")
    def login():
        return "login page"

    client = app.test_client()
    assert client.get(API).status_code == 401
    assert client.get(API).json["error"] == "unauthorized"
    assert client.post(f"{API}/read", json={"all": True}).status_code == 401
    page = client.get("/notices/?read=false", headers={"Accept": "text/html"})
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=")


def test_user_loader_hook_replaces_flask_login(app_factory):
    app = app_factory()

    @app.notices.user_loader
    def current():
        from flask import request

        return int(request.headers.get("X-Me", 0)) or None

    publish(app, 5, 2)
    client = app.test_client()
    assert client.get(API, headers={"X-Me": "5"}).json["unread"] == 2
    assert client.get(API).status_code == 401


def test_subject_and_content_are_escaped_everywhere(web):
    publish(
        web,
        1,
        subject="<script>alert('s')</script>",
        content='<img src=x onerror="alert(1)">',
        url="javascript:alert(1)",
    )
    client = client_for(web, 1)
    page = client.get("/notices/").text
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page
    assert "javascript:" not in page  # an unsafe url is shown without a link
    body = client.get(API)
    assert body.mimetype == "application/json"
    assert body.json["notices"][0]["subject"] == "<script>alert('s')</script>"


#: never links: another host (protocol-relative or behind a backslash), script, data,
#: and an absolute URL whose origin is not in NOTICE_LINK_ORIGINS
NOT_LINKS = (
    "//evil.example/x",
    "/\\evil.example",
    "javascript:alert(1)",
    "data:text/html,x",
    "https://other.example/x",
)
LINKS = ("/posts/1", "https://docs.example.org/a")


def test_only_same_site_paths_and_allowed_origins_are_links(app_factory):
    app = app_factory(NOTICE_LINK_ORIGINS=["https://Docs.Example.org:443"])
    _login(app)
    for url in LINKS + NOT_LINKS:
        publish(app, 1, subject=url, url=url)
    client = client_for(app, 1)
    page = client.get("/notices/").text
    hrefs = set(re.findall(r'href="([^"]*)"', page))
    assert set(LINKS) <= hrefs
    assert not any(
        h.startswith(("//", "/\\", "javascript:", "data:", "https://other")) for h in hrefs
    )
    assert set(LINKS) == set(re.findall(r'data-notice-url="([^"]*)"', page))
    # the JSON notice.js reads: url as stored, link only when the server approves it
    rows = client.get(API).json["notices"]
    assert {n["url"]: n["link"] for n in rows} == {
        **{url: url for url in LINKS},
        **{url: None for url in NOT_LINKS},
    }
    one = client.get(f"{API}/{rows[0]['id']}").json["notice"]
    assert (one["url"], one["link"]) == ("https://other.example/x", None)
    marked = post(client, f"{API}/{rows[-1]['id']}/read").json["notice"]
    assert (marked["url"], marked["link"]) == ("/posts/1", "/posts/1")


def test_absolute_urls_are_text_unless_their_origin_is_allowed(app_factory):
    app = app_factory(NOTICE_BASE_URL="https://app.example")
    _login(app)
    publish(app, 1, subject="own", url="https://app.example/posts/2")
    publish(app, 1, subject="other", url="https://docs.example.org/a")
    rows = client_for(app, 1).get(API).json["notices"]
    assert [n["link"] for n in rows] == [None, "https://app.example/posts/2"]


@pytest.mark.parametrize(
    "origins",
    ["https://a.example", ["https://a.example/path"], ["ftp://a.example"], ["a.example"], [7]],
)
def test_bad_link_origins_fail_at_startup(app_factory, origins):
    with pytest.raises(ConfigurationError, match="NOTICE_LINK_ORIGINS"):
        app_factory(NOTICE_LINK_ORIGINS=origins)


def test_inbox_page_filters_pagination_and_forms(app_factory):
    app = app_factory(NOTICE_PAGE_SIZE=2)
    _login(app)
    ids = publish(app, 1, 3, notice_type="Comment")
    other = publish(app, 1, subject="system news", notice_type="System")[0]
    client = client_for(app, 1)
    page = client.get("/notices/").text
    assert "system news" in page and 'rel="next"' in page
    older = re.search(r'class="notice-pager__next" rel="next" href="([^"]+)"', page).group(1)
    assert f"before_id={ids[2]}" in older
    second = client.get(older.replace("&amp;", "&")).text
    assert f'data-notice-id="{ids[0]}"' in second and 'rel="next"' not in second
    filtered = client.get("/notices/?type=Comment&read=false").text
    assert "system news" not in filtered and f'data-notice-id="{ids[2]}"' in filtered
    assert client.get("/notices/?limit=zero").status_code == 400

    form = {"csrf_token": client.token, "next": "/notices/?type=Comment"}
    done = client.post("/notices/mark", data={**form, "action": "read", "id": other})
    assert done.status_code == 303 and done.headers["Location"] == "/notices/?type=Comment"
    evil = client.post(
        "/notices/mark",
        data={**form, "action": "read", "all": "1", "next": "https://evil.example/"},
    )
    assert evil.headers["Location"] == "/notices/"
    with app.app_context():
        assert app.notices.unread_count(1) == 0
    gone = client.post("/notices/mark", data={**form, "action": "delete", "id": ids[0]})
    assert gone.status_code == 303
    theirs = publish(app, 2)[0]
    assert (
        client.post("/notices/mark", data={**form, "action": "delete", "id": theirs}).status_code
        == 404
    )
    assert (
        client.post("/notices/mark", data={**form, "action": "read", "id": theirs}).status_code
        == 404
    )
    assert (
        client.post("/notices/mark", data={**form, "action": "explode", "id": ids[1]}).status_code
        == 400
    )


def test_bell_macro_and_unread_count_global(web):
    publish(web, 1, 3)

    @web.get("/page")
    def page():
        from flask import render_template_string

        return render_template_string(
            '{% from "notice/macros.html" import notice_bell %}'
            "{{ notice_bell() }}|{{ notice_unread_count() }}"
        )

    text = client_for(web, 1).get("/page").text
    assert "data-notice-count>3</span>" in text and text.endswith("|3")
    anonymous = web.test_client().get("/page").text
    assert "notice-badge--empty" in anonymous and anonymous.endswith("|0")


def test_base_template_is_configurable(app_factory, tmp_path):
    (tmp_path / "layout.html").write_text(
        "<main id=mine>{% block notice_content %}{% endblock %}</main>"
    )
    app = app_factory(NOTICE_BASE_TEMPLATE="layout.html")
    app.template_folder = str(tmp_path)
    _login(app)
    text = client_for_layout(app)
    assert text.startswith("<main id=mine>") and "notice-inbox" in text


def client_for_layout(app):
    client = app.test_client()
    return client.get("/notices/", headers={"X-User": "1"}).text


def test_http_errors_under_the_blueprint_are_json_for_json_clients(web):
    client = client_for(web, 1)
    response = client.get(f"{API}/999999")
    assert response.status_code == 404
    assert response.json == {"error": "not_found", "message": "no such notice"}
    html = client.get("/notices/?read=maybe", headers={"Accept": "text/html"})
    assert html.status_code == 400 and html.mimetype == "text/html"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("NOTICE_SSE_HEARTBEAT", 0),
        ("NOTICE_SSE_RETRY", "soon"),
        ("NOTICE_PAGE_SIZE", 500),
        ("NOTICE_BROKER_URL", "kafka://127.0.0.1"),
        ("NOTICE_BROKER_URL", 42),
        ("NOTICE_BROKER_CHANNEL", "no spaces; please"),
    ],
)
def test_bad_inbox_config_fails_at_startup(app_factory, key, value):
    with pytest.raises(ConfigurationError, match=key.split("_", 1)[1].split("_")[0]):
        app_factory(**{key: value})


def test_stream_can_be_switched_off(app_factory):
    app = app_factory(NOTICE_STREAM=False)
    _login(app)
    with app.app_context():
        assert app.notices.state(app).broker is None
    assert app.test_client().get("/notices/stream", headers={"X-User": "1"}).status_code == 404
    page = client_for(app, 1).get("/notices/").text
    assert 'data-stream=""' in page


def test_expired_notices_leave_lists_and_counts(web):
    with web.app_context():
        notice_event(
            1,
            subject="old",
            content="",
            expires_at=datetime.now(timezone.utc) + timedelta(milliseconds=50),
        )
    import time

    time.sleep(0.1)
    client = client_for(web, 1)
    assert client.get(API).json == {"notices": [], "next_before_id": None, "unread": 0}


def test_request_bodies_over_the_limit_are_413_json(app_factory):
    app = app_factory(NOTICE_MAX_REQUEST=2000, MAX_CONTENT_LENGTH=None)
    _login(app)
    ids = publish(app, 1, 2)
    client = client_for(app, 1)
    filler = "x" * 2000
    for path in (f"{API}/read", "/notices/preferences.json", "/notices/push/subscribe"):
        resp = client.post(
            path, json={"ids": ids, "pad": filler}, headers={"X-CSRFToken": client.token}
        )
        assert resp.status_code == 413, path
        assert resp.json["error"] == "too_large" and resp.json["limit"] == 2000
        assert "NOTICE_MAX_REQUEST" in resp.json["message"]
    # nothing was marked; a body within the limit goes through
    assert post(client, f"{API}/read", {"ids": ids}).json == {
        "changed": 2,
        "unread": 0,
        "unseen": 0,
    }
    # the app's own routes keep the app's limit (none here)
    assert app.config["MAX_CONTENT_LENGTH"] is None
