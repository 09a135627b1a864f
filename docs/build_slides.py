"""Build one offline reveal.js slide deck per chapter from the stored notebooks, without executing anything.

    python docs/build_slides.py [--out build/slides]

Writes ``NN_topic.slides.html`` for every ``chapters/NN_*.ipynb``, one shared ``assets/`` folder and an
``index.html`` that lists the decks. Everything a deck loads is local: reveal.js 5 and its white theme come from the
``sphinx-revealjs`` package (which ships them), MathJax 3 from ``sphinx-mathjax-offline``, the notebook styles are
inlined by nbconvert. Each notebook is prepared in memory (the chapter files are never written): NBVAL comment
lines are dropped, hidden reference solutions keep their output but not their source, widget state goes (the static
figure next to each widget stays), cells marked ``skip`` are left out. Slides are 1280 x 720; a slide taller than
that scrolls inside its frame (the ``course`` theme's rule), nothing is cut off.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import SlidesExporter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from build_site import MATHJAX, chapter_title, for_the_web  # noqa: E402

CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
ASSETS = "assets"
WIDTH, HEIGHT = 1280, 720
NBVAL_LINE = re.compile(r"^[ \t]*#[ \t]*NBVAL\w*.*(?:\n|$)", flags=re.M)


def reveal_dir() -> Path:
    """The reveal.js distribution shipped inside the sphinx-revealjs package."""
    spec = importlib.util.find_spec("sphinx_revealjs")
    folder = Path(spec.origin).parent / "_static" / "revealjs" if spec else None
    if folder is None or not (folder / "dist" / "reveal.js").exists():
        raise FileNotFoundError("reveal.js not found: install the docs extra (pip install -e '.[docs]'), "
                                "whose sphinx-revealjs package ships it")
    return folder


def chapter_notebooks(root: Path = ROOT) -> list[Path]:
    """Every ``chapters/NN_*.ipynb``, in order."""
    return sorted((root / "chapters").glob(CHAPTER_GLOB))


def split_by_headings(nb: dict) -> dict:
    """Slide types for a notebook that has none: a markdown cell opening with ``#`` or ``##`` starts a slide,
    one opening with ``###`` a subslide (a vertical slide below it); every other cell continues the slide."""
    for cell in nb["cells"]:
        level = 0
        if cell["cell_type"] == "markdown":
            m = re.match(r"\s*(#{1,6}) ", "".join(cell["source"]))
            level = len(m.group(1)) if m else 0
        kind = "slide" if 1 <= level <= 2 else "subslide" if level == 3 else "-"
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": kind}
    return nb


def has_slide_metadata(nb: dict) -> bool:
    return any("slide_type" in c.get("metadata", {}).get("slideshow", {}) for c in nb["cells"])


def count_slides(nb: dict) -> int:
    """How many slides (vertical ones included) a prepared notebook makes: the first shown cell opens one,
    then every cell whose type is slide or subslide."""
    kinds = [c["metadata"].get("slideshow", {}).get("slide_type", "-") for c in nb["cells"]]
    shown = [k for k in kinds if k not in ("skip", "notes")]
    return int(bool(shown)) + sum(k in ("slide", "subslide") for k in shown[1:])


def for_the_slides(nb: dict) -> dict:
    """A copy of a stored notebook fit for a deck: the website's copy (no widget state, widget views replaced by a
    note), without NBVAL comment lines or tags, without the source of hidden solutions, split by headings if it
    carries no slide metadata."""
    nb = for_the_web(nb)
    if not has_slide_metadata(nb):
        split_by_headings(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["source"] = NBVAL_LINE.sub("", "".join(cell["source"]))
        tags = [t for t in cell["metadata"].get("tags", []) if not t.lower().startswith("nbval")]
        cell["metadata"]["tags"] = tags  # nbconvert writes tags into class names
        if cell["metadata"].get("jupyter", {}).get("source_hidden"):
            cell["source"] = ""
            cell["metadata"]["transient"] = {"remove_source": True}
    return nb


# The reveal template of nbconvert, less what it would fetch from a CDN: jQuery, RequireJS, Mermaid and
# MathJax 2 go; reveal.js and its notes plugin load from the assets folder; MathJax 3 (SVG output) typesets
# every slide once, then reveal.js lays the slides out again at their typeset height.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}
<link rel="icon" href="data:,">
<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  startup: {pageReady: () => MathJax.startup.defaultPageReady().then(() => window.Reveal && Reveal.layout())}
};
</script>
<script defer src="{{ resources.mathjax_url }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block footer_js -%}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true, progress: true, hash: true, center: true,
  transition: "{{ resources.reveal.transition }}", slideNumber: "{{ resources.reveal.number }}",
  width: {{ resources.reveal.width }}, height: {{ resources.reveal.height }}, margin: 0.02,
  plugins: [RevealNotes]
});
</script>
{%- endblock footer_js -%}
"""

# Loaded after the white theme and nbconvert's notebook styles, so it has the last word.
COURSE_THEME = f"""@import url("white.css");
/* A slide taller than the {WIDTH} x {HEIGHT} frame scrolls inside it (mouse wheel, trackpad or scrollbar);
   nothing is cut off. Wide content scrolls sideways the same way. */
