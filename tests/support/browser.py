"""Debian's headless chromium driven by Playwright, for the browser tests.

``launch()`` starts it (skipping the test when chromium is not installed; browsers are
never downloaded); ``watch_errors(page)`` collects what the page reports as broken, for
the tests to assert it stays empty. The ``browser`` fixture in tests/conftest.py wraps
``launch()``; apps are served with :func:`tests.support.sse.serving`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: bound for starting chromium, in milliseconds
LAUNCH_TIMEOUT_MS = 30_000


@contextmanager
def launch() -> Iterator[Any]:
    """A running headless chromium (a Playwright ``Browser``), closed on exit."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    # imported here so that collecting the tests needs no Playwright
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


def watch_errors(page: Any, errors: list[str] | None = None, *, console: bool = True) -> list[str]:
    """Append the page's uncaught exceptions and, with ``console``, its console errors
    to ``errors`` (a new list if None; pass one list to watch several pages) and
    return it."""
    found: list[str] = [] if errors is None else errors
    if console:
        page.on("console", lambda m: found.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: found.append(str(exc)))
    return found


def poll(page: Any, script: str, timeout: float = 20.0) -> Any:
    """Evaluate ``script`` (it may return a promise) until its value is truthy or
    ``timeout`` seconds passed; return the last value. ``page.wait_for_function`` is no
    substitute for an async check: a returned promise counts as truthy at once.
    Waiting with ``page.wait_for_timeout`` also lets Playwright deliver CDP events."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(50)
