"""The social part: feed, posts, comments and replies, likes, saves, follows, groups
and watched posts. Every state change is a CSRF-checked POST that calls
:mod:`example_app.events` and commits once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from jinja2 import TemplateNotFound
from werkzeug.wrappers import Response

from notice.web.auth import check_csrf

from . import events, notices, push_configured
from .models import Comment, Follow, Group, Like, Membership, Post, Save, User, db

bp = Blueprint("example", __name__)


@bp.before_request
def _csrf() -> None:
    if request.method == "POST":
        check_csrf()


def _me() -> User:
    user: User = current_user._get_current_object()
    return user


def _get_or_404(model: Any, ident: int) -> Any:
    row = db.session.get(model, ident)
    if row is None:
        abort(404)
    return row


def _too_long(text: str) -> bool:
    """Whether ``text`` is over the notices' content limit (NOTICE_MAX_CONTENT, UTF-8
    bytes): the form says so instead of notice_event's ValueError becoming a 500."""
    limit = notices.state().settings.max_content
    return len(text) > limit or len(text.encode()) > limit


def _back(default: str) -> Response:
    return redirect(request.form.get("back") or default)


@bp.route("/")
@login_required
def index() -> str:
    posts = db.session.scalars(sa.select(Post).order_by(Post.id.desc()).limit(50)).all()
    return render_template("example/index.html", posts=posts)


@bp.route("/posts", methods=["POST"])
@login_required
def create_post() -> Response:
    title = request.form.get("title", "").strip()[:200]
    body = request.form.get("body", "").strip()
    group_id = request.form.get("group_id", type=int)
    group = None
    if group_id is not None:
        group = _get_or_404(Group, group_id)
        if _me().id not in events.members(group):
            abort(403)
    if not title:
        flash("A post needs a title.", "error")
        return _back(url_for("example.index"))
    if _too_long(body):
        flash("This post is too long.", "error")
        return _back(url_for("example.index"))
    post = Post(author=_me(), title=title, body=body, group=group)
    db.session.add(post)
    db.session.flush()
    events.post_created(post)
    db.session.commit()
    return redirect(url_for("example.post", post_id=post.id))


@bp.route("/posts/<int:post_id>")
@login_required
def post(post_id: int) -> str:
    post = _get_or_404(Post, post_id)
    me = _me().id
    mine = {
        "liked": db.session.get(Like, (me, post.id)) is not None,
        "saved": db.session.get(Save, (me, post.id)) is not None,
        "watching": me in events.watcher_ids(post),
    }
    likes = db.session.scalar(sa.select(sa.func.count()).where(Like.post_id == post.id))
    return render_template("example/post.html", post=post, mine=mine, likes=likes)


@bp.route("/posts/<int:post_id>/comments", methods=["POST"])
@login_required
def comment(post_id: int) -> Response:
    post = _get_or_404(Post, post_id)
    body = request.form.get("body", "").strip()
    parent_id = request.form.get("parent_id", type=int)
    parent = None
    if parent_id is not None:
        parent = _get_or_404(Comment, parent_id)
        if parent.post_id != post.id:
            abort(400)
    if not body:
        flash("A comment cannot be empty.", "error")
        return redirect(url_for("example.post", post_id=post.id))
    if _too_long(body):
        flash("This comment is too long.", "error")
        return redirect(url_for("example.post", post_id=post.id))
    comment = Comment(post=post, author=_me(), parent=parent, body=body)
    db.session.add(comment)
    db.session.flush()
    events.comment_created(comment)
    db.session.commit()
    return redirect(url_for("example.post", post_id=post.id, _anchor=f"c{comment.id}"))


def _toggle(model: Any, key: tuple[int, ...], make: Any, on_add: Any) -> None:
    """Add the row if missing (and notify), remove it if present; commit."""
    row = db.session.get(model, key)
    if row is None:
        db.session.add(make())
        db.session.flush()
        on_add()
    else:
        db.session.delete(row)
    db.session.commit()


@bp.route("/posts/<int:post_id>/like", methods=["POST"])
@login_required
def like(post_id: int) -> Response:
    post, me = _get_or_404(Post, post_id), _me()
    _toggle(
        Like, (me.id, post.id),
        lambda: Like(user_id=me.id, post_id=post.id), lambda: events.liked(post, me),
    )
    return redirect(url_for("example.post", post_id=post.id))


@bp.route("/posts/<int:post_id>/save", methods=["POST"])
@login_required
def save(post_id: int) -> Response:
    post, me = _get_or_404(Post, post_id), _me()
    _toggle(
        Save, (me.id, post.id),
        lambda: Save(user_id=me.id, post_id=post.id), lambda: events.saved(post, me),
    )
    return redirect(url_for("example.post", post_id=post.id))


@bp.route("/posts/<int:post_id>/watch", methods=["POST"])
@login_required
def watch(post_id: int) -> Response:
    post, me = _get_or_404(Post, post_id), _me()
    events.watch(post, me, on=me.id not in events.watcher_ids(post))
    db.session.commit()
    return redirect(url_for("example.post", post_id=post.id))


