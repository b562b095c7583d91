"""Take docs/example-inbox.png from the real example app: Ben has his inbox open when
Ana comments on his post, so the comment joins his list live and a pop-up shows; and
docs/example-inbox-phone.png, the same inbox on a 390 px wide phone.

    python docs/example_screenshot.py

Runs the app on a free loopback port with a throw-away SQLite database and drives
Debian's headless chromium (``/usr/bin/chromium``) with Playwright.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from example_app import create_app  # noqa: E402
from example_app.seed import DEMO_USERS, seed  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def log_in(browser, base: str, email: str, width: int = 1100, height: int = 720):
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", next(p for e, p, *_ in DEMO_USERS if e == email))
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/example.db"})
        seed(app)
        httpd = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{httpd.server_port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            ana = log_in(browser, base, DEMO_USERS[0][0])
            ben = log_in(browser, base, DEMO_USERS[1][0])
            ana.click("text=Weekend photos")
            ana.click("button:has-text('Like')")
            ben.goto(f"{base}/notices/")
            expect(ben.locator("html")).to_have_attribute("data-notice-stream", "open")
            ana.fill("#comment-form textarea", "What a view! Which trail was that?")
            ana.click("#comment-form button[type=submit]")
            expect(ben.locator(".notice-toast")).to_be_visible()
            # the comment joined the open list without a reload
            expect(ben.locator(".notice-list .notice-item").first).to_contain_text("comment")
            ben.wait_for_timeout(1400)  # let the new item's highlight fade
            out = ROOT / "docs" / "example-inbox.png"
            ben.screenshot(path=str(out))
            phone = log_in(browser, base, DEMO_USERS[1][0], width=390, height=760)
            phone.goto(f"{base}/notices/")
            expect(phone.locator("html")).to_have_attribute("data-notice-stream", "open")
            out_phone = ROOT / "docs" / "example-inbox-phone.png"
            phone.screenshot(path=str(out_phone))
            browser.close()
        httpd.shutdown()
        print(f"wrote {out} and {out_phone}")


if __name__ == "__main__":
    main()
