"""Fixtures of the real-browser tests (helpers in browserkit.py)."""

from urllib.parse import urlparse

import pytest
from browserkit import FLAGS, PageWatch, chromium_path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def watched(browser):
    """``watched(viewport)`` → (page, PageWatch); off-host requests are aborted, so they cannot leak."""
    contexts = []

    def make(width=1280, height=720):
        ctx = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(ctx)
        ctx.route(lambda url: urlparse(url).hostname not in ("127.0.0.1", None) and url.startswith("http"),
                  lambda route: route.abort())
        page = ctx.new_page()
        return page, PageWatch(page)

    yield make
    for ctx in contexts:
        ctx.close()


