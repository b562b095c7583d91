"""Seen vs read and archive through the inbox pages, on SQLite and PostgreSQL: the
unseen count beside the unread one (API, stream events, the bell's badge per
``NOTICE_BADGE_COUNTS``), the ``notice_seen`` signal and ``notice_read`` on every read
path, the page's archive / unarchive / "archive all read" forms and "Archived" view,
the optional category / actions / actor / target of real rows on the page (references
named by the resolver, one call per type; escaped, unsafe links left out), the category
filter and "Archive all read" disabled when nothing is read."""

from __future__ import annotations

import re
from typing import Any

import pytest

from notice import notice_event
from notice.errors import ConfigurationError
from notice.signals import notice_read, notice_seen
from tests.test_inbox_api import API, _login, client_for, post, publish

PAGE = "/notices/"


@pytest.fixture
def web(app_factory):
    app = app_factory()
    _login(app)
    return app


@pytest.fixture
def recorded():
    """``(signal name, kwargs)`` of every notice_read / notice_seen sent."""
    calls: list[tuple[str, dict]] = []

    def on_read(sender, **kw):
        calls.append(("read", kw))

    def on_seen(sender, **kw):
        calls.append(("seen", kw))

    notice_read.connect(on_read)
    notice_seen.connect(on_seen)
    yield calls
    notice_read.disconnect(on_read)
    notice_seen.disconnect(on_seen)


def _badge(html: str) -> str:
    found = re.search(r'class="notice-bell".*?data-notice-count>(\d+)<', html, re.S)
    assert found, html
    return found.group(1)


def _form(client, **fields):
    data = {"csrf_token": client.token, "next": PAGE, **fields}
    return client.post("/notices/mark", data=data)


def test_seen_lowers_unseen_not_unread_and_signals_once(web, recorded):
    a, b, c = publish(web, 1, 3)
    publish(web, 2, 1)
    client = client_for(web, 1)
    assert client.get("/notices/api/unread-count").json == {"unread": 3, "unseen": 3}
    body = post(client, f"{API}/seen", {"ids": [a, b]}).json
    assert body == {"changed": 2, "unread": 3, "unseen": 1}
    assert recorded == [("seen", {"user_id": 1, "ids": [a, b], "count": 2})]
    # seen again: nothing changes, nobody is told
    assert post(client, f"{API}/{a}/seen").json["unseen"] == 1
    assert len(recorded) == 1
    # reading is seeing: c is neither unread nor unseen afterwards
    assert post(client, f"{API}/{c}/read").json["unseen"] == 0
    with web.app_context():
        assert web.notices.get(1, c).seen_at is not None
        assert web.notices.get(2, publish(web, 2, 1)[0]).seen_at is None


def test_notice_read_fires_on_every_read_path(web, recorded):
    ids = publish(web, 1, 5)
    client = client_for(web, 1)
    post(client, f"{API}/{ids[0]}/read")  # the API, one (what a click on an item does)
    post(client, f"{API}/read", {"ids": [ids[1]]})  # the API, many
    assert _form(client, action="read", id=str(ids[2])).status_code == 303  # the page
    with web.app_context():
        web.notices.mark_read(1, [ids[3]])  # the façade
    _form(client, action="read", all="1")  # the page's "Mark all read"
    post(client, f"{API}/unread", {"all": True})  # unread: the same signal, read=False
    reads = [kw for name, kw in recorded if name == "read"]
    assert [(kw["ids"], kw["read"], kw["count"]) for kw in reads] == [
        ([ids[0]], True, 1),
        ([ids[1]], True, 1),
        ([ids[2]], True, 1),
        ([ids[3]], True, 1),
        (None, True, 1),
        (None, False, 5),
    ]


@pytest.mark.parametrize("mode", ["unread", "unseen"])
def test_the_bell_badge_counts_what_the_setting_says(app_factory, mode):
    app = app_factory(NOTICE_BADGE_COUNTS=mode)
    _login(app)
    a, _b = publish(app, 1, 2)
    client = client_for(app, 1)
    post(client, f"{API}/{a}/seen")
    page = client.get(PAGE).text
    assert _badge(page) == ("2" if mode == "unread" else "1")
    assert f'data-badge="{mode}"' in page  # notice.js keeps the same count live
    # the inbox heading's badge says "unread" whatever the bell counts
    assert re.search(r'notice-inbox__title.*?data-notice-count="unread">2<', page, re.S)


def test_badge_setting_is_validated(app_factory):
    with pytest.raises(ConfigurationError, match="NOTICE_BADGE_COUNTS"):
        app_factory(NOTICE_BADGE_COUNTS="unopened")


def test_count_events_name_seen_and_archived_ids(web):
    a, b, c = publish(web, 1, 3)
    broker = web.notices.state(web).broker
    sub = broker.subscribe("1")
    try:
        with web.app_context():
            web.notices.mark_seen(1, [a])
            web.notices.mark_read(1, [b])
            web.notices.archive(1, only_read=True)
            web.notices.unarchive(1, [b])
            web.notices.archive(1, [c])
        events = [sub.get(timeout=10) for _ in range(5)]
    finally:
        sub.close()
    # the counts are read when the publisher's turn comes (never stale, maybe newer than
    # the change that queued them); the last ones are the final state
    assert [
        {k: v for k, v in e["data"].items() if k not in ("unread", "unseen")} for e in events
    ] == [
        {"seen": [a]},
        {"ids": [b], "read": True},
        {"archived": "read"},  # "archive all read": no ids
        {"unarchived": [b]},
        {"archived": [c]},
    ]
    assert all(set(e["data"]) >= {"unread", "unseen"} for e in events)
    assert events[-1]["data"]["unread"] == 1 and events[-1]["data"]["unseen"] == 0


