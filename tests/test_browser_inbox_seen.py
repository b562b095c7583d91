"""Seen, archive, levels and action buttons in a real browser (Debian's headless
chromium via Playwright; tests/support/inboxapp.py served on a loopback port).

Issue 17's "Done when": seen/read counts across two tabs (opening the inbox marks what
it lists seen, and a bell counting unseen in another tab drops to zero), archive and
unarchive followed live by another tab, "archive all read" (disabled until a notice is
read, here or in another tab), the "Level" filter applied to arriving notices,
keyboard use of the item buttons with a visible focus, a real notice's category,
resolver-named actor and target and action buttons on the page, in the pop-up and the
live list (the POST one submits with the CSRF token, also from the keyboard), nothing
wider than the viewport at 360 and 1280 px, no console errors.
"""

from __future__ import annotations

import pytest

from notice import notice_event
from tests.support.browser import poll, watch_errors
from tests.support.inboxapp import create_app
from tests.support.sse import serving
from tests.test_browser_inbox_live import OVERFLOW_JS

pytestmark = pytest.mark.browser


def _app(db_url, **config):
    return create_app(db_url, create=True, NOTICE_BASE_URL="http://x", **config)


@pytest.fixture
def apps():
    made = []

    def build(db_url, **config):
        made.append(_app(db_url, **config))
        return made[-1]

    yield build
    for app in made:
        broker = app.notices.state(app).broker
        if broker is not None:
            broker.close()
        with app.app_context():
            app.db.session.remove()
            app.db.engine.dispose()


def _publish(app, user_id, subject, **kw):
    with app.app_context():
        return notice_event(user_id, "Comment", subject=subject, content="", **kw).id


def _ids(page):
    return page.eval_on_selector_all(
        ".notice-list .notice-item", "els => els.map(e => Number(e.dataset.noticeId))"
    )


def _item(page, nid):
    return page.locator(f".notice-item[data-notice-id='{nid}']")


def _badge_is(page, selector, text):
    page.wait_for_function(
        f"(document.querySelector({selector!r}) || {{}}).textContent === {text!r}"
    )


def _fits(page):
    measured = page.evaluate(OVERFLOW_JS)
    assert measured["out"] == [] and measured["scrollWidth"] <= measured["width"], measured


def test_opening_the_inbox_marks_seen_and_counts_follow_in_another_tab(browser, apps, db_url):
    app = apps(db_url, NOTICE_BADGE_COUNTS="unseen")
    first = _publish(app, 1, "first")
    second = _publish(app, 1, "second")
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        context = browser.new_context()
        errors: list[str] = []
        home, inbox = context.new_page(), context.new_page()
        for page in (home, inbox):
            page.set_default_timeout(10_000)
            watch_errors(page, errors)
        home.goto(f"{base}/login/1")  # the home page: a bell counting unseen
        home.wait_for_selector("html[data-notice-stream=open]")
        _badge_is(home, ".notice-bell [data-notice-count]", "2")
        # the home tab records each count event's unread number as well
        home.evaluate(
            "window.counts = []; document.addEventListener('notice:count',"
            " e => window.counts.push(e.detail))"
        )
        third = _publish(app, 1, "third")
        _badge_is(home, ".notice-bell [data-notice-count]", "3")

        inbox.goto(f"{base}/notices/")  # opening the bell: what it lists is seen
        inbox.wait_for_selector("html[data-notice-stream=open]")
        _badge_is(home, ".notice-bell [data-notice-count]", "0")
        _badge_is(inbox, ".notice-bell [data-notice-count]", "0")
        # the heading's badge counts unread, whatever the bell counts
        _badge_is(inbox, ".notice-inbox__title [data-notice-count]", "3")
        assert inbox.locator("[data-notice-unseen]").count() == 0
        with app.app_context():
            assert all(app.notices.get(1, n).seen_at for n in (first, second, third))
            assert app.notices.unread_count(1) == 3

        # a notice arriving while the inbox is open is listed, so it is seen as well
        fourth = _publish(app, 1, "fourth")
        inbox.wait_for_selector(f".notice-item[data-notice-id='{fourth}']")
        _badge_is(home, ".notice-bell [data-notice-count]", "0")
        assert _seen_soon(app, 1, fourth)

        # reading in the inbox tab: the other tab's count events carry the unread count
        with inbox.expect_navigation():
            _item(inbox, second).get_by_role("button", name="Mark read").click()
        assert poll(home, "window.counts.some(c => c.unread === 3 && c.unseen === 0)")
        assert poll(home, "window.counts.length && window.counts.at(-1).unread === 3")
        _badge_is(inbox, ".notice-inbox__title [data-notice-count]", "3")
        assert errors == []
        context.close()


