"""Build the course website from the stored notebooks, without executing anything.

    python docs/build_site.py [--out build/site]

Stages a Sphinx project in ``build/site-src`` (this folder's ``conf.py``, a landing page, one page per chapter,
the ``utils`` reference) and renders it with myst-nb into ``build/site``. Everything the pages load is local:
MathJax 3 comes from the ``sphinx-mathjax-offline`` package, search is Sphinx's own, and the notebooks' widget state
is dropped (a stored widget needs a live kernel; its static fallback stays).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image


ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from utils.course_map import CHAPTER_FILES, NODES  # noqa: E402

# MathJax 3 (SVG output: one file, no web fonts) from the sphinx-mathjax-offline package.
MATHJAX = Path(importlib.util.find_spec("sphinx-mathjax-offline").origin).parent / "static" / "mathjax"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def chapter_title(nb: dict) -> str:
    """The first level-1 heading of a notebook, e.g. "00 — Toolkit: ..."."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            m = re.search(r"^# (.+)$", "".join(cell["source"]), flags=re.M)
            if m:
                return m.group(1).strip()
    raise ValueError("notebook has no level-1 heading")


def for_the_web(nb: dict) -> dict:
    """A copy of the notebook fit for a static page: no widget state or views, solutions collapsed."""
    nb = json.loads(json.dumps(nb))
    nb["metadata"].pop("widgets", None)
    for cell in nb["cells"]:
        meta = cell.setdefault("metadata", {})
        if cell["cell_type"] != "code":
            continue
        if meta.get("jupyter", {}).get("source_hidden"):
            meta["tags"] = sorted(set(meta.get("tags", [])) | {"hide-input"})
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                data.pop(WIDGET_VIEW)
                data["text/plain"] = "(an interactive widget: run the chapter in JupyterLab to use it)"
    return nb


def module_docs() -> list[str]:
    """Every module of utils that has a docstring, in file order (core first)."""
    names = []
    for path in sorted((ROOT / "utils").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if ast.get_docstring(ast.parse(path.read_text())):
            names.append(".".join(parts))
    core = [n for n in names if n.count(".") == 1 and not (ROOT / n.replace(".", "/")).is_dir()]
    return ["utils"] + core + [n for n in names if n not in core and n != "utils"]


def landing(titles: dict[str, str]) -> str:
    papers = {}
    for node in NODES:
        if node.chapter != "later":
            papers.setdefault(node.chapter, []).append(node.paper)
    rows = "\n".join(f"- [{titles[ch]}](chapters/{Path(f).stem}) — {'; '.join(papers.get(ch, ['—']))}"
                     for ch, f in CHAPTER_FILES.items())
    text = (HERE / "index.md").read_text()
    toc = "\n".join(f"chapters/{Path(f).stem}" for f in CHAPTER_FILES.values())
    return text.replace("{{chapters}}", rows).replace("{{toctree}}", toc)


def stage(src: Path) -> None:
    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    titles = {}
    for ch, name in CHAPTER_FILES.items():
        nb = json.loads((ROOT / "chapters" / name).read_text())
        titles[ch] = chapter_title(nb)
        (src / "chapters" / name).write_text(json.dumps(for_the_web(nb)))
    (src / "index.md").write_text(landing(titles))
    mods = "\n\n".join(f"```{{eval-rst}}\n.. automodule:: {m}\n```" for m in module_docs())
    (src / "reference.md").write_text((HERE / "reference.md").read_text().replace("{{modules}}", mods))
    shutil.copy(HERE / "conf.py", src / "conf.py")
    shutil.copytree(ROOT / "figures", src / "figures")
    (src / "_static" / "mathjax").mkdir(parents=True)
    shutil.copy(MATHJAX / "tex-svg.js", src / "_static" / "mathjax")
    Image.new("RGB", (32, 32), "#cfe2f3").save(src / "_static" / "favicon.png")  # else browsers log a 404


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "site"))
    args = parser.parse_args(argv)
    src = ROOT / "build" / "site-src"
    stage(src)
    out = Path(args.out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", "2", str(src), str(out)]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
