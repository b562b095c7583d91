"""The example app on a phone: at 390 and 320 px its header keeps the bell and
"Log out" on screen and no page is wider than the viewport (issue 17)."""

from __future__ import annotations

import pytest

from tests.support.browser import watch_errors
from tests.test_browser_example import log_in, server  # noqa: F401  (the fixture)
from tests.test_browser_inbox_live import OVERFLOW_JS

pytestmark = pytest.mark.browser


def _inside(page, selector):
    box = page.locator(selector).first.bounding_box()
    width = page.evaluate("document.documentElement.clientWidth")
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", [390, 320])
def test_header_and_pages_fit_a_phone(server, browser, width):  # noqa: F811
    errors: list[str] = []
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = log_in(context, server, "ana@example.org", errors)
    watch_errors(page, [])  # log_in already watches this page
    for path in ("/", "/notices/", "/notices/preferences", "/groups"):
        page.goto(server + path)
        page.wait_for_selector("html[data-notice-stream]")
        assert page.locator(".notice-bell").is_visible()
        assert page.get_by_role("button", name="Log out").is_visible()
        assert _inside(page, ".notice-bell") and _inside(page, "header button:text('Log out')")
        measured = page.evaluate(OVERFLOW_JS)
        assert measured["scrollWidth"] <= measured["width"], (path, measured)
        assert measured["out"] == [], (path, measured)
    assert errors == []
    context.close()
