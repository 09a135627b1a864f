"""Every chapter's slide deck in a real browser at 1280 x 720: reveal.js starts, maths is typeset, nothing is fetched
from anywhere but 127.0.0.1, no console error, no NBVAL marker and no hidden solution's source in the page, and every
slide fits the screen or scrolls inside it. Builds the decks first when ``build/slides`` is missing or older than a
chapter or the build script. Wrong decks (reveal.js from a CDN, an unprepared notebook, no scroll rule) are rejected."""

from __future__ import annotations

import json
import sys

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browserkit import ROOT, page_problems, screenshot, serve

sys.path.insert(0, str(ROOT / "docs"))
import build_slides  # noqa: E402

SLIDES = ROOT / "build" / "slides"
WIDTH, HEIGHT = build_slides.WIDTH, build_slides.HEIGHT
CHAPTERS = build_slides.chapter_notebooks()


def _built() -> None:
    index = SLIDES / "index.html"
    sources = CHAPTERS + [ROOT / "docs" / "build_slides.py", ROOT / "docs" / "build_site.py"]
    if not index.exists() or index.stat().st_mtime < max(p.stat().st_mtime for p in sources):
        build_slides.build(SLIDES)


@pytest.fixture(scope="module")
def slides_url():
    _built()
    url, server = serve(SLIDES)
    yield url
    server.shutdown()


def hidden_lines(nb: dict) -> list[str]:
    """Lines of the hidden reference solutions found nowhere else in the notebook, outputs included (what must not
    show)."""
    hidden, shown = [], []
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
            hidden += [line.strip() for line in source.splitlines() if len(line.strip()) >= 12]
        else:
            shown.append(source)
        shown += ["".join(out.get("text", "")) for out in cell.get("outputs", [])]
    everything_else = "\n".join(shown)
    return sorted({line for line in hidden if line not in everything_else})


# After MathJax: how many formulas were typeset, TeX errors, TeX left raw in the prose (outside code).
MATHS = """async () => {
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return {count: 0, errors: [], raw: []};
  await MathJax.startup.promise;
  const errors = [...document.querySelectorAll('mjx-merror, [data-mjx-error]')].map(e => e.textContent.slice(0, 60));
  const raw = [];
  for (const md of document.querySelectorAll('.jp-RenderedMarkdown')) {
    const copy = md.cloneNode(true);
    copy.querySelectorAll('pre, code, mjx-container').forEach(e => e.remove());
    const m = copy.textContent.match(/\\$\\$|\\\\\\(|\\\\\\[|\\$[^$\\s][^$]*\\$/);
    if (m) raw.push(m[0].slice(0, 60));
  }
  return {count: document.querySelectorAll('mjx-container').length, errors, raw};
}"""

# Walks every slide (vertical ones too) and measures it on the screen: a slide must lie inside the window, and
# content larger than its box (the slide or any box inside it) must be scrollable there, not clipped.
WALK = """async () => {
  Reveal.configure({transition: 'none', backgroundTransition: 'none'});
  const frame = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const scrolls = o => o === 'auto' || o === 'scroll';
  const slides = Reveal.getSlides(), bad = [], W = innerWidth, H = innerHeight;
  let maths = null;
  for (const s of slides) {
    const {h, v} = Reveal.getIndices(s);
    Reveal.slide(h, v);
    await frame();
    const cur = Reveal.getCurrentSlide();
    const head = cur.querySelector('h1, h2, h3, h4');
    const name = `slide ${h}.${v || 0} "${(head ? head.textContent : cur.textContent).trim().slice(0, 40)}"`;
    if (cur !== s) { bad.push(`${name}: navigation did not reach it`); continue; }
    const r = cur.getBoundingClientRect();
    if (r.top < -1 || r.left < -1 || r.bottom > H + 1 || r.right > W + 1)
      bad.push(`${name}: spans ${Math.round(r.left)}..${Math.round(r.right)} x ${Math.round(r.top)}..` +
               `${Math.round(r.bottom)}, off the ${W}x${H} screen`);
    if (cur.scrollHeight > cur.clientHeight + 2) {  // a tall slide: it must really scroll to its end
      cur.scrollTop = cur.scrollHeight;
      if (cur.scrollTop + cur.clientHeight < cur.scrollHeight - 2) bad.push(`${name}: does not scroll to its end`);
      cur.scrollTop = 0;
    }
    for (const el of [cur, ...cur.querySelectorAll('*:not(svg *):not(mjx-container *)')]) {
      const st = getComputedStyle(el);
      if (el.clientHeight === 0 || st.display === 'inline') continue;
      if (el.scrollHeight > el.clientHeight + 2 && !scrolls(st.overflowY) && st.overflowY !== 'visible')
        bad.push(`${name}: a <${el.tagName.toLowerCase()}> clips ${el.scrollHeight - el.clientHeight}px of height`);
      if (el.scrollWidth > el.clientWidth + 2 && !scrolls(st.overflowX) && st.overflowX !== 'visible')
        bad.push(`${name}: a <${el.tagName.toLowerCase()}> clips ${el.scrollWidth - el.clientWidth}px of width`);
    }
    if (maths === null && h > 0 && cur.querySelector('mjx-container[display="true"]')) maths = [h, v || 0];
  }
  return {visited: slides.length, total: Reveal.getTotalSlides(), bad, maths};
}"""


