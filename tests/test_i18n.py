"""Translations: the shipped German catalog is complete and compiled, and a German
recipient gets German email, push and digest while an English one in the same run gets
English; pages follow the app's locale selector; without Flask-Babel nothing changes."""

from __future__ import annotations

import gettext as stdlib_gettext
import io
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import render_template_string, request, session
from flask_babel import Babel, force_locale

from notice import links, notice_event
from notice.i18n import TRANSLATIONS, current_locale, gettext, locales, ngettext
from notice.preferences.digest import run_digest
from tests.support.browser import poll
from tests.support.emailapp import address, email_app
from tests.support.pushapp import add_device, login, push_config, use_session_login, vapid_keys
from tests.support.pushservice import PushService
from tests.support.smtpserver import SMTPServer
from tests.support.sse import serving
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
PO = TRANSLATIONS / "de" / "LC_MESSAGES" / "notice.po"
MO = TRANSLATIONS / "de" / "LC_MESSAGES" / "notice.mo"
#: the keywords of docs/guide/translations.md's extract command
KEYWORDS = ["_", "gettext", "ngettext:1,2", "notice_gettext", "notice_ngettext:1,2"]

UNREAD = ("You have %(num)d unread notification", "You have %(num)d unread notifications")
GERMAN, ENGLISH, BROKEN, CHOSE_ENGLISH = 1, 2, 3, 4
LOCALES = {GERMAN: "de", ENGLISH: None, BROKEN: "no-such-locale!", CHOSE_ENGLISH: "en"}


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService(vapid_keys().public_key) as svc:
        yield svc


def _german_app(app: Any, **babel: Any) -> Any:
    """Flask-Babel on ``app`` and :data:`LOCALES` as its locale loader: user 1 German,
    user 2 none (the default), user 3 a locale Babel cannot parse, user 4 English."""
    Babel(app, **babel)
    app.notices.locale_loader(LOCALES.get)
    return app


def _text_and_html(mail: Any) -> tuple[str, str]:
    msg = mail.message
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def _by_recipient(smtp: SMTPServer) -> dict[str, Any]:
    return {mail.rcpt_tos[0]: mail for mail in smtp.messages}


# --- the shipped catalog ------------------------------------------------------------


