"""The example app in a real browser: the app served on a loopback port as
``python -m example_app`` runs it, and a logged-in page per demo user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from example_app import create_app, notices
from example_app.models import db
from example_app.seed import DEMO_USERS, seed
from tests.support.browser import watch_errors
from tests.support.sse import serving

#: bound for each wait on the page (Playwright's expect polls until then)
WAIT_MS = 10_000


@contextmanager
def example_server(tmp_path: Path) -> Iterator[str]:
    """The seeded example app (thread-pool dispatch, in-process broker) on a free
    loopback port, in a thread of this process; yields its base URL."""
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'example.db'}",
            "SECRET_KEY": "browser-test",
            # a stream notices a closed tab at the next heartbeat: keep that short
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


def new_page(context: Any, errors: list[str]) -> Any:
    """A page of ``context`` whose console errors land in ``errors``."""
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    watch_errors(page, errors)
    return page


def log_in(context: Any, base: str, email: str, errors: list[str]) -> Any:
    """A new page of ``context`` logged in as the demo user ``email``."""
    from playwright.sync_api import expect

    page = new_page(context, errors)
    password = next(p for e, p, *_ in DEMO_USERS if e == email)
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("header nav")).to_contain_text("Feed")
    return page
