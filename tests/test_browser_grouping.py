"""The example app in real headless Chromium: likes on Ben's post fold into one inbox
item, and Ben's open inbox updates that item live ("Cleo and 1 other liked …")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from example_app import create_app, notices
from example_app.models import db
from example_app.seed import DEMO_USERS, seed
from tests.support.browser import watch_errors
from tests.support.sse import serving

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

WAIT_MS = 10_000


@pytest.fixture
def server(tmp_path: Any) -> Iterator[str]:
    """The example app as ``python -m example_app`` configures it, on a loopback port."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.db'}",
            "SECRET_KEY": "browser-test",
            "NOTICE_SSE_HEARTBEAT": 1.0,
        }
    )
    seed(app)
    try:
        with serving(app) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        notices.state(app).dispatcher.shutdown()
        with app.app_context():
            for engine in db.engines.values():
                engine.dispose()


def _page(context: Any, errors: list[str]) -> Any:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watch_errors(page, errors)
    return page


def log_in(context: Any, base: str, email: str, errors: list[str]) -> Any:
    page = _page(context, errors)
    password = next(p for e, p, *_ in DEMO_USERS if e == email)
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("header nav")).to_contain_text("Feed")
    return page


def sign_up(context: Any, base: str, name: str, errors: list[str]) -> Any:
    page = _page(context, errors)
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
