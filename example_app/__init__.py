"""A small social app that shows every part of ``notice``: sign up, post, comment,
reply, like, follow, save, groups and watched posts, each turning into notices; the
bell, the pop-up, the inbox and the preferences page; an operations page for admins.

``python -m example_app`` runs it on SQLite with no other setup; see the README's
walkthrough. ``create_app(config)`` is the app factory (the tests pass their own
database URL).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_login import LoginManager

from notice import Notices

from .models import User, db

notices = Notices(db=db, user_table="user.id")
login_manager = LoginManager()
login_manager.login_view = "auth.login"


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@notices.email_loader
def _email_of(user_id: object) -> str | None:
    """Where the email sender and the digest send a user's notices."""
    # its own connection: with NOTICE_DISPATCH="sync" senders run inside db.session's
    # after-commit hook, where that session cannot run queries
    with db.engine.connect() as conn:
        email: str | None = conn.scalar(
            sa.select(User.email).where(User.id == int(str(user_id)))
        )
    return email


@notices.reference_resolver
def _names(kind: str, ids: list[str]) -> dict[str, tuple[str, str]]:
    """Names and pages of the users and posts notices refer to (their actor and target),
    one query per kind for a whole page of notices."""
    from .models import Post

    columns = {"user": (User.id, User.name), "post": (Post.id, Post.title)}
    if kind not in columns:
        return {}
    key, name = columns[kind]
    keys = [int(i) for i in ids if i.isdigit()]
    # its own connection, as _email_of: the email sender names references too, inside
    # db.session's after-commit hook with NOTICE_DISPATCH="sync". Paths by hand: the
    # live stream's publisher thread has no request to build URLs from.
    with db.engine.connect() as conn:
        rows = conn.execute(sa.select(key, name).where(key.in_(keys)))
        return {str(ident): (text, f"/{kind}s/{ident}") for ident, text in rows}


@notices.topic_authorizer
def _may_use_topic(user_id: object, topic: str, action: str) -> bool:
    """Who may follow, read and publish to a topic through notice's API.

    ``group:<id>``: the group's members only (a group's posts are for them). ``post:<id>``:
    whoever can see the post (a post in a group is the group's) may watch it and read
    its history; only the app itself publishes comments to it. Anonymous devices and
    unknown topics: nobody.
    """
    from .models import Membership, Post

    kind, _, ident = topic.partition(":")
    if user_id is None or not ident.isdigit():
        return False
    uid = int(str(user_id))
    if kind == "group":
        return db.session.get(Membership, (int(ident), uid)) is not None
    if kind == "post" and action != "publish":
        post = db.session.get(Post, int(ident))
        if post is None:
            return False
        return post.group_id is None or db.session.get(Membership, (post.group_id, uid)) is not None
    return False


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the example app.

    Settings, weakest first: the defaults below (SQLite in the instance folder,
    in-process broker, thread-pool dispatch, the log sender; ``webpush`` joins when
    ``NOTICE_VAPID_PRIVATE_KEY`` is set, ``email`` when ``NOTICE_MAIL_SENDER`` is),
    environment variables (``DATABASE_URL``, ``SECRET_KEY``, ``EXAMPLE_COMMENT_EMAIL_DELAY``
    and any ``NOTICE_*`` key, JSON-decoded when it parses, e.g.
    ``NOTICE_BROKER_URL=redis://127.0.0.1:6379/0``), then ``config``.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(
        NOTICE_DISPATCH="thread",
        NOTICE_SENDERS=["log"],
        # notice's inbox and preferences pages render inside the example's layout
        NOTICE_BASE_TEMPLATE="example/base.html",
        # likes of a post within a minute fold into one item, sent once (the demo's
        # short window; a real app would take 10 minutes or more)
        NOTICE_GROUP_WINDOWS={"Like": 60},
        # follows reach users by email in the daily digest, not one by one (each user
        # may choose otherwise on the preferences page)
        NOTICE_EMAIL_MODES={"Follow": "daily"},
        # seconds a comment or reply waits before its email, which goes only if the
        # notice is still unread then (0: at once); shorten it to watch the demo
        EXAMPLE_COMMENT_EMAIL_DELAY=600,
    )
    app.config.update(_from_env())
    app.config.update(config or {})
    _comment_email_policy(app)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        database = Path(app.instance_path) / "example.db"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{database}"
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(app)
    senders = list(app.config["NOTICE_SENDERS"])
    if push_configured(app) and "webpush" not in senders:
        senders.append("webpush")
    if app.config.get("NOTICE_MAIL_SENDER") and "email" not in senders:
        senders.append("email")
        # links in emails point back at the dev server unless told otherwise
        app.config.setdefault(
            "NOTICE_BASE_URL", f"http://127.0.0.1:{os.environ.get('PORT', '5000')}"
        )
    if os.environ.get("EXAMPLE_SLACK") == "1" and "slack" not in senders:
        # off by default: a console "Slack" showing one message per event (see slackconsole)
        from . import slackconsole

        app.config.update(slackconsole.start())
        senders.append("slack")
    app.config["NOTICE_SENDERS"] = senders

    db.init_app(app)
    notices.init_app(app)
    login_manager.init_app(app)

    from . import auth, ops, views

    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_blueprint(ops.bp)
    views.install_template_helpers(app)
    return app


#: the types whose email waits for EXAMPLE_COMMENT_EMAIL_DELAY and goes only if unread:
#: every notice a comment makes
COMMENT_TYPES = ("Comment", "Reply", "Watching")


def _comment_email_policy(app: Flask) -> None:
    """Emails about comments (Comment, Reply, Watching) only if still unread after the
    delay: notice's per-type policy (``NOTICE_DELAY_DEFAULTS``,
    ``NOTICE_UNLESS_READ_DEFAULTS``), so every ``notice_event`` of those types gets it
    without saying so. An app's own entries for those types win."""
    raw = app.config["EXAMPLE_COMMENT_EMAIL_DELAY"]
    try:
        delay = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"EXAMPLE_COMMENT_EMAIL_DELAY must be seconds, got {raw!r}") from None
    if delay < 0:
        raise ValueError(f"EXAMPLE_COMMENT_EMAIL_DELAY must not be negative, got {raw!r}")
    delays = {t: {"email": delay} for t in COMMENT_TYPES}
    app.config["NOTICE_DELAY_DEFAULTS"] = {**delays, **app.config.get("NOTICE_DELAY_DEFAULTS", {})}
    unless = {t: ["email"] for t in COMMENT_TYPES}
    app.config["NOTICE_UNLESS_READ_DEFAULTS"] = {
        **unless,
        **app.config.get("NOTICE_UNLESS_READ_DEFAULTS", {}),
    }


def push_configured(app: Flask) -> bool:
    """Web Push is on when a VAPID private key is configured."""
    return bool(app.config.get("NOTICE_VAPID_PRIVATE_KEY"))


def _from_env() -> dict[str, Any]:
    found: dict[str, Any] = {}
    if os.environ.get("DATABASE_URL"):
        found["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    if os.environ.get("SECRET_KEY"):
        found["SECRET_KEY"] = os.environ["SECRET_KEY"]
    for key, raw in os.environ.items():
        if key.startswith("NOTICE_") or key == "EXAMPLE_COMMENT_EMAIL_DELAY":
            try:
                found[key] = json.loads(raw)
            except ValueError:
                found[key] = raw  # plain strings need no JSON quotes
    return found


def _instance_secret(app: Flask) -> str:
    # kept in the instance folder so logins survive a restart of the dev server
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
