"""An app for digest subprocesses: ``flask --app tests.support.digestapp notice digest``.

Configured from the environment, so a test can run several digests on one database:

- ``NOTICE_TEST_DB_URL``: the database (required);
- ``NOTICE_TEST_SMTP_PORT``: the loopback SMTP server's port (required);
- ``NOTICE_TEST_START``: a path; the app announces itself with ``<path>.<pid>`` and
  waits (at most 30 s) until ``<path>`` exists, so the runs start together.

User N's address is ``userN@example.com`` (as in :mod:`tests.support.emailapp`).
"""

from __future__ import annotations

import os
import time

from flask import Flask
from flask_sqlalchemy import SQLAlchemy

from notice import Notices
from tests.support.emailapp import BASE_URL, FROM, address


def create_app() -> Flask:
    app = Flask("digestapp")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=os.environ["NOTICE_TEST_DB_URL"],
        SECRET_KEY="test-secret",
        NOTICE_SENDERS=["memory"],
        NOTICE_STREAM=False,
        NOTICE_MAIL_HOST="127.0.0.1",
        NOTICE_MAIL_PORT=int(os.environ["NOTICE_TEST_SMTP_PORT"]),
        NOTICE_MAIL_SENDER=FROM,
        NOTICE_MAIL_TIMEOUT=10.0,
        NOTICE_BASE_URL=BASE_URL,
    )
    db = SQLAlchemy()
    notices = Notices(db=db)
    db.init_app(app)
    notices.init_app(app)
    notices.email_loader(address)
    start = os.environ.get("NOTICE_TEST_START")
    if start:
        with open(f"{start}.{os.getpid()}", "w"):
            pass
        deadline = time.monotonic() + 30
        while not os.path.exists(start) and time.monotonic() < deadline:
            time.sleep(0.01)
    return app