def test_german_catalog_covers_every_string_and_the_mo_is_compiled_from_the_po(tmp_path):
    pot = tmp_path / "notice.pot"
    keywords = [arg for kw in KEYWORDS for arg in ("-k", kw)]
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg"]
        + ["--no-default-keywords", *keywords, "-o", str(pot), "notice"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with pot.open("rb") as f:
        wanted = {m.id if isinstance(m.id, str) else tuple(m.id) for m in read_po(f) if m.id}
    with PO.open("rb") as f:
        po = read_po(f, locale="de", domain="notice")
    have = {m.id if isinstance(m.id, str) else tuple(m.id): m for m in po if m.id}
    assert len(wanted) > 40  # the extraction found the templates and the Python strings
    assert sorted(map(str, wanted - set(have))) == [], "msgids missing from de/notice.po"
    assert sorted(map(str, set(have) - wanted)) == [], "stale msgids in de/notice.po"
    assert [m.id for m in have.values() if m.fuzzy] == []
    untranslated = [
        m.id for m in have.values() if not all(m.string if m.pluralizable else [m.string])
    ]
    assert untranslated == []
    # placeholders agree between msgid and msgstr (babel's python-format checker)
    assert [(m.id, errors) for m, errors in po.check()] == []

    compiled = io.BytesIO()
    write_mo(compiled, po)
    fresh = stdlib_gettext.GNUTranslations(io.BytesIO(compiled.getvalue()))
    with MO.open("rb") as f:
        shipped = stdlib_gettext.GNUTranslations(f)
    assert shipped._catalog == fresh._catalog, "run pybabel compile (see the translations guide)"
    assert locales() == ["de"]


def test_without_flask_babel_installed_the_library_speaks_english():
    code = (
        "import sys; sys.modules['flask_babel'] = None\n"
        "from notice import i18n\n"
        "assert i18n._domain is None\n"
        "print(i18n.ngettext('%(num)d day', '%(num)d days', 1), "
        "i18n.ngettext('%(num)d day', '%(num)d days', 3), i18n.current_locale())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    assert out.stdout.split() == ["1", "day", "3", "days", "en"]
    assert ngettext("%(num)d item of %(what)s", "%(num)d items of %(what)s", 2, what="x") == (
        "2 items of x"
    )


def test_outside_a_request_only_a_forced_locale_translates(app_factory):
    """A worker or a script has no request: the app's selector (which reads
    ``request``) is never asked; ``force_locale`` (ours or the app's) translates."""
    app = app_factory()
    Babel(app, locale_selector=lambda: request.accept_languages.best_match(["de"]))
    with app.app_context():
        assert gettext("Open") == "Open" and current_locale() == "en"
        with force_locale("de"):
            assert gettext("Open") == "Öffnen" and current_locale() == "de"
            assert ngettext(*UNREAD, 1) == "Sie haben 1 ungelesene Benachrichtigung"
            assert ngettext(*UNREAD, 2) == "Sie haben 2 ungelesene Benachrichtigungen"
        assert gettext("Open") == "Open"
    with app.test_request_context(headers={"Accept-Language": "de"}):
        assert gettext("Unsubscribe from %(type)s emails", type="Like") == (
            "Like-E-Mails abbestellen"
        )


# --- email ----------------------------------------------------------------------------


def test_email_is_written_in_each_recipients_locale(app_factory, smtp, tmp_path, caplog):
    """German for user 1, English for user 2 (no locale) and user 3 (a locale Babel
    cannot parse: a warning, not a failed delivery). The app's own catalog (domain
    ``messages``) and its own template for the type translate beside ours."""
    app = email_app(app_factory, smtp)
    _app_catalog(tmp_path)
    app.jinja_loader = jinja2.FileSystemLoader(str(tmp_path / "templates"))
    _german_app(app, default_translation_directories=str(tmp_path / "translations"))
    with app.app_context(), caplog.at_level(logging.WARNING, logger="notice"):
        notice_event(
            [GERMAN, ENGLISH, BROKEN], "Comment", subject="Ana", content="Hi", url="/posts/1"
        )
        notice_event([GERMAN, ENGLISH], "Like", subject="Bo likes it", content="")
    assert "unknown locale 'no-such-locale!'" in caplog.text

    mails = _by_recipient(smtp)
    german = [m for m in smtp.messages if m.rcpt_tos == [address(GERMAN)]]
    english = [m for m in smtp.messages if m.rcpt_tos == [address(ENGLISH)]]
    assert len(german) == len(english) == 2 and len(smtp.messages) == 5

    # the app's template for Comment: its own _() in German, our strings in German
    de_comment, de_like = (_text_and_html(m) for m in german)
    assert de_comment[0].startswith("Hallo, Ana!\n")
    assert "Ihre Benachrichtigungen:" in de_comment[0]
    # the library's default template, all German, the app's subject as written
    text, html = de_like
    assert text.startswith("Bo likes it\n")
    assert "Ihre Benachrichtigungen: https://app.example/notices/" in text
    assert "Auswählen, was Sie erhalten: https://app.example/notices/preferences" in text
    assert "Like-E-Mails abbestellen: https://app.example/notices/unsubscribe/" in text
    assert '<html lang="de">' in html and ">Like-E-Mails abbestellen</a>" in html
    assert "Your notifications" not in text + html

    en_comment, en_like = (_text_and_html(m) for m in english)
    assert en_comment[0].startswith("Hello, Ana!\n")
    assert "Your notifications: https://app.example/notices/" in en_comment[0]
    text, html = en_like
    assert "Unsubscribe from Like emails: " in text and '<html lang="en">' in html
    assert "Ihre" not in text + html
    broken_text, _ = _text_and_html(mails[address(BROKEN)])
    assert "Your notifications:" in broken_text


def test_thread_dispatch_writes_each_email_in_its_recipients_locale(app_factory, smtp):
    """On a pool thread there is no request: the loader's locale, else the app's
    default (``BABEL_DEFAULT_LOCALE``, here English)."""
    app = _german_app(email_app(app_factory, smtp, NOTICE_DISPATCH="thread"))
    with app.app_context():
        notice_event([GERMAN, ENGLISH], "Like", subject="Bo likes it", content="")
    assert wait_for(lambda: len(smtp.messages) == 2, timeout=20)
    mails = _by_recipient(smtp)
    assert "Ihre Benachrichtigungen:" in _text_and_html(mails[address(GERMAN)])[0]
    assert "Your notifications:" in _text_and_html(mails[address(ENGLISH)])[0]


def test_a_user_without_a_locale_gets_the_apps_default_not_the_publishers(app_factory, smtp):
    """Sends run outside the publishing request (a send thread, a worker), and the
    publisher's language is not the recipient's: a user without a locale gets
    ``BABEL_DEFAULT_LOCALE`` (German here) also when an English request published."""
    app = email_app(app_factory, smtp, BABEL_DEFAULT_LOCALE="de")
    _german_app(app, locale_selector=lambda: request.accept_languages.best_match(["en", "de"]))

    @app.post("/like")
    def like() -> str:
        notice_event([ENGLISH, CHOSE_ENGLISH], "Like", subject="Bo likes it", content="")
        return "ok"

    assert app.test_client().post("/like", headers={"Accept-Language": "en"}).text == "ok"
    mails = _by_recipient(smtp)
    assert "Ihre Benachrichtigungen:" in _text_and_html(mails[address(ENGLISH)])[0]
    assert "Your notifications:" in _text_and_html(mails[address(CHOSE_ENGLISH)])[0]


def _app_catalog(tmp_path: Path) -> None:
    """The app's own German catalog and its own email template for Comment."""
    catalog = Catalog(locale="de", domain="messages")
    catalog.add("Hello, %(name)s!", "Hallo, %(name)s!", flags=["python-format"])
    mo = tmp_path / "translations" / "de" / "LC_MESSAGES" / "messages.mo"
    mo.parent.mkdir(parents=True)
    with mo.open("wb") as f:
        write_mo(f, catalog)
    template = tmp_path / "templates" / "notice" / "email" / "Comment.txt"
    template.parent.mkdir(parents=True)
    template.write_text(
        '{{ _("Hello, %(name)s!", name=subject) }}\n{{ content }}\n'
        '{{ notice_gettext("Your notifications") }}: {{ inbox_url }}\n'
    )


def test_without_babel_on_the_app_a_locale_loader_changes_nothing(app_factory, smtp):
    app = email_app(app_factory, smtp)
    app.notices.locale_loader(LOCALES.get)  # but no Babel(app)
    with app.app_context():
        notice_event(GERMAN, "Like", subject="Bo likes it", content="")
    [mail] = smtp.messages
    text, html = _text_and_html(mail)
    assert "Your notifications: " in text and "Unsubscribe from Like emails: " in text
    assert '<html lang="en">' in html


# --- digest -----------------------------------------------------------------------------


def test_digest_is_written_in_each_recipients_locale(app_factory, smtp):
    app = _german_app(email_app(app_factory, smtp, NOTICE_SENDERS=["memory"]))
    with app.app_context():
        for user in (GERMAN, ENGLISH):
            app.notices.preferences.set_digest(user, "daily")
        notice_event([GERMAN, ENGLISH], "Like", subject="Bo likes it", content="")
        notice_event(GERMAN, "Like", subject="Cy likes it", content="")
        report = run_digest(app.notices.state(), "daily")
    assert (report.sent, report.notices) == (2, 3)

    mails = _by_recipient(smtp)
    de = mails[address(GERMAN)]
    text, html = _text_and_html(de)
    assert de.message["Subject"] == "Sie haben 2 ungelesene Benachrichtigungen"
    assert text.startswith("Sie haben 2 ungelesene Benachrichtigungen:\n")
    assert "- Bo likes it" in text and "- Cy likes it" in text
    assert "Diese Zusammenfassungen abbestellen: https://app.example/" in text
    assert "<h1" in html and "Sie haben 2 ungelesene Benachrichtigungen</h1>" in html

    en = mails[address(ENGLISH)]
    text, html = _text_and_html(en)
    # the singular, not "1 unread notifications"
    assert en.message["Subject"] == "You have 1 unread notification"
    assert text.startswith("You have 1 unread notification:\n")
    assert "Stop these digests: https://app.example/" in text and "Sie" not in text


# --- push ---------------------------------------------------------------------------------


def test_push_payload_carries_each_recipients_locale(app_factory, service):
    app = _german_app(app_factory(**push_config(service)))
    devices = {user: service.new_subscription(f"device-{user}") for user in (GERMAN, ENGLISH)}
    for user, info in devices.items():
        add_device(app, user, info)
    with app.app_context():
        notice_event([GERMAN, ENGLISH], "Like", subject="Bo likes it", content="Hi")
    # decrypted by the loopback push service, after it checked the VAPID signature
    payloads = {msg.token: msg.json() for msg in service.received}
    assert payloads[PushService.token_of(devices[GERMAN])]["lang"] == "de"
    assert payloads[PushService.token_of(devices[ENGLISH])]["lang"] == "en"
    for payload in payloads.values():
        assert payload["title"] == "Bo likes it" and payload["body"] == "Hi"


# --- pages ----------------------------------------------------------------------------------


def test_pages_follow_the_apps_locale_selector(app_factory):
    """The inbox, preferences and unsubscribe pages in the locale the app's selector
    picks for the logged-in user; the library strings translate, the app's data not."""
    app = app_factory(NOTICE_MAIL_SENDER="notices@example.com")  # offers the digest
    use_session_login(app)
    _german_app(app, locale_selector=lambda: LOCALES.get(session.get("uid")))
    with app.app_context():
        notice_event(
            [GERMAN, ENGLISH], "Like", subject="Bo likes it", content="", category="warning"
        )

    client = app.test_client()
    login(client, GERMAN)
    page = client.get("/notices/").get_data(as_text=True)
    assert '<html lang="de">' in page
    # category labels: the item's level badge, the filter, and notice.js's data-levels
    assert '<span class="notice-item__level">Warnung</span>' in page
    assert '<option value="error">Fehler</option>' in page
    assert '"warning": "Warnung"' in page
    assert "<title>Benachrichtigungen (1 ungelesen)</title>" in page
    assert ">Alle als gelesen markieren</button>" in page
    assert ">Als gelesen markieren</button>" in page and ">Löschen</button>" in page
    assert 'aria-label="Benachrichtigungen"' in page  # the bell
    assert "Bo likes it" in page and "Mark read" not in page
    prefs = client.get("/notices/preferences").get_data(as_text=True)
    assert "Benachrichtigungseinstellungen</h1>" in prefs
    assert ">täglich</option>" in prefs and 'value="daily"' in prefs

    client = app.test_client()
    login(client, ENGLISH)
    page = client.get("/notices/").get_data(as_text=True)
    assert '<html lang="en">' in page and "<title>Notifications (1 unread)</title>" in page
    assert ">Mark read</button>" in page and "Benachrichtigungen" not in page


def test_push_button_macro_carries_translated_texts_for_push_js(app_factory):
    app = app_factory()
    Babel(app, locale_selector=lambda: request.accept_languages.best_match(["en", "de"]))
    page = '{% from "notice/macros.html" import notice_push_button %}{{ notice_push_button() }}'
    with app.test_request_context(headers={"Accept-Language": "de"}):
        html = render_template_string(page)
    assert ">Benachrichtigungen einschalten</button>" in html
    assert 'data-notice-push-on="Push ist an"' in html
    assert 'data-notice-push-unavailable="Push nicht verfügbar"' in html
    with app.test_request_context(headers={"Accept-Language": "en"}):
        html = render_template_string(page)
    assert 'data-notice-push-on="Push is on"' in html and ">Turn on notifications<" in html


def test_unsubscribe_and_preferences_pages_in_the_requests_locale(app_factory, smtp):
    """The unsubscribe page has no logged-in user: the request's locale (here from
    Accept-Language) decides; the shipped channel names translate too."""
    app = email_app(app_factory, smtp)
    use_session_login(app)
    _german_app(app, locale_selector=lambda: request.accept_languages.best_match(["en", "de"]))
    with app.test_request_context():
        path = urlsplit(links.unsubscribe_url(app, GERMAN, "Like", "email")).path
    client = app.test_client()
    german = {"Accept-Language": "de-DE,de;q=0.9"}
    page = client.get(path, headers=german).get_data(as_text=True)
    assert "Keine Like-Benachrichtigungen per E-Mail mehr erhalten?" in page
    assert ">Abbestellen</button>" in page and '<html lang="de">' in page
    english = client.get(path, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Stop receiving Like notices by email?" in english
    done = client.post(path, headers=german).get_data(as_text=True)
    assert "<h1>Sie sind abgemeldet</h1>" in done
    assert "Sie erhalten keine Like-Benachrichtigungen per E-Mail mehr." in done
    with app.app_context():
        assert not app.notices.preferences.enabled(GERMAN, "Like", "email")

    login(client, GERMAN)
    prefs = client.get("/notices/preferences", headers=german).get_data(as_text=True)
    assert '<th scope="col" class="notice-switch">E-Mail</th>' in prefs
    assert 'aria-label="Like per E-Mail"' in prefs


def test_pages_without_babel_are_english(app_factory):
    app = app_factory()
    use_session_login(app)
    app.notices.locale_loader(LOCALES.get)
    with app.app_context():
        notice_event(GERMAN, "Like", subject="Bo likes it", content="")
    client = app.test_client()
    login(client, GERMAN)
    page = client.get("/notices/").get_data(as_text=True)
    assert '<html lang="en">' in page and "<title>Notifications (1 unread)</title>" in page
    assert ">Mark all read</button>" in page


# --- in the browser ---------------------------------------------------------------------

SW = "/notices/static/notice/sw.js"
PUSH_PAGE = """<!doctype html><meta name="csrf-token" content="t"><title>push</title>
{% from "notice/macros.html" import notice_push_button %}{{ notice_push_button() }}
<script src="/notices/static/notice/push.js"></script>"""
SHOWN = f"""async () => {{
  const reg = await navigator.serviceWorker.getRegistration("{SW}");
  return (await reg.getNotifications()).map((n) => ({{title: n.title, lang: n.lang}}));
}}"""


@pytest.mark.browser
def test_a_german_push_in_chromium(browser, app_factory, service):
    """The German user's push reaches chromium's service worker, which shows it with
    ``lang="de"``; the German page's push button says, in German, that push is not
    available (incognito chromium has no Push API)."""
    app = _german_app(
        app_factory(**push_config(service)),
        locale_selector=lambda: request.accept_languages.best_match(["en", "de"]),
    )
    app.add_url_rule("/", "page", lambda: render_template_string(PUSH_PAGE))
    add_device(app, GERMAN, service.new_subscription())
    with app.app_context():
        notice_event(GERMAN, "Like", subject="Bo gefällt das", content="")
    [pushed] = [m.text for m in service.received]

    with serving(app) as port:
        origin = f"http://127.0.0.1:{port}"
        context = browser.new_context(locale="de-DE")
        context.grant_permissions(["notifications"], origin=origin)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(origin + "/")
        assert page.text_content("[data-notice-push]") == "Benachrichtigungen einschalten"
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda event: registrations.extend(event["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        page.evaluate(f'navigator.serviceWorker.register("{SW}").then(() => true)')
        assert poll(
            page, f'navigator.serviceWorker.getRegistration("{SW}").then((r) => !!(r && r.active))'
        )
        live = lambda: {r["registrationId"] for r in registrations if not r["isDeleted"]}  # noqa: E731
        deadline = time.monotonic() + 20
        while not live() and time.monotonic() < deadline:
            page.wait_for_timeout(50)  # lets Playwright deliver the CDP event
        [registration] = live()
        shown: list[dict[str, str]] = []
        for _attempt in range(3):
            # chromium now and then drops a push that CDP delivers right after the worker
            # activated (CI saw it, ~1 run in 6): deliver again; the notice's tag makes
            # a repeat replace the first notification, never stack beside it
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {"origin": origin, "registrationId": registration, "data": pushed},
            )
            shown = poll(page, SHOWN, timeout=6)
            if shown:
                break
        assert shown == [{"title": "Bo gefällt das", "lang": "de"}]

        page.click("[data-notice-push]")
        page.wait_for_function(
            "document.querySelector('[data-notice-push]').textContent"
            " !== 'Benachrichtigungen einschalten'"
        )
        assert page.text_content("[data-notice-push]") == "Push nicht verfügbar"
        context.close()
