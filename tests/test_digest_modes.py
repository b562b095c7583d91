"""Digest modes (issue 16, item 6): the part built so far — a digest-only app (no
per-notice email sender) lets users leave a type out of the digest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import request

from notice import NoticeType, notice_event
from notice.preferences.digest import run_digest
from notice.web.auth import SESSION_KEY
from tests.support.emailapp import address, email_app
from tests.support.smtpserver import SMTPServer

TOKEN = "csrf-test-token"


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def test_digest_only_app_can_exclude_a_type(app_factory: Any, smtp: SMTPServer) -> None:
    # the inbox is the only sender; email goes out only as the digest
    app = email_app(app_factory, smtp, NOTICE_SENDERS=["memory"])
    with app.app_context():
        prefs = app.notices.preferences
        assert "email" not in prefs.channels() and "email" in prefs.settable_channels()
        prefs.set_digest(1, "daily")
        prefs.set(1, "Like", "email", False)  # was ValueError: unknown channel 'email'
        assert not prefs.enabled(1, "Like", "email")
        notice_event(1, NoticeType.LIKE, subject="a like", content="")
        notice_event(1, NoticeType.COMMENT, subject="a comment", content="")
        report = run_digest(app.notices.state(), "daily")
        assert (report.sent, report.notices) == (1, 1)
        [mail] = smtp.messages
        assert mail.rcpt_tos == [address(1)]
        text = mail.message.get_body(("plain",)).get_content()
        assert "a comment" in text and "a like" not in text


def test_digest_only_json_api_accepts_email(app_factory: Any, smtp: SMTPServer) -> None:
    app = email_app(app_factory, smtp, NOTICE_SENDERS=["memory"])
    app.notices.user_loader(lambda: request.headers.get("X-User", type=int))
    client = app.test_client()
    with client.session_transaction() as session:
        session[SESSION_KEY] = TOKEN
    client.environ_base["HTTP_X_USER"] = "1"
    change = {"preferences": {"Like": {"email": False}}}
    assert client.post("/notices/preferences.json", json=change).status_code == 400  # no CSRF
    r = client.post("/notices/preferences.json", json=change, headers={"X-CSRFToken": TOKEN})
    assert r.status_code == 200
    bad = {"preferences": {"Like": {"fax": False}}}
    r = client.post("/notices/preferences.json", json=bad, headers={"X-CSRFToken": TOKEN})
    assert r.status_code == 400
    with app.app_context():
        assert not app.notices.preferences.enabled(1, "Like", "email")
        assert app.notices.preferences.enabled(1, "Comment", "email")
