"""Helpers of the real-browser tests: Playwright driving the system's Chromium (``CHROMIUM`` or /usr/bin/chromium).

Run with ``make test-browser``. Without a Chromium the tests fail with a message that says so: they never pass
without having run. Screenshots go to ``build/screenshots`` (ignored by git).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM=/path; "
                    "the browser tests did not run", pytrace=False)
    return path


class PageWatch:
    """Collects what a page did wrong: console errors, uncaught exceptions, failed or off-host requests."""

    def __init__(self, page):
        self.page, self.errors, self.offsite, self.failed = page, [], [], []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", self._request)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))

    def _request(self, request):
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
            self.offsite.append(request.url)


def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; returns (base_url, server)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def screenshot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


# Maths: MathJax 3 turns each \( \) / \[ \] span into an <mjx-container>; TeX errors become merror nodes.
MATH_STATE = """() => new Promise(done => {
  const report = () => {
    const maths = [...document.querySelectorAll('.math')];
    const raw = maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80));
    const errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error], .merror')]
                     .map(e => (e.closest('.math') || e).textContent.slice(0, 80));
    const prose = [...document.querySelectorAll('article p, article li, article td')]
                     .filter(e => !e.closest('pre, code, .cell_output'));
    const dollars = prose.filter(e => /\\$\\$/.test(e.textContent)).map(e => e.textContent.slice(0, 80));
    done({count: maths.length, raw, errors, dollars});
  };
  if (window.MathJax && MathJax.startup) MathJax.startup.promise.then(report); else report();
})"""

IMAGES = """() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120))"""


def page_problems(page, watch: PageWatch, expect_maths: bool = False) -> list[str]:
    """What is wrong with a loaded page: unrendered maths, TeX errors, raw $$, broken images, console errors,
    requests that left 127.0.0.1. Empty when the page is fine."""
    state = page.evaluate(MATH_STATE)
    page.wait_for_load_state("networkidle")
    broken = page.evaluate(IMAGES)
    problems = []
    if state["raw"]:
        problems.append(f"{len(state['raw'])} maths left unrendered, e.g. {state['raw'][:3]}")
    if state["errors"]:
        problems.append(f"TeX errors: {state['errors'][:5]}")
    if state["dollars"]:
        problems.append(f"raw $$ in the text: {state['dollars'][:3]}")
    if broken:
        problems.append(f"images not loaded: {broken[:5]}")
    if watch.errors:
        problems.append(f"console errors: {watch.errors[:5]}")
    if watch.offsite:
        problems.append(f"requests leaving 127.0.0.1: {watch.offsite[:5]}")
    if expect_maths and state["count"] == 0:
        problems.append("no maths on a page that should have some")
    return problems
