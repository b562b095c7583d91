"""The inbox in a real browser: Debian's headless chromium driven by Playwright.

A small app (tests/support/inboxapp.py) is served by werkzeug's threaded server on a
loopback port in this process; notices are published from the test, outside the page,
and reach it through the live stream (in-process broker).
"""

from __future__ import annotations

import re

import pytest

from notice import notice_event
from tests.support.browser import watch_errors
from tests.support.inboxapp import create_app
from tests.support.sse import serving

pytestmark = pytest.mark.browser


@pytest.fixture
def inbox_app(db_url):
    app = create_app(db_url, create=True)
    yield app
    app.notices.state(app).broker.close()
    with app.app_context():
        app.db.session.remove()
        app.db.engine.dispose()


def _publish(app, user_id, subject, **kw):
    with app.app_context():
        return notice_event(user_id, subject=subject, content=kw.pop("content", ""), **kw).id


def test_badge_popup_and_click_to_read(browser, inbox_app):
    app = inbox_app
    _publish(app, 1, "waiting for you")
    _publish(app, 2, "someone else's")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)

        page.goto(f"http://127.0.0.1:{port}/login/1")  # redirects to the page with the bell
        badge = page.locator(".notice-bell [data-notice-count]")
        assert badge.text_content() == "1"
        # the stream is open before the notice is sent, so its arrival is live
        page.wait_for_selector("html[data-notice-stream=open]")

        nid = _publish(
            app,
            1,
            "<img src=x onerror=alert(1)> Ana replied",
            content="See the thread",
            url="/notices/?from=popup",
        )
        toast = page.locator(f".notice-toast[data-notice-id='{nid}']")
        toast.wait_for(state="visible", timeout=1_000)
        assert toast.locator(".notice-toast__subject").text_content() == (
            "<img src=x onerror=alert(1)> Ana replied"
        )
        assert page.locator(".notice-toast img").count() == 0  # shown as text
        page.wait_for_function(
            "document.querySelector('.notice-bell [data-notice-count]').textContent === '2'",
            timeout=1_000,
        )
        assert page.url.endswith("/")  # no reload happened

        # dismissing one pop-up leaves the count alone
        other = _publish(app, 1, "dismiss me")
        other_toast = page.locator(f".notice-toast[data-notice-id='{other}']")
        other_toast.wait_for(state="visible", timeout=1_000)
        other_toast.locator(".notice-toast__close").click()
        other_toast.wait_for(state="detached")
        page.wait_for_function("document.querySelector('[data-notice-count]').textContent === '3'")

        # clicking the pop-up marks it read (POST with the CSRF header) and follows its url
        with page.expect_navigation():
            toast.click()
        assert re.search(r"/notices/\?from=popup$", page.url)
        with app.app_context():
            assert app.notices.get(1, nid).read_status == "Read"
            assert app.notices.unread_count(1) == 2
        assert page.locator(".notice-bell [data-notice-count]").text_content() == "2"

        # on the inbox page: mark all read with the form; every badge follows
        page.wait_for_selector("html[data-notice-stream=open]")
        with page.expect_navigation():
            page.get_by_role("button", name="Mark all read").click()
        page.wait_for_function(
            "[...document.querySelectorAll('[data-notice-count]')]"
            ".every(b => b.textContent === '0' && b.classList.contains('notice-badge--empty'))"
        )
        assert page.locator(".notice-item--unread").count() == 0
        assert errors == []


def test_falls_back_to_polling_without_a_stream(browser, db_url):
    app = create_app(db_url, create=True, NOTICE_STREAM=False, NOTICE_POLL_INTERVAL=1)
    with serving(app) as port:
        page = browser.new_page()
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/3")
        page.wait_for_selector("html[data-notice-stream=polling]")
        _publish(app, 3, "polled")
        page.wait_for_function(
            "document.querySelector('[data-notice-count]').textContent === '1'", timeout=15_000
        )
    with app.app_context():
        app.db.engine.dispose()
