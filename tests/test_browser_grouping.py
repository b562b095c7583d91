"""The example app in real headless Chromium: likes on Ben's post fold into one inbox
item, and Ben's open inbox updates that item live ("Cleo and 1 other liked …")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.examplebrowser import example_server, log_in, new_page

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    with example_server(tmp_path) as base:
        yield base


def sign_up(context: Any, base: str, name: str, errors: list[str]) -> Any:
    page = new_page(context, errors)
    page.goto(f"{base}/signup")
    page.fill("input[name=name]", name)
    page.fill("input[name=email]", f"{name.lower()}@example.org")
    page.fill("input[name=password]", "long-enough-pw")
    page.click("button[type=submit]")
    expect(page.locator("header nav")).to_contain_text("Feed")
    return page


def like_weekend_photos(page: Any) -> None:
    page.click("text=Weekend photos")
    page.click("button:has-text('Like')")
    expect(page.locator("button:has-text('Unlike')")).to_be_visible()


def test_a_second_like_updates_bens_listed_item_live(server, browser):
    errors: list[str] = []
    contexts = [browser.new_context() for _ in range(3)]
    ben = log_in(contexts[0], server, "ben@example.org", errors)
    ana = log_in(contexts[1], server, "ana@example.org", errors)
    cleo = sign_up(contexts[2], server, "Cleo", errors)
    ben.goto(f"{server}/notices/")
    expect(ben.locator("html")).to_have_attribute("data-notice-stream", "open")
    ben.evaluate("window.__sameDocument = true")  # gone if the page reloads
    likes = ben.locator(".notice-item", has_text="liked “Weekend photos”")

    like_weekend_photos(ana)
    expect(likes).to_have_count(1)
    expect(likes.first).to_contain_text("Ana liked “Weekend photos”")
    like_weekend_photos(cleo)
    # the same item, updated in place: one Like item, the grouped subject
    expect(likes.first).to_contain_text("Cleo and 1 other liked “Weekend photos”")
    expect(likes).to_have_count(1)
    assert ben.evaluate("window.__sameDocument === true"), "no reload"
    for context in contexts:
        context.close()
    assert errors == []
