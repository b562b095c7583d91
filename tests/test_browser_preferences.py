"""The preferences page and the unsubscribe page in a real browser (Debian's headless
chromium via Playwright), served by werkzeug on a loopback port."""

from __future__ import annotations

import pytest

from notice.links import unsubscribe_url
from tests.support.browser import watch_errors
from tests.support.inboxapp import create_app
from tests.support.sse import serving

pytestmark = pytest.mark.browser


@pytest.fixture
def app(db_url):
    app = create_app(
        db_url,
        create=True,
        NOTICE_REQUIRED_TYPES=["System"],
        NOTICE_BASE_URL="http://x",
        NOTICE_MAIL_SENDER="notices@example.com",  # the digest selector needs email
    )
    yield app
    broker = app.notices.state(app).broker
    if broker is not None:
        broker.close()
    with app.app_context():
        app.db.session.remove()
        app.db.engine.dispose()


def _errors(page):
    page.set_default_timeout(10_000)
    return watch_errors(page)


def test_switches_and_digest_are_saved(browser, app):
    with serving(app) as port:
        page = browser.new_page()
        errors = _errors(page)
        page.goto(f"http://127.0.0.1:{port}/login/3")
        page.goto(f"http://127.0.0.1:{port}/notices/preferences")
        like = page.get_by_label("Like by memory")
        assert like.is_checked()
        assert page.get_by_label("System by memory").is_disabled()  # required
        like.uncheck()
        page.select_option("#notice-digest", "weekly")
        page.get_by_role("button", name="Save").click()
        page.wait_for_selector("text=Your preferences are saved.")
        assert not page.get_by_label("Like by memory").is_checked()
        assert page.get_by_label("Comment by memory").is_checked()
        assert page.locator("#notice-digest").input_value() == "weekly"
        assert errors == []
    with app.app_context():
        prefs = app.notices.preferences
        assert not prefs.enabled(3, "Like", "memory") and prefs.enabled(3, "Comment", "memory")
        assert prefs.enabled(3, "System", "memory") and prefs.get_digest(3) == "weekly"


def test_unsubscribe_page_without_login(browser, app):
    with app.app_context():
        path = unsubscribe_url(app, 8, "Comment", "memory").removeprefix("http://x")
    with serving(app) as port:
        page = browser.new_page()  # a fresh context: no session, nobody logged in
        errors = _errors(page)
        page.goto(f"http://127.0.0.1:{port}{path}")
        page.wait_for_selector("text=Stop receiving Comment notices by memory?")
        with app.app_context():
            assert app.notices.preferences.enabled(8, "Comment", "memory")
        page.get_by_role("button", name="Unsubscribe").click()
        page.wait_for_selector("text=You are unsubscribed")
        response = page.goto(f"http://127.0.0.1:{port}{path}x")  # a damaged link
        assert response is not None and response.status == 400
        assert page.get_by_text("This link is not valid").is_visible()
        assert [e for e in errors if "400" not in e] == []
    with app.app_context():
        assert not app.notices.preferences.enabled(8, "Comment", "memory")
