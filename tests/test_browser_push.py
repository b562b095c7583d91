"""The shipped service worker and helper in Debian's headless chromium.

A notice goes through the real webpush sender to the loopback push service, which
decrypts it; the plaintext is handed to chromium's service worker with the DevTools
``ServiceWorker.deliverPushMessage`` command (what the browser does after decrypting),
and the test reads back the notification the worker showed. Playwright contexts are
incognito, where Chrome has no Push API: the helper's subscribe path can only be
checked for failing cleanly there.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from notice import notice_event
from tests.support.browser import poll, watch_errors
from tests.support.pushapp import add_device, push_config, use_session_login, vapid_keys
from tests.support.pushservice import PushService
from tests.support.sse import serving

pytestmark = pytest.mark.browser

SW = "/notices/static/notice/sw.js"
PAGE = """<!doctype html><meta name="csrf-token" content="t"><title>push</title>
<button data-notice-push>Turn on push</button>
<script src="/notices/static/notice/push.js"></script>"""
NOTIFICATIONS = f"""async () => {{
  const reg = await navigator.serviceWorker.getRegistration("{SW}");
  return (await reg.getNotifications()).map((n) => (
    {{title: n.title, body: n.body, icon: n.icon, tag: n.tag, data: n.data,
      actions: (n.actions || []).map((a) => ({{action: a.action, title: a.title}}))}}));
}}"""


def test_service_worker_shows_pushed_notices(browser, app_factory):
    with PushService(vapid_keys().public_key) as service:
        app = app_factory(**push_config(service, NOTICE_PUSH_ICON="/icon.png"))
        use_session_login(app)
        app.add_url_rule("/", "page", lambda: PAGE)
        add_device(app, 1, service.new_subscription())
        with app.app_context():
            first = notice_event(
                1,
                subject="Ana commented",
                content="Nice",
                url="/graphs/3",
                actions=[
                    {"label": "Reply", "url": "/graphs/3#reply"},
                    {"label": "Approve", "url": "/graphs/3/approve", "method": "POST"},
                ],
            ).id
            notice_event(1, subject="Sneaky", content="", url="javascript:alert(1)")
        pushed = [m.text for m in service.received]
    assert len(pushed) == 2

    with serving(app) as port:
        origin = f"http://127.0.0.1:{port}"
        context = browser.new_context()
        context.grant_permissions(["notifications"], origin=origin)
        page = context.new_page()
        page.set_default_timeout(20_000)
        # uncaught exceptions only: chromium logs the bare page's missing favicon (404)
        # and its refusal of Push in incognito as console errors
        errors = watch_errors(page, console=False)
        page.goto(origin + "/")
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda event: registrations.extend(event["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        page.evaluate(f'navigator.serviceWorker.register("{SW}").then(() => true)')
        active = f'navigator.serviceWorker.getRegistration("{SW}").then((r) => !!(r && r.active))'
        assert poll(page, active)
        [registration] = {r["registrationId"] for r in registrations if not r["isDeleted"]}
        for text in pushed:
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": origin, "registrationId": registration, "data": text},
            )
        deadline = time.monotonic() + 20
        shown = page.evaluate(NOTIFICATIONS)
        while len(shown) < 2 and time.monotonic() < deadline:
            page.wait_for_timeout(50)
            shown = page.evaluate(NOTIFICATIONS)
        by_title = {n["title"]: n for n in shown}
        assert set(by_title) == {"Ana commented", "Sneaky"}
        ana = by_title["Ana commented"]
        assert ana["body"] == "Nice"
        assert ana["icon"] == origin + "/icon.png"
        assert ana["tag"] == f"notice-{first}"
        assert ana["data"]["url"] == origin + "/graphs/3"
        # the GET action is a button whose click opens its url; the POST one stays in
        # the inbox (a click cannot send the app's CSRF form)
        assert ana["actions"] == [{"action": "a0", "title": "Reply"}]
        assert ana["data"]["actions"] == {"a0": origin + "/graphs/3#reply"}
        assert by_title["Sneaky"]["actions"] == []
        # the worker only ever opens http(s) pages
        assert by_title["Sneaky"]["data"]["url"] == origin + "/"

        # incognito chromium refuses Push: the helper says so instead of breaking
        assert page.evaluate("window.noticePush.supported()") is True
        page.click("[data-notice-push]")
        page.wait_for_function(
            "document.querySelector('[data-notice-push]').textContent !== 'Turn on push'"
        )
        assert page.text_content("[data-notice-push]") == "Push unavailable"
        assert errors == []
        context.close()