@bp.route("/users/<int:user_id>")
@login_required
def user(user_id: int) -> str:
    user = _get_or_404(User, user_id)
    posts = db.session.scalars(
        sa.select(Post).where(Post.author_id == user.id).order_by(Post.id.desc())
    ).all()
    following = db.session.get(Follow, (_me().id, user.id)) is not None
    return render_template("example/user.html", user=user, posts=posts, following=following)


@bp.route("/users/<int:user_id>/follow", methods=["POST"])
@login_required
def follow(user_id: int) -> Response:
    user, me = _get_or_404(User, user_id), _me()
    if user.id == me.id:
        abort(400)
    _toggle(
        Follow, (me.id, user.id),
        lambda: Follow(follower_id=me.id, followed_id=user.id), lambda: events.followed(user, me),
    )
    return redirect(url_for("example.user", user_id=user.id))


@bp.route("/users/<int:user_id>/follow-back", methods=["POST"])
@login_required
def follow_back(user_id: int) -> Response:
    """The "Follow back" action of a Follow notice: follows, never unfollows (the
    notice may be clicked after following from the profile)."""
    user, me = _get_or_404(User, user_id), _me()
    if user.id == me.id:
        abort(400)
    if db.session.get(Follow, (me.id, user.id)) is None:
        db.session.add(Follow(follower_id=me.id, followed_id=user.id))
        db.session.flush()
        events.followed(user, me)
        db.session.commit()
    flash(f"You follow {user.name}.")
    return redirect(url_for("example.user", user_id=user.id))


@bp.route("/groups", methods=["GET", "POST"])
@login_required
def groups() -> str | Response:
    if request.method == "POST":
        name = request.form.get("name", "").strip()[:80]
        if not name:
            flash("A group needs a name.", "error")
        elif db.session.scalar(sa.select(Group.id).where(Group.name == name)) is not None:
            flash("That name is taken.", "error")
        else:
            group = Group(name=name, owner=_me())
            db.session.add(group)
            db.session.flush()
            db.session.add(Membership(group_id=group.id, user_id=_me().id))
            events.group_created(group)
            db.session.commit()
            return redirect(url_for("example.group", group_id=group.id))
    all_groups = db.session.scalars(sa.select(Group).order_by(Group.name)).all()
    return render_template("example/groups.html", groups=all_groups)


@bp.route("/groups/<int:group_id>")
@login_required
def group(group_id: int) -> str:
    group = _get_or_404(Group, group_id)
    member_ids = events.members(group)
    members = db.session.scalars(sa.select(User).where(User.id.in_(member_ids))).all()
    posts = db.session.scalars(
        sa.select(Post).where(Post.group_id == group.id).order_by(Post.id.desc())
    ).all()
    return render_template(
        "example/group.html",
        group=group,
        members=members,
        posts=posts,
        is_member=_me().id in member_ids,
    )


@bp.route("/groups/<int:group_id>/join", methods=["POST"])
@login_required
def join(group_id: int) -> Response:
    group, me = _get_or_404(Group, group_id), _me()
    row = db.session.get(Membership, (group.id, me.id))
    if row is None:
        events.joined(group, me)
        db.session.add(Membership(group_id=group.id, user_id=me.id))
    elif group.owner_id != me.id:
        db.session.delete(row)
        events.left(group, me)
    db.session.commit()
    return redirect(url_for("example.group", group_id=group.id))


def install_template_helpers(app: Flask) -> None:
    """What every page's header needs: links to notice's pages when they exist, and
    whether to offer push."""

    def counted(n: int, one: str, many: str | None = None) -> str:
        """``{{ n|counted("comment") }}``: "1 comment", "2 comments"."""
        return f"{n} {one if n == 1 else (many or one + 's')}"

    app.add_template_filter(counted, "counted")

    @app.context_processor
    def _header() -> dict[str, Any]:
        unread = 0
        if current_user.is_authenticated:
            unread = notices.unread_count(current_user.id)
        return {
            "notice_ui": notice_ui(app),
            "notice_links": notice_links(app),
            "notice_unread": unread,
            "push_enabled": push_configured(app) and push_script(app),
        }


def notice_ui(app: Flask) -> bool:
    """Whether this version of notice ships the bell macros and notice.js."""
    try:
        app.jinja_env.get_template("notice/macros.html")
    except TemplateNotFound:
        return False
    return "notice.stream" in app.view_functions


def push_script(app: Flask) -> bool:
    """Whether this version of notice ships push.js (its button handler)."""
    static = app.blueprints["notice"].static_folder if "notice" in app.blueprints else None
    return bool(static) and (Path(str(static)) / "notice" / "push.js").is_file()


def notice_links(app: Flask) -> dict[str, str]:
    """URLs of the library's pages this version has (inbox, preferences)."""
    wanted = {
        "inbox": ("notice.inbox", "notice.index"),
        "preferences": ("notice.preferences_page", "notice.preferences"),
    }
    links = {}
    for label, endpoints in wanted.items():
        for endpoint in endpoints:
            if endpoint in app.view_functions:
                links[label] = url_for(endpoint)
                break
    return links