def deck_problems(page, watch, hidden: list[str], shot: str | None = None) -> list[str]:
    """What is wrong with a loaded deck; empty when it is fine. ``shot`` names a screenshot of a slide with
    displayed maths (taken when the deck works)."""
    problems = []
    try:  # reveal.js is a plain script at the end of the page: after "load" it ran, or it never will
        if not page.evaluate("() => typeof window.Reveal !== 'undefined' && typeof Reveal.isReady === 'function'"):
            raise PlaywrightTimeout("no Reveal object")
        page.wait_for_function("() => Reveal.isReady()", timeout=20_000)
    except PlaywrightTimeout:
        problems.append("reveal.js did not initialise")
    maths = page.evaluate(MATHS)
    if maths["count"] == 0:
        problems.append("no maths typeset")
    if maths["errors"]:
        problems.append(f"TeX errors: {maths['errors'][:3]}")
    if maths["raw"]:
        problems.append(f"TeX left raw in the text: {maths['raw'][:3]}")
    page_html = page.evaluate("() => document.documentElement.outerHTML")
    if "nbval" in page_html.lower():
        at = page_html.lower().index("nbval")
        problems.append(f"NBVAL in the page: ...{page_html[max(at - 40, 0):at + 30]!r}...")
    text = page.evaluate("() => document.body.textContent")
    shown = [line for line in hidden if line in text]
    if shown:
        problems.append(f"{len(shown)} lines of hidden solutions show, e.g. {shown[:2]}")
    if "reveal.js did not initialise" not in problems:
        walk = page.evaluate(WALK)
        if walk["visited"] != walk["total"]:
            problems.append(f"walked {walk['visited']} of {walk['total']} slides")
        problems += walk["bad"][:8]
        if shot and walk["maths"]:
            page.evaluate("([h, v]) => Reveal.slide(h, v)", walk["maths"])
            page.wait_for_timeout(300)
            screenshot(page, shot)
    problems += page_problems(page, watch)
    return problems


@pytest.mark.parametrize("chapter", [p.stem for p in CHAPTERS])
def test_deck(watched, slides_url, chapter):
    nb = json.loads((ROOT / "chapters" / f"{chapter}.ipynb").read_text())
    page, watch = watched(WIDTH, HEIGHT)
    page.goto(f"{slides_url}/{chapter}.slides.html", wait_until="load")
    problems = deck_problems(page, watch, hidden_lines(nb), shot=f"slides-{chapter}")
    assert not problems, f"{chapter}.slides.html: " + "; ".join(problems)
    assert (ROOT / "build" / "screenshots" / f"slides-{chapter}.png").exists(), f"{chapter}: no slide with maths"