def _seen_soon(app, user_id, nid, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.app_context():
            app.db.session.remove()
            if app.notices.get(user_id, nid).seen_at is not None:
                return True
        time.sleep(0.1)
    return False


def test_seen_is_not_read_with_the_default_unread_badge(browser, apps, db_url):
    app = apps(db_url)
    nid = _publish(app, 2, "only one")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/2")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        assert _seen_soon(app, 2, nid)
        # seen is not read: the default badge (unread) still shows it
        _badge_is(page, ".notice-bell [data-notice-count]", "1")
        assert errors == []


def test_a_tab_opened_in_the_background_marks_nothing_until_shown(browser, apps, db_url):
    app = apps(db_url)
    nid = _publish(app, 6, "not looked at yet")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        # headless chromium reports every page visible: let this one say "hidden" (as a
        # background tab does) until the test shows it
        page.add_init_script(
            "Object.defineProperty(document, 'visibilityState',"
            " {get: () => window.__shown ? 'visible' : 'hidden'})"
        )
        page.goto(f"http://127.0.0.1:{port}/login/6")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        page.wait_for_timeout(1000)  # several times the seen debounce
        assert page.locator("[data-notice-unseen]").count() == 1
        with app.app_context():
            assert app.notices.get(6, nid).seen_at is None
        page.evaluate(
            "window.__shown = true; document.dispatchEvent(new Event('visibilitychange'))"
        )
        assert _seen_soon(app, 6, nid)
        assert errors == []


def test_archive_unarchive_and_archive_all_read_across_tabs(browser, apps, db_url):
    app = apps(db_url)
    a = _publish(app, 3, "archive me")
    b = _publish(app, 3, "read, then archive all read")
    c = _publish(app, 3, "stays")
    with serving(app) as port:
        base = f"http://127.0.0.1:{port}"
        context = browser.new_context()
        errors: list[str] = []
        acting, watching = context.new_page(), context.new_page()
        for page in (acting, watching):
            page.set_default_timeout(10_000)
            watch_errors(page, errors)
        acting.goto(f"{base}/login/3")
        acting.goto(f"{base}/notices/")
        watching.goto(f"{base}/notices/")
        watching.wait_for_selector("html[data-notice-stream=open]")
        assert _ids(watching) == [c, b, a]

        with acting.expect_navigation():
            _item(acting, a).get_by_role("button", name="Archive").click()
        assert _ids(acting) == [c, b]
        watching.wait_for_function(f"!document.querySelector('[data-notice-id=\"{a}\"]')")

        # the Archived view lists it with Unarchive; unarchiving elsewhere removes it here
        watching.get_by_role("link", name="Archived").click()
        watching.wait_for_selector("html[data-notice-stream=open]")
        assert _ids(watching) == [a]
        assert watching.get_by_role("button", name="Archive all read").count() == 0
        acting.goto(f"{base}/notices/?archived=only")
        with acting.expect_navigation():
            _item(acting, a).get_by_role("button", name="Unarchive").click()
        watching.wait_for_function(f"!document.querySelector('[data-notice-id=\"{a}\"]')")
        assert watching.locator(".notice-item").count() == 0

        # "Archive all read" takes the read one only, in this tab and the other
        watching.get_by_role("link", name="Inbox").click()
        watching.wait_for_selector("html[data-notice-stream=open]")
        assert _ids(watching) == [c, b, a]
        archive_read = watching.get_by_role("button", name="Archive all read")
        assert archive_read.is_disabled()  # nothing read yet: nothing to archive
        acting.goto(f"{base}/notices/")
        with acting.expect_navigation():
            _item(acting, b).get_by_role("button", name="Mark read").click()
        # read in the other tab: the button here has something to do now
        watching.wait_for_function(
            "!document.querySelector('.notice-inbox__bulk button[value=archive]').disabled"
        )
        with acting.expect_navigation():
            acting.get_by_role("button", name="Archive all read").click()
        assert _ids(acting) == [c, a]
        watching.wait_for_function(f"!document.querySelector('[data-notice-id=\"{b}\"]')")
        assert _ids(watching) == [c, a]
        with app.app_context():
            assert app.notices.get(3, b).archived_at is not None
            assert app.notices.get(3, a).archived_at is None
        assert errors == []
        context.close()


def test_keyboard_reaches_and_uses_mark_read_and_archive(browser, apps, db_url):
    app = apps(db_url)
    nid = _publish(app, 4, "by keyboard")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/4")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")

        def tab_to(script):
            for _ in range(40):
                page.keyboard.press("Tab")
                if page.evaluate(
                    f"(() => {{ const el = document.activeElement; return {script}; }})()"
                ):
                    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                    assert outline not in ("", "none")  # a visible focus state
                    return
            pytest.fail(f"Tab never reached {script}")

        in_item = f"el.closest('.notice-item[data-notice-id=\"{nid}\"]')"
        tab_to(f"{in_item} && el.value === 'read'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        with app.app_context():
            assert app.notices.get(4, nid).read_status == "Read"
        tab_to(f"{in_item} && el.value === 'archive'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        with app.app_context():
            app.db.session.remove()
            assert app.notices.get(4, nid).archived_at is not None
        # the Archived view is reachable by keyboard too, and unarchives
        tab_to("el.classList.contains('notice-tabs__tab') && el.textContent === 'Archived'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        tab_to(f"{in_item} && el.value === 'unarchive'")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        with app.app_context():
            app.db.session.remove()
            assert app.notices.get(4, nid).archived_at is None
        assert errors == []


def test_the_level_filter_applies_to_arriving_notices(browser, apps, db_url):
    app = apps(db_url)
    _publish(app, 8, "older info")
    older = _publish(app, 8, "older warning", category="warning")
    with serving(app) as port:
        page = browser.new_page()
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/8")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.select_option("select[name=category]", "warning")
        with page.expect_navigation():
            page.get_by_role("button", name="Filter").click()
        page.wait_for_selector("html[data-notice-stream=open]")
        assert _ids(page) == [older]
        skipped = _publish(app, 8, "an info: filtered out")
        wanted = _publish(app, 8, "a new warning", category="warning")
        _item(page, wanted).wait_for()
        # the info arrived first (its pop-up shows), and was not inserted
        page.locator(f".notice-toast[data-notice-id='{skipped}']").wait_for()
        assert _ids(page) == [wanted, older]
        assert _item(page, wanted).locator(".notice-item__level").text_content() == "Warning"
        assert errors == []


def _names(kind, ids):
    # the app's resolver: names and pages of its users and posts
    if kind == "user":
        return {i: (f"Ana <{i}>", f"/users/{i}") for i in ids}
    return {i: (f"Post {i}", f"/posts/{i}") for i in ids}


#: what a real notice carries: a category, an actor and target the resolver names, a
#: POST and a GET action
RICH = {
    "category": "error",
    "actor": ("user", 9),
    "target": ("post", 3),
    "actions": [
        {"label": "Retry <now>", "url": "/retry", "method": "POST"},
        {"label": "Logs", "url": "/logs?id=1", "method": "GET"},
    ],
}


def _check_rich(page, box):
    """The level, the named references and the action buttons of a RICH notice."""
    assert "notice-level-error" in box.get_attribute("class")
    assert box.locator("b").count() == 0  # text, never markup
    level = box.locator(".notice-item__level, .notice-toast__level")
    assert level.text_content() == "Error"
    actor = box.locator("a.notice-item__actor")
    assert actor.text_content() == "Ana <9>" and actor.get_attribute("href").endswith("/users/9")
    target = box.locator("a.notice-item__target")
    assert target.text_content() == "Post 3" and target.get_attribute("href").endswith("/posts/3")
    links = box.locator("a.notice-action")
    assert links.count() == 1 and links.first.get_attribute("href").endswith("/logs?id=1")
    form = box.locator("form.notice-action-form")
    assert form.locator("button").text_content() == "Retry <now>"
    token = page.get_attribute("meta[name=csrf-token]", "content")
    assert form.locator("input[name=csrf_token]").get_attribute("value") == token


@pytest.mark.parametrize("width", [360, 1280])
def test_levels_references_and_actions_of_real_notices(browser, apps, db_url, width):
    app = apps(db_url)
    app.notices.reference_resolver(_names)
    posted: list[dict] = []

    @app.post("/retry")
    def retry():
        from flask import request, session

        from notice.web.auth import SESSION_KEY

        posted.append({"token_ok": request.form.get("csrf_token") == session.get(SESSION_KEY)})
        return "retried"

    existing = _publish(app, 5, "an older one " + "long words " * 10, **RICH)
    with serving(app) as port:
        page = browser.new_page(viewport={"width": width, "height": 720})
        errors = watch_errors(page)
        page.set_default_timeout(10_000)
        page.goto(f"http://127.0.0.1:{port}/login/5")
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        # the page renders the stored notice with the resolver's names
        _check_rich(page, _item(page, existing))
        rich = _publish(app, 5, "Deploy failed <b>x</b>", **RICH)
        toast = page.locator(f".notice-toast[data-notice-id='{rich}']")
        toast.wait_for()
        item = _item(page, rich)
        item.wait_for()
        assert _ids(page) == [rich, existing]
        for box in (toast, item):
            _check_rich(page, box)
        assert page.locator(".notice-toasts").get_attribute("aria-live") == "polite"
        _fits(page)
        # the archived view fits too
        page.goto(f"http://127.0.0.1:{port}/notices/?archived=only")
        _fits(page)
        # the keyboard reaches an item's action buttons; Enter on the POST one submits
        # its form with the CSRF token
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        in_item = f"el.closest('.notice-item[data-notice-id=\"{existing}\"]')"
        reached = []
        for _ in range(60):
            page.keyboard.press("Tab")
            here = page.evaluate(
                f"(() => {{ const el = document.activeElement; return {in_item} && "
                "el.classList.contains('notice-action') ? el.textContent : null; })()"
            )
            if here:
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline not in ("", "none")  # a visible focus state
                reached.append(here)
            if here == "Retry <now>":
                break
        assert reached == ["Retry <now>"]
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert posted == [{"token_ok": True}]
        # and the pop-up's POST action by click
        page.goto(f"http://127.0.0.1:{port}/notices/")
        page.wait_for_selector("html[data-notice-stream=open]")
        again = _publish(app, 5, "once more", **RICH)
        with page.expect_navigation():
            page.locator(f".notice-toast[data-notice-id='{again}'] form button").click()
        assert posted == [{"token_ok": True}, {"token_ok": True}]
        assert errors == []
