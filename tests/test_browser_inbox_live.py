"""The live, responsive, keyboard-usable inbox in a real browser (Debian's headless
chromium via Playwright; tests/support/inboxapp.py served on a loopback port).

Covers issue 17's UI half: notices arriving while the inbox is open join the list in
order and only when they pass the page's filters; reading in one tab updates the other
tab's list and badge (read counts: the seen API is another branch's); pop-ups stack at
most three high and never cover "Mark all read"; nothing is wider than the viewport at
360 and 1280 px; Tab/Enter reach and read an item; no console errors anywhere.
"""

from __future__ import annotations

import pytest

from notice import notice_event
from notice.links import unsubscribe_url
from tests.support.browser import watch_errors
from tests.support.inboxapp import create_app
from tests.support.sse import serving

pytestmark = pytest.mark.browser

#: elements sticking out past the right edge of the viewport, ignoring what sits inside
#: a horizontal scroller (the preferences table may scroll on its own)
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    let p = el.parentElement, scrolled = false;
    while (p && p !== document.body) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') { scrolled = true; break; }
      p = p.parentElement;
    }
    if (scrolled) continue;
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > width + 1 || r.left < -1)) {
      out.push(el.tagName + '.' + el.className + ' '
        + Math.round(r.left) + '..' + Math.round(r.right));
    }
  }
  return {width, scrollWidth: document.documentElement.scrollWidth, out};
}"""


@pytest.fixture
def app(db_url):
    app = create_app(db_url, create=True, NOTICE_BASE_URL="http://x")
    yield app
    broker = app.notices.state(app).broker
    if broker is not None:
        broker.close()
    with app.app_context():
        app.db.session.remove()
        app.db.engine.dispose()


def _publish(app, user_id, subject, notice_type="Comment", **kw):
    with app.app_context():
        return notice_event(
            user_id, notice_type, subject=subject, content=kw.pop("content", ""), **kw
        ).id


def _ids(page):
    return page.eval_on_selector_all(
        ".notice-list .notice-item", "els => els.map(e => Number(e.dataset.noticeId))"
    )


def test_live_insertion_with_filters_and_two_tabs(browser, app):
    older = _publish(app, 1, "already here")
    _publish(app, 1, "a like before", notice_type="Like")
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        context = browser.new_context()
        errors: list[str] = []
        first, second = context.new_page(), context.new_page()
        for page in (first, second):
            page.set_default_timeout(10_000)
            watch_errors(page, errors)
        first.goto(f"{base}/login/1")
        # tab 1: unread Comments only; tab 2: everything
        first.goto(f"{base}/notices/?read=false&type=Comment")
        second.goto(f"{base}/notices/")
        for page in (first, second):
            page.wait_for_selector("html[data-notice-stream=open]")
        assert _ids(first) == [older]

        a = _publish(app, 1, "comment one", content="<b>as text</b>", url="/notices/?a=1")
        skipped = _publish(app, 1, "a like: filtered out", notice_type="Like")
        b = _publish(app, 1, "comment two")
        _publish(app, 2, "someone else's comment")
        first.wait_for_function(f"document.querySelector('[data-notice-id=\"{b}\"].notice-item')")
        assert _ids(first) == [b, a, older]  # newest first, the Like left out
        assert first.locator(".notice-item b").count() == 0
        item_a = first.locator(f".notice-item[data-notice-id='{a}']")
        assert item_a.locator(".notice-item__content").text_content() == "<b>as text</b>"
        assert item_a.locator("a.notice-item__subject").get_attribute("href").endswith("?a=1")
        second.wait_for_function(f"document.querySelector('[data-notice-id=\"{b}\"].notice-item')")
        assert _ids(second)[:3] == [b, skipped, a]  # no filter: every new one, in order

        # read in tab 2 (the item's own form): tab 1's item and both badges follow
        with second.expect_navigation():
            second.locator(f".notice-item[data-notice-id='{a}']").get_by_role(
                "button", name="Mark read"
            ).click()
        first.wait_for_function(
            f"!document.querySelector('[data-notice-id=\"{a}\"]')"
            ".classList.contains('notice-item--unread')"
        )
        with app.app_context():
            unread = app.notices.unread_count(1)
        assert unread == 4
        for page in (first, second):
            page.wait_for_function(
                "[...document.querySelectorAll('[data-notice-count]')]"
                f".every(b => b.textContent === '{unread}')"
            )
        assert item_a.get_by_role("button", name="Mark unread").count() == 1

        # an item sent from a live insert works like a rendered one: its form deletes it
        with first.expect_navigation():
            first.locator(f".notice-item[data-notice-id='{b}']").get_by_role(
                "button", name="Delete"
            ).click()
        with app.app_context():
            assert app.notices.get(1, b) is None
        assert b not in _ids(first)
        assert errors == []
        context.close()


@pytest.mark.parametrize("width", [360, 1280])
def test_popups_stack_without_covering_controls(browser, app, width, tmp_path):
    _publish(app, 5, "one unread so the button is enabled")
    with serving(app) as port:
        page = browser.new_page(viewport={"width": width, "height": 720})
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/5")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        ids = [_publish(app, 5, f"burst {i} " + "long words " * 12) for i in range(5)]
        page.wait_for_selector(f".notice-toast[data-notice-id='{ids[-1]}']")
        page.wait_for_function(
            f"document.querySelector('.notice-item[data-notice-id=\"{ids[-1]}\"]')"
        )
        toasts = page.locator(".notice-toast")
        assert toasts.count() == 3  # at most three at a time, newest on top
        assert toasts.first.get_attribute("data-notice-id") == str(ids[-1])
        assert page.locator(".notice-toasts").get_attribute("aria-live") == "polite"
        button = page.get_by_role("button", name="Mark all read").bounding_box()
        bell = page.locator(".notice-bell").bounding_box()
        for box in toasts.evaluate_all("els => els.map(e => e.getBoundingClientRect().toJSON())"):
            for control in (button, bell):
                apart = (
                    box["right"] <= control["x"]
                    or box["left"] >= control["x"] + control["width"]
                    or box["bottom"] <= control["y"]
                    or box["top"] >= control["y"] + control["height"]
                )
                assert apart, (box, control)
        page.screenshot(path=str(tmp_path / f"inbox-{width}.png"), full_page=True)
        measured = page.evaluate(OVERFLOW_JS)
        assert measured["out"] == [] and measured["scrollWidth"] <= measured["width"], measured
        # dismissing with the keyboard: the close button is a real button
        toasts.first.locator(".notice-toast__close").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelectorAll('.notice-toast').length === 2")
        assert errors == []


@pytest.mark.parametrize("width", [360, 1280])
def test_preferences_and_unsubscribe_fit(browser, app, width):
    with app.app_context():
        path = unsubscribe_url(app, 6, "Comment", "memory").removeprefix("http://x")
    with serving(app) as port:
        page = browser.new_page(viewport={"width": width, "height": 720})
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/6")
        page.goto(f"http://127.0.0.1:{port}/notices/preferences")
        # no email in this app: no digest selector, and the page says why
        assert page.locator("#notice-digest").count() == 0
        assert page.get_by_text("this site does not send email").is_visible()
        assert (
            page.locator(".notice-preferences__table").evaluate(
                "t => getComputedStyle(t).borderCollapse"
            )
            == "collapse"
        )  # styled from notice.css, not a head block
        measured = page.evaluate(OVERFLOW_JS)
        assert measured["out"] == [] and measured["scrollWidth"] <= measured["width"], measured
        page.goto(f"http://127.0.0.1:{port}{path}")
        assert (
            page.locator("main.notice-page").evaluate("m => getComputedStyle(m).maxWidth") != "none"
        )  # the unsubscribe page is styled
        measured = page.evaluate(OVERFLOW_JS)
        assert measured["out"] == [] and measured["scrollWidth"] <= measured["width"], measured
        assert errors == []


def test_keyboard_reaches_and_reads_an_item(browser, app):
    nid = _publish(app, 7, "reach me by keyboard", url="/notices/?from=keyboard")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/7")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.classList.contains('notice-item__subject')"):
                break
        else:
            pytest.fail("Tab never reached the inbox item's subject")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none")  # a visible focus state
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("/notices/?from=keyboard")
        with app.app_context():
            assert app.notices.get(7, nid).read_status == "Read"
        assert errors == []