.reveal .slides > section > section {{
  box-sizing: border-box; max-height: 100%; overflow-y: auto; overflow-x: auto; padding: 8px 16px 3em;
}}
/* The last lines of a scrolled slide clear the arrows; the slide number sits bottom left, out of their way. */
.reveal .slide-number {{ right: auto; left: 8px; }}
.reveal .slides > section > section::-webkit-scrollbar {{ width: 10px; height: 10px; }}
.reveal .slides > section > section::-webkit-scrollbar-thumb {{ background: #b8c4d0; border-radius: 5px; }}
.reveal section img {{ max-width: 100%; height: auto; }}
.reveal pre {{ overflow-x: auto; }}
.reveal .jp-RenderedText pre {{ white-space: pre-wrap; }}
.reveal div.jp-InputArea-editor {{ overflow: auto; }}
.reveal .jp-InputArea-editor .highlight {{ margin: 0.4em 0; }}
.reveal h1, .reveal h2, .reveal h3, .reveal h4 {{ text-transform: none; }}
.reveal h1 {{ font-size: 1.9em; }}
.reveal h2 {{ font-size: 1.5em; }}
.reveal h3 {{ font-size: 1.2em; }}
.reveal .jp-RenderedMarkdown {{ font-size: 22px; line-height: 1.4; }}
"""


def exporter(reveal_url: str, theme: str) -> SlidesExporter:
    return SlidesExporter(
        extra_loaders=[DictLoader({"course_slides.html.j2": TEMPLATE})], template_file="course_slides.html.j2",
        reveal_url_prefix=reveal_url, reveal_theme=theme, reveal_transition="slide", reveal_number="c/t",
        reveal_width=str(WIDTH), reveal_height=str(HEIGHT), mathjax_url=f"{ASSETS}/mathjax/tex-svg.js",
        require_js_url="", jquery_url="", exclude_input_prompt=True, exclude_output_prompt=True)


def render_deck(nb: dict, title: str, reveal_url: str = f"{ASSETS}/reveal", theme: str = "course") -> str:
    """The deck's HTML for a notebook already prepared by ``for_the_slides``."""
    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins the stored line lists
    node.metadata["title"] = title
    body, _ = exporter(reveal_url, theme).from_notebook_node(node)
    return body


REMOTE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']((?:https?:)?//[^\"']+)", flags=re.I)


def remote_loads(page: str) -> list[str]:
    """Addresses a page would fetch from another host (links the reader may follow are not counted)."""
    return REMOTE.findall(page) + re.findall(r"@import\s+url\([\"']?((?:https?:)?//[^)\"']+)", page)


def copy_assets(out: Path) -> None:
    reveal, dest = reveal_dir(), out / ASSETS
    if dest.exists():
        shutil.rmtree(dest)
    for rel in ("LICENSE", "dist/reveal.css", "dist/reveal.js", "dist/theme/white.css", "plugin/notes/notes.js"):
        (dest / "reveal" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(reveal / rel, dest / "reveal" / rel)
    fonts = "dist/theme/fonts/source-sans-pro"
    shutil.copytree(reveal / fonts, dest / "reveal" / fonts)
    (dest / "reveal" / "dist" / "theme" / "course.css").write_text(COURSE_THEME)
    (dest / "mathjax").mkdir(parents=True)
    shutil.copy(MATHJAX / "tex-svg.js", dest / "mathjax" / "tex-svg.js")


def index_page(decks: list[tuple[str, str, int]]) -> str:
    rows = "\n".join(f'<li><a href="{name}">{html.escape(title)}</a> <span>({n} slides)</span></li>'
                     for name, title, n in decks)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Diffusion models, from first principles: slides</title>
<link rel="icon" href="data:,">
<style>
body {{ font: 18px/1.5 system-ui, sans-serif; max-width: 46em; margin: 3em auto; padding: 0 1em; color: #222; }}
li {{ margin: 0.4em 0; }} span {{ color: #777; font-size: 0.85em; }} kbd {{ border: 1px solid #bbb;
border-radius: 3px; padding: 0 0.3em; font-size: 0.85em; }}
</style></head><body>
<h1>Diffusion models, from first principles: slides</h1>
<p>One deck per chapter, made from the stored notebooks; they work offline. Keys: <kbd>&rarr;</kbd>/<kbd>space</kbd>
next, <kbd>&darr;</kbd> into a vertical slide, <kbd>Esc</kbd> overview, <kbd>F</kbd> full screen, <kbd>S</kbd> speaker
view. A tall slide scrolls inside its frame. To run the code live, open the chapter in JupyterLab and press
<kbd>Alt</kbd>+<kbd>R</kbd> (RISE).</p>
<ol start="0">
{rows}
</ol>
</body></html>
"""


def build(out: Path, root: Path = ROOT) -> list[Path]:
    """Write every chapter's deck, the assets and the index into ``out``; returns the decks' paths."""
    notebooks = chapter_notebooks(root)
    if not notebooks:
        raise FileNotFoundError(f"no chapters/{CHAPTER_GLOB} under {root}")
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.slides.html"):
        old.unlink()
    copy_assets(out)
    decks, listed = [], []
    for path in notebooks:
        stored = json.loads(path.read_text())
        if not has_slide_metadata(stored):
            print(f"{path.name}: no slide metadata, one slide per # / ## heading", file=sys.stderr)
        nb = for_the_slides(stored)
        page = render_deck(nb, chapter_title(stored))
        remote = remote_loads(page)
        if remote:
            raise RuntimeError(f"{path.name}: the deck would fetch {remote[:3]}")
        target = out / f"{path.stem}.slides.html"
        target.write_text(page)
        decks.append(target)
        listed.append((target.name, chapter_title(stored), count_slides(nb)))
    (out / "index.html").write_text(index_page(listed))
    return decks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "slides"))
    args = parser.parse_args(argv)
    for deck in build(Path(args.out)):
        print(deck.relative_to(ROOT) if deck.is_relative_to(ROOT) else deck)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
