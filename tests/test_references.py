"""What a notice is about (actor, target, action object), its category and its action
buttons: stored by ``notice_event``, checked there, named by the app's resolver once per
type, listed by reference, deleted with ``notices.delete_for``; SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from notice import notice_event
from notice.errors import InvalidNotice, NoticeError
from notice.store import NoticeQuery

MODELS: dict[str, Any] = {}


def _with_posts(db: Any) -> None:
    class Post(db.Model):
        __tablename__ = "post"
        id = sa.Column(sa.Integer, primary_key=True)
        title = sa.Column(sa.String(80))

    class Tag(db.Model):  # two primary key columns: no reference
        __tablename__ = "tag"
        a = sa.Column(sa.Integer, primary_key=True)
        b = sa.Column(sa.Integer, primary_key=True)

    MODELS.update(Post=Post, Tag=Tag)


@pytest.fixture
def app(app_factory):
    app = app_factory(setup=_with_posts, NOTICE_LINK_ORIGINS=["https://docs.example.org"])
    with app.app_context():
        yield app


def _post(app, title="p"):
    post = MODELS["Post"](title=title)
    app.db.session.add(post)
    app.db.session.commit()
    return post


def test_references_category_and_actions_are_stored_and_in_the_json(app):
    post = _post(app)
    notice = notice_event(
        1,
        subject="Ann commented",
        content="",
        actor=("user", 7),
        target=post,
        action_object=("comment", "c-9"),
        category="warning",
        actions=[
            {"label": "Reply", "url": "/posts/1#reply"},
            {"label": "Approve", "url": "https://docs.example.org/ok", "method": "post"},
        ],
    )
    row = app.notices.get(1, notice.id)
    app.db.session.expire_all()
    row = app.notices.get(1, notice.id)
    assert (row.actor_type, row.actor_id) == ("user", "7")
    assert (row.target_type, row.target_id) == ("post", str(post.id))
    assert (row.action_object_type, row.action_object_id) == ("comment", "c-9")
    data = row.to_dict()
    assert data["category"] == "warning"
    assert data["actor"] == {"type": "user", "id": "7", "name": None, "url": None}
    assert data["target"] == {"type": "post", "id": str(post.id), "name": None, "url": None}
    assert data["actions"] == [
        {"label": "Reply", "url": "/posts/1#reply", "method": "GET"},
        {"label": "Approve", "url": "https://docs.example.org/ok", "method": "POST"},
    ]
    # the notice returned at once (built from what was written) says the same
    assert notice.to_dict()["actions"] == data["actions"]


def test_a_plain_notice_is_info_with_no_references_or_actions(app):
    data = notice_event(1, subject="s", content="").to_dict()
    assert data["category"] == "info"
    assert (data["actor"], data["target"], data["action_object"], data["actions"]) == (
        None,
        None,
        None,
        [],
    )


def test_a_fan_out_writes_the_references_for_every_recipient(app):
    ids = notice_event(
        list(range(1, 30)), subject="s", content="", target=("post", 3), category="success"
    )
    rows = [app.notices.get(u, i) for u, i in zip(range(1, 30), ids, strict=True)]
    assert {(r.target_type, r.target_id, r.category) for r in rows} == {("post", "3", "success")}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"category": "fatal"}, "unknown category 'fatal'"),
        ({"actor": "user:7"}, "actor must be a model instance or a (type, id) pair"),
        ({"target": ("post",)}, "target must be a model instance or a (type, id) pair"),
        ({"target": ("post", None)}, "target id must be a string, an integer or a UUID"),
        ({"target": ("", 1)}, "target type must be 1-64 characters"),
        ({"actor": ("user", "x" * 65)}, "actor id must be 1-64 characters"),
        ({"actions": {"label": "a", "url": "/"}}, "actions must be a list"),
        ({"actions": [{"label": "a", "url": "javascript:alert(1)"}]}, "http(s) or a path"),
        ({"actions": [{"label": "a", "url": "data:text/html,x"}]}, "http(s) or a path"),
        ({"actions": [{"label": "a", "url": "https://evil.example/x"}]}, "NOTICE_LINK_ORIGINS"),
        ({"actions": [{"label": "a", "url": "//evil.example/x"}]}, "http(s) or a path"),
        ({"actions": [{"label": "a", "url": "relative/x"}]}, "path starting with /"),
        ({"actions": [{"label": "", "url": "/"}]}, "label must be a non-empty string"),
        ({"actions": [{"label": "x" * 65, "url": "/"}]}, "at most 64"),
        ({"actions": [{"label": "a", "url": "/", "method": "DELETE"}]}, "GET or POST"),
        ({"actions": [{"label": "a", "url": "/", "target": "_blank"}]}, "unknown key(s) target"),
        ({"actions": [{"label": str(i), "url": "/"} for i in range(4)]}, "the limit is 3"),
    ],
)
def test_wrong_references_categories_and_actions_are_refused_with_a_clear_error(
    app, kwargs, message
):
    with pytest.raises(InvalidNotice) as caught:
        notice_event(1, subject="s", content="", **kwargs)
    assert message in str(caught.value)
    assert isinstance(caught.value, NoticeError) and isinstance(caught.value, ValueError)
    assert app.notices.list_notices(1) == []


def test_an_instance_needs_one_primary_key_with_a_value(app):
    with pytest.raises(InvalidNotice, match="flush it first"):
        notice_event(1, subject="s", content="", target=MODELS["Post"](title="unsaved"))
    with pytest.raises(InvalidNotice, match="one primary key"):
        notice_event(1, subject="s", content="", target=MODELS["Tag"](a=1, b=2))
    key = uuid.UUID(int=7)
    notice = notice_event(1, subject="s", content="", target=("doc", key))
    assert notice.to_dict()["target"]["id"] == str(key)
    with pytest.raises(InvalidNotice, match="not object"):
        notice_event(1, subject="s", content="", target=object())


def test_the_action_limit_is_a_setting(app_factory):
    app = app_factory(NOTICE_MAX_ACTIONS=1)
    with app.app_context():
        with pytest.raises(InvalidNotice, match="the limit is 1"):
            notice_event(1, subject="s", content="", actions=[{"label": "a", "url": "/"}] * 2)
    with pytest.raises(NoticeError, match="NOTICE_MAX_ACTIONS must be a positive number"):
        app_factory(NOTICE_MAX_ACTIONS=0)


def test_list_filters_by_actor_target_and_category(app):
    post = _post(app)
    by_ann = notice_event(1, subject="a", content="", actor=("user", 7), target=post).id
    on_comment = notice_event(1, subject="b", content="", action_object=post, category="error").id
    other = notice_event(1, subject="c", content="", actor=("user", 8), category="error").id
    theirs = notice_event(2, subject="d", content="", actor=("user", 7), target=post).id
    notices = app.notices

    def listed(**filters: Any) -> list[int]:
        return [n.id for n in notices.list_notices(1, **filters)]

    assert listed(actor=("user", "7")) == [by_ann]
    # a target filter takes the notices naming the object as their action object too
    assert listed(target=("post", str(post.id))) == [on_comment, by_ann]
    assert listed(categories=("error",)) == [other, on_comment]
    assert listed(categories=("error",), actor=("user", "8")) == [other]
    assert listed(categories=("success",)) == []
    assert theirs not in listed(target=("post", str(post.id)))


def test_reference_values_written_into_the_query_text_stay_values(app):
    # the filters render type and id into the SQL text (a generic plan would ignore
    # the partial indexes): quotes, backslashes and percent signs must stay data
    tricky = ["x' OR '1'='1", "a\\'; DROP TABLE notice; --", "100%", "it's"]
    ids = {
        v: notice_event(1, subject=v, content="", actor=("user", v), target=(v, v)).id
        for v in tricky
    }
    notice_event(1, subject="plain", content="", actor=("user", "x"), target=("x", "x"))
    for value, nid in ids.items():
        assert [n.id for n in app.notices.list_notices(1, actor=("user", value))] == [nid]
        assert [n.id for n in app.notices.list_notices(1, target=(value, value))] == [nid]
        assert app.notices.delete_for((value, value)) == 1
    assert [n.subject for n in app.notices.list_notices(1)] == ["plain"]


def test_delete_for_removes_every_users_notices_about_the_object(app):
    post, kept = _post(app), _post(app, "other")
    about = [
        notice_event(1, subject="t", content="", target=post).id,
        notice_event(2, subject="t", content="", target=post).id,
        notice_event(2, subject="o", content="", action_object=("post", post.id)).id,
    ]
    by_actor = notice_event(1, subject="a", content="", actor=("post", post.id)).id
    other = notice_event(1, subject="k", content="", target=kept).id
    delivery = app.notices.Delivery
    assert app.db.session.query(delivery).filter(delivery.notice_id.in_(about)).count() == 3
    assert app.notices.delete_for(post) == 3
    assert app.notices.delete_for(("post", post.id)) == 0
    assert {n.id for n in app.notices.list_notices(1)} == {by_actor, other}
    assert app.notices.list_notices(2) == []
    # the deliveries went with them, even on a SQLite connection without cascades
    assert app.db.session.query(delivery).filter(delivery.notice_id.in_(about)).count() == 0
    with pytest.raises(TypeError):
        app.notices.delete_for(None)


def test_delete_for_joins_the_callers_transaction_with_commit_false(app):
    post = _post(app)
    notice_event(1, subject="t", content="", target=post)
    assert app.notices.delete_for(post, commit=False) == 1
    app.db.session.rollback()
    assert len(app.notices.list_notices(1)) == 1


def test_the_resolver_is_called_once_per_type_for_a_page(app):
    calls: list[tuple[str, list[str]]] = []

    @app.notices.reference_resolver
    def names(kind: str, ids: list[str]) -> dict[str, Any]:
        calls.append((kind, sorted(ids)))
        if kind == "user":
            return {i: (f"User {i}", f"/users/{i}") for i in ids}
        if kind == "post":
            return {i: f"Post {i}" for i in ids if i != "13"}
        return {i: ("Evil", "javascript:alert(1)") for i in ids}

    for n in range(50):
        notice_event(
            1,
            subject=f"s{n}",
            content="",
            actor=("user", n % 5),
            target=("post", 10 + n % 4),
            action_object=("comment", n),
        )
    page = app.notices.notice_dicts(app.notices.list_notices(1, limit=50))
    assert sorted(kind for kind, _ in calls) == ["comment", "post", "user"]
    assert dict(calls)["user"] == ["0", "1", "2", "3", "4"]
    first = page[0]
    assert first["actor"] == {"type": "user", "id": "4", "name": "User 4", "url": "/users/4"}
    # newest first: n = 49, post 11; a name alone leaves the url empty
    assert first["target"] == {"type": "post", "id": "11", "name": "Post 11", "url": None}
    unnamed = [d["target"] for d in page if d["target"]["id"] == "13"]
    assert unnamed and all(t["name"] is None for t in unnamed)
    # a resolver url that is no safe link is dropped, its name kept
    assert first["action_object"]["name"] == "Evil" and first["action_object"]["url"] is None


def test_a_failing_resolver_leaves_names_empty_and_is_logged(app, caplog):
    @app.notices.reference_resolver
    def broken(kind: str, ids: list[str]) -> dict[str, Any]:
        raise RuntimeError("boom")

    notice_event(1, subject="s", content="", actor=("user", 1))
    (data,) = app.notices.notice_dicts(app.notices.list_notices(1))
    assert data["actor"]["name"] is None
    assert "reference resolver failed" in caplog.text


def test_store_query_defaults_filter_nothing(app):
    notice_event(1, subject="s", content="", category="error")
    assert len(app.notices.list_notices(1, query=NoticeQuery())) == 1


def test_a_sender_can_be_routed_by_category(app_factory):
    from notice.filters import of_category
    from notice.senders.memory import MemorySender

    app = app_factory(NOTICE_SENDERS=[])
    errors_only = app.notices.register_sender(MemorySender(), when=of_category("error"))
    with app.app_context():
        notice_event(1, subject="fine", content="")
        notice_event(1, subject="broken", content="", category="error")
    assert [n.subject for n in errors_only.outbox] == ["broken"]
    assert errors_only.outbox[0].category == "error"
