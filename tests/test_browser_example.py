"""The example app in real headless Chromium: Ana comments on Ben's post and Ben sees
it live in two tabs, then uses the inbox. Two browser contexts, one per user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.examplebrowser import WAIT_MS, example_server, log_in, new_page

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    with example_server(tmp_path) as base:
        yield base


def live(page: Any) -> None:
    """Wait until notice.js has its stream open, so nothing is sent before it listens."""
    expect(page.locator("html")).to_have_attribute("data-notice-stream", "open", timeout=WAIT_MS)


def test_ana_comments_and_ben_sees_it_live_in_both_tabs(server, browser):
    errors: list[str] = []
    ana_ctx, ben_ctx = browser.new_context(), browser.new_context()
    ana = log_in(ana_ctx, server, "ana@example.org", errors)
    ben = log_in(ben_ctx, server, "ben@example.org", errors)
    ben2 = new_page(ben_ctx, errors)  # a second tab: same session
    ben2.goto(f"{server}/groups")
    badge, badge2 = (p.locator(".notice-bell [data-notice-count]") for p in (ben, ben2))
    before = int(badge.inner_text())
    expect(badge2).to_have_text(str(before))
    live(ben)
    live(ben2)
    for page in (ben, ben2):
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    # Ana comments on Ben's post
    ana.click("text=Weekend photos")
    ana.fill("#comment-form textarea", "What a view! <b>not bold</b>")
    ana.click("#comment-form button[type=submit]")
    expect(ana.locator(".comments")).to_contain_text("What a view! <b>not bold</b>")

    # Ben's badge goes up and the pop-up shows, in both tabs, without a reload
    for page, b in ((ben, badge), (ben2, badge2)):
        expect(b).to_have_text(str(before + 1))
        toast = page.locator(".notice-toast").first
        expect(toast).to_be_visible()
        expect(toast).to_contain_text("Ana commented on “Weekend photos”")
        expect(toast).to_contain_text("What a view! <b>not bold</b>")  # text, not HTML
        assert page.evaluate("window.__sameDocument === true"), "no reload"

    # Ben opens the inbox and filters by type
    ben.click(".notice-bell")
    expect(ben.locator(".notice-list")).to_be_visible()
    assert ben.locator(".notice-item__type").all_inner_texts() != ["Comment"]  # mixed types
    ben.select_option("select[name=type]", "Comment")
    ben.click(".notice-filters button[type=submit]")
    expect(ben.locator(".notice-item")).to_have_count(1)
    expect(ben.locator(".notice-item__type")).to_have_text(["Comment"])
    expect(ben.locator(".notice-item--unread")).to_have_count(1)

    # mark all read: the badge goes to 0 in both tabs, the other one live
    live(ben)
    ben.click("text=Mark all read")
    expect(ben.locator(".notice-item--unread")).to_have_count(0)
    expect(ben.locator(".notice-bell [data-notice-count]")).to_have_text("0")
    expect(badge2).to_have_text("0")
    expect(ana.locator(".notice-bell [data-notice-count]")).not_to_have_text("0")  # Ana's own

    ana_ctx.close()
    ben_ctx.close()
    assert errors == []