def test_index_lists_every_deck(watched, slides_url):
    page, watch = watched(WIDTH, HEIGHT)
    page.goto(f"{slides_url}/index.html", wait_until="load")
    links = page.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert links == [f"{p.stem}.slides.html" for p in CHAPTERS], f"index.html links {links}"
    assert all((SLIDES / link).exists() for link in links)
    problems = page_problems(page, watch)
    assert not problems, "index.html: " + "; ".join(problems)


CDN = "https://unpkg.com/reveal.js@4.0.2"  # nbconvert's default


@pytest.mark.parametrize("wrong, faults", [
    ("reveal.js from a CDN", ("leaving 127.0.0.1", "reveal.js did not initialise")),
    ("the notebook as stored", ("NBVAL in the page", "lines of hidden solutions show")),
    ("no scroll rule", ("off the 1280x720 screen",)),
], ids=["cdn-reveal", "unprepared-notebook", "no-scroll-rule"])
def test_wrong_decks_are_rejected(watched, slides_url, tmp_path, wrong, faults):
    chapter = CHAPTERS[0]
    stored = json.loads(chapter.read_text())
    title = build_slides.chapter_title(stored)
    prepared = build_slides.for_the_slides(stored)
    page_html = {"reveal.js from a CDN": lambda: build_slides.render_deck(prepared, title, reveal_url=CDN),
                 "the notebook as stored": lambda: build_slides.render_deck(build_slides.for_the_web(stored), title),
                 "no scroll rule": lambda: build_slides.render_deck(prepared, title, theme="white")}[wrong]()
    (tmp_path / "assets").symlink_to(SLIDES / "assets")
    (tmp_path / "deck.html").write_text(page_html)
    url, server = serve(tmp_path)
    try:
        page, watch = watched(WIDTH, HEIGHT)
        page.goto(f"{url}/deck.html", wait_until="load")
        problems = " | ".join(deck_problems(page, watch, hidden_lines(stored)))
    finally:
        server.shutdown()
    assert hidden_lines(stored), f"{chapter.name}: no hidden solution to look for"
    for fault in faults:
        assert fault in problems, f"{wrong}: not reported as {fault!r} (got: {problems})"


def test_preparation_drops_markers_and_hidden_sources_only():
    chapter = CHAPTERS[0]
    before = chapter.read_bytes()
    stored = json.loads(before)
    prepared = build_slides.for_the_slides(stored)
    assert chapter.read_bytes() == before, "preparing a deck changed the chapter file"
    assert len(prepared["cells"]) == len(stored["cells"])
    for old, new in zip(stored["cells"], prepared["cells"]):
        hidden = old.get("metadata", {}).get("jupyter", {}).get("source_hidden")
        if old["cell_type"] != "code":
            assert new["source"] == old["source"]
        elif hidden:
            assert new["source"] == "" and new["metadata"]["transient"] == {"remove_source": True}
        else:  # exactly the NBVAL lines go
            kept = [line for line in "".join(old["source"]).splitlines(True) if "NBVAL" not in line]
            assert new["source"] == "".join(kept), "".join(old["source"])[:80]
        assert len(new.get("outputs", [])) == len(old.get("outputs", [])), "an output was lost"
    assert "widgets" not in prepared["metadata"]


def test_notebooks_without_slide_metadata_split_at_headings():
    def md(text):
        return {"cell_type": "markdown", "metadata": {}, "source": [text]}
    nb = {"metadata": {}, "cells": [md("# Title\nintro"), md("text"), md("## Part 1"), md("### Detail"),
                                     {"cell_type": "code", "metadata": {}, "source": ["x = 1  # ## not a heading"],
                                      "outputs": [], "execution_count": 1}, md("#### small heading")]}
    kinds = [c["metadata"]["slideshow"]["slide_type"] for c in build_slides.for_the_slides(nb)["cells"]]
    assert kinds == ["slide", "-", "slide", "subslide", "-", "-"], kinds
    assert build_slides.count_slides(build_slides.for_the_slides(nb)) == 3
    authored = json.loads(CHAPTERS[0].read_text())  # authored metadata is kept as it is
    assert [c["metadata"].get("slideshow") for c in build_slides.for_the_slides(authored)["cells"]] == \
        [c["metadata"].get("slideshow") for c in authored["cells"]]
