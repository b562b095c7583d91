"""A small app with the inbox, for browser tests, two-process stream tests and benches.

``create_app(db_url, **config)`` builds it; ``python -m tests.support.inboxapp``
serves it on a free loopback port with werkzeug's threaded server (printing
``PORT <n>``), configured from the environment:

- ``NOTICE_TEST_DB_URL``: the database (required; tables must exist unless
  ``NOTICE_TEST_CREATE=1``);
- ``NOTICE_TEST_BROKER_URL``: ``NOTICE_BROKER_URL`` (default: in-process);
- ``NOTICE_TEST_CHANNEL``: ``NOTICE_BROKER_CHANNEL``; ``NOTICE_TEST_HEARTBEAT``:
  ``NOTICE_SSE_HEARTBEAT``.

``gunicorn 'tests.support.inboxapp:from_env()'`` serves the same app.

Routes besides the inbox: ``/login/<id>`` logs in with flask-login, ``/`` is a page
with the bell, ``POST /send`` (JSON ``user_id``, ``subject``, ``content``, ``data``)
publishes a notice from this process: test-only, never in a real app. A request with
header ``X-Test-User`` is that user (for benchmarks' many clients).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from flask import Flask, redirect, render_template_string, request
from flask_login import LoginManager, UserMixin, login_user
from flask_sqlalchemy import SQLAlchemy
from werkzeug.serving import make_server

from notice import Notices, notice_event

PAGE = """{% extends "notice/base.html" %}
{% block head %}<link rel="icon" href="data:,">{% endblock %}
{% block notice_content %}<h1 class="home">Home of user {{ user_id }}</h1>{% endblock %}
"""


class User(UserMixin):
    def __init__(self, user_id: int) -> None:
        self.id = user_id


def create_app(db_url: str, *, create: bool = False, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        SECRET_KEY="inbox-test-app",
        NOTICE_SENDERS=["memory"],
    )
    app.config.update(config)
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    login = LoginManager(app)
    login.login_view = "login"

    @login.user_loader
    def load_user(user_id: str) -> User:
        return User(int(user_id))

    @login.request_loader
    def header_user(req: Any) -> User | None:
        raw = req.headers.get("X-Test-User")
        return User(int(raw)) if raw else None

    @app.get("/login/<int:user_id>")
    def login(user_id: int = 0) -> Any:
        login_user(User(user_id))
        return redirect("/")

    @app.get("/")
    def home() -> Any:
        from flask_login import current_user

        return render_template_string(PAGE, user_id=getattr(current_user, "id", None))

    @app.post("/send")
    def send() -> Any:
        body = request.get_json(force=True)
        n = notice_event(
            body["user_id"],
            subject=body.get("subject", "hello"),
            content=body.get("content", ""),
            url=body.get("url"),
            data=body.get("data"),
        )
        return {"id": n.id}

    @app.get("/favicon.ico")
    def favicon() -> Any:
        return "", 204

    app.db = db  # type: ignore[attr-defined]
    app.notices = notices  # type: ignore[attr-defined]
    if create:
        with app.app_context():
            db.create_all()
    return app


def from_env() -> Flask:
    broker = os.environ.get("NOTICE_TEST_BROKER_URL") or None
    extra: dict[str, Any] = {"NOTICE_BROKER_URL": broker}
    if os.environ.get("NOTICE_TEST_CHANNEL"):
        extra["NOTICE_BROKER_CHANNEL"] = os.environ["NOTICE_TEST_CHANNEL"]
    if os.environ.get("NOTICE_TEST_HEARTBEAT"):
        extra["NOTICE_SSE_HEARTBEAT"] = float(os.environ["NOTICE_TEST_HEARTBEAT"])
    return create_app(
        os.environ["NOTICE_TEST_DB_URL"],
        create=os.environ.get("NOTICE_TEST_CREATE") == "1",
        **extra,
    )


def main() -> None:
    app = from_env()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    finally:
        sys.stdout.flush()


if __name__ == "__main__":
    main()