def test_page_archive_unarchive_and_archive_all_read(web):
    a, b, c = publish(web, 1, 3)
    theirs = publish(web, 2, 1)[0]
    client = client_for(web, 1)
    page = client.get(PAGE).text
    assert page.count('value="archive"') == 4  # one per item and "Archive all read"
    assert "Archive all read" in page
    assert _form(client, action="archive", id=str(a)).status_code == 303
    assert f'data-notice-id="{a}"' not in client.get(PAGE).text
    archived = client.get(f"{PAGE}?archived=only").text
    assert f'data-notice-id="{a}"' in archived and f'data-notice-id="{b}"' not in archived
    assert 'value="unarchive"' in archived and "Archive all read" not in archived
    assert 'aria-current="page">Archived<' in archived
    assert 'name="archived" value="only"' in archived  # the filters keep the view
    assert _form(client, action="unarchive", id=str(a)).status_code == 303
    assert f'data-notice-id="{a}"' in client.get(PAGE).text
    # "Archive all read" takes the read ones only
    post(client, f"{API}/read", {"ids": [b]})
    assert _form(client, action="archive", all="1").status_code == 303
    listed = client.get(PAGE).text
    assert f'data-notice-id="{b}"' not in listed and f'data-notice-id="{c}"' in listed
    assert "No archived notifications." in client_for(web, 3).get(f"{PAGE}?archived=only").text
    # owner checks and CSRF
    assert _form(client, action="archive", id=str(theirs)).status_code == 404
    no_token = client.post("/notices/mark", data={"action": "archive", "id": str(c)})
    assert no_token.status_code in (400, 403)
    with web.app_context():
        assert web.notices.get(2, theirs).archived_at is None
        assert web.notices.get(1, c).archived_at is None


def _items(html: str) -> dict[str, str]:
    return {
        m.group(2): m.group(1)
        for m in re.finditer(
            r'(<li class="notice-item[^"]*" data-notice-id="(\d+)".*?</li>)', html, re.S
        )
    }


def test_category_actions_actor_and_target_on_the_page_from_real_rows(web):
    calls: list[tuple[str, list[str]]] = []

    @web.notices.reference_resolver
    def names(kind: str, ids: list[str]) -> dict[str, Any]:
        calls.append((kind, sorted(ids)))
        if kind == "user":
            return {i: (f"Ana <{i}>", f"/users/{i}") for i in ids}
        # a url on another origin may not be a link: the name shows as text
        return {i: (f"Post {i}", "https://evil.test/") for i in ids}

    plain = publish(web, 1, 1)[0]
    with web.app_context():
        rich = [
            notice_event(
                1,
                "Comment",
                subject=f"rich {n}",
                content="",
                actor=("user", 7 + n % 2),
                target=("post", n),
                category="warning",
                actions=[
                    {"label": "Approve <now>", "url": f"/approve/{n}", "method": "POST"},
                    {"label": "View", "url": f"/posts/{n}"},
                ],
            ).id
            for n in range(3)
        ]
    client = client_for(web, 1)
    calls.clear()
    page = client.get(PAGE).text
    # one resolver call per reference type for the whole page, not one per notice
    assert sorted(calls) == [("post", ["0", "1", "2"]), ("user", ["7", "8"])]
    items = _items(page)
    rich_html, plain_html = items[str(rich[1])], items[str(plain)]
    assert "notice-level-warning" in rich_html.split(">", 1)[0]
    assert '<span class="notice-item__level">Warning</span>' in rich_html
    # the default category is info; a notice without actions or references has none
    assert "notice-level-info" in plain_html.split(">", 1)[0]
    assert "notice-item__level" not in plain_html  # a label on every item says nothing
    assert "notice-item__links" not in plain_html and "notice-item__refs" not in plain_html
    # POST: a form with the CSRF token; GET: a link; text escaped
    assert re.search(
        r'<form class="notice-action-form" method="post" action="/approve/1">\s*'
        rf'<input type="hidden" name="csrf_token" value="{re.escape(client.token)}">\s*'
        r'<button class="notice-button notice-action">Approve &lt;now&gt;</button>',
        rich_html,
    )
    assert '<a class="notice-button notice-action" href="/posts/1">View</a>' in rich_html
    # the resolver's names: the actor links to its page, the target's foreign url is text
    assert '<a class="notice-item__actor" href="/users/8">Ana &lt;8&gt;</a>' in rich_html
    assert '<span class="notice-item__target">Post 1</span>' in rich_html
    assert "evil.test" not in page
    # without a resolver the references have no name and show nothing
    web.notices.state(web).reference_resolver = None
    assert "notice-item__refs" not in _items(client.get(PAGE).text)[str(rich[1])]


def test_category_filter_and_archive_all_read_state(web):
    with web.app_context():
        warn = notice_event(1, "Comment", subject="warn", content="", category="warning").id
        info = notice_event(1, "Comment", subject="info", content="").id
    client = client_for(web, 1)
    page = client.get(f"{PAGE}?category=warning").text
    assert list(_items(page)) == [str(warn)]
    assert '<option value="warning" selected>Warning</option>' in page
    assert 'data-notice-filter-category="warning"' in page  # the live list filters too
    assert client.get(f"{PAGE}?category=nope").status_code == 400
    # nothing read: "Archive all read" has nothing to do and is disabled
    assert re.search(r'value="archive" disabled>Archive all read<', client.get(PAGE).text)
    post(client, f"{API}/read", {"ids": [info]})
    assert re.search(r'value="archive">Archive all read<', client.get(PAGE).text)
    assert _form(client, action="archive", all="1").status_code == 303
    assert re.search(r'value="archive" disabled>Archive all read<', client.get(PAGE).text)
