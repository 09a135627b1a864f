"""Every page of the built site, in a real browser: maths rendered, images loaded, no console error, nothing
fetched from anywhere but 127.0.0.1. Builds the site first if ``build/site`` is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from browserkit import ROOT, page_problems, screenshot, serve

SITE = ROOT / "build" / "site"
SKIP_PAGES = {"genindex.html", "py-modindex.html"}  # Sphinx's generated indexes


def _built_site():
    if not (SITE / "index.html").exists():
        subprocess.run([sys.executable, str(ROOT / "docs" / "build_site.py")], check=True, cwd=ROOT)
    return SITE


def _pages():
    site = _built_site()
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts and p.name not in SKIP_PAGES)


@pytest.fixture(scope="module")
def site_url():
    url, server = serve(_built_site())
    yield url
    server.shutdown()


@pytest.mark.parametrize("page_path", _pages())
def test_page(watched, site_url, page_path):
    page, watch = watched(1280, 900)
    page.goto(f"{site_url}/{page_path}", wait_until="load")
    problems = page_problems(page, watch, expect_maths=page_path.startswith("chapters/"))
    screenshot(page, "site-" + page_path.replace("/", "-").removesuffix(".html"))
    assert not problems, f"{page_path}: " + "; ".join(problems)


def test_search_finds_a_chapter(watched, site_url):
    page, watch = watched()
    page.goto(f"{site_url}/search.html?q=Tweedie", wait_until="load")
    page.wait_for_selector("#search-results li, ul.search li", timeout=20_000)
    hits = page.locator("ul.search li").all_inner_texts()
    screenshot(page, "site-search")
    assert any("DDPM" in h or "03" in h for h in hits), f"search.html?q=Tweedie: no chapter among {hits[:5]}"
    assert not watch.offsite, f"search.html: requests leaving 127.0.0.1: {watch.offsite[:5]}"


def test_chapter_pages_link_on_and_collapse_solutions(watched, site_url):
    page, _ = watched()
    page.goto(f"{site_url}/chapters/03_ddpm.html", wait_until="load")
    prev_href = page.locator("a.left-prev").get_attribute("href")
    next_href = page.locator("a.right-next").get_attribute("href")
    assert "02_score_matching_langevin" in prev_href and "04_ddim" in next_href, \
        f"chapters/03_ddpm.html: previous/next links are {prev_href!r}, {next_href!r}"
    page.goto(f"{site_url}/chapters/00_toolkit.html", wait_until="load")
    solutions = page.locator("details.hide")
    assert solutions.count() >= 2, "chapters/00_toolkit.html: the exercise solutions are not collapsible"
    assert page.locator("details.hide[open]").count() == 0, "chapters/00_toolkit.html: a solution shows expanded"
