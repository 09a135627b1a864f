"""Stored chapters: paired with their py:percent twin, executed top to bottom, and following the anatomy."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def _without_version(text: str) -> str:
    return re.sub(r"(?m)^#\s+jupytext_version: .*\n", "", text)


def test_there_are_chapters():
    assert NOTEBOOKS, "no chapters found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_ipynb_and_py_twin_hold_the_same_cells(path):
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} is missing (jupytext --to py:percent chapters/{path.name})"
    # the documented check: jupytext --to py:percent -o - X.ipynb | diff X.py -  (the header line that records
    # jupytext's own version is left out: a patch release of jupytext must not unpair every chapter)
    expected = subprocess.run([sys.executable, "-m", "jupytext", "--to", "py:percent", "-o", "-", str(path)],
                              capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert _without_version(twin.read_text()) == _without_version(expected), (
        f"{path.name} and {twin.name} differ: edit the .py, then `make pair` "
        f"(jupytext --to ipynb --update chapters/{twin.name}, which keeps the stored outputs), and re-execute "
        "the cells you changed")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_stored_notebook_was_executed_top_to_bottom_without_errors(path):
    nb = json.loads(path.read_text())
    counts = [c.get("execution_count") for c in _code_cells(nb)]
    assert None not in counts, f"{path.name}: some code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not one fresh run top to bottom: {counts}"
    errors = [o for c in _code_cells(nb) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: stored error output {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapter_anatomy(path):
    nb = json.loads(path.read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"])
    code = _code_cells(nb)
    assert "NBVAL_CHECK_OUTPUT" in src, "derivations need numeric verdict cells"
    assert "ipywidgets" in src, "every chapter has at least one widget"
    assert "utils.exercises" in src, "exercises are checked by utils.exercises"
    assert any("source_hidden" in json.dumps(c.get("metadata", {})) for c in nb["cells"]), "solutions are collapsed"
    assert any("slideshow" in c.get("metadata", {}) for c in nb["cells"]), "slide metadata for presenting"
    first = "".join(code[0]["source"])
    assert "start_chapter(" in first, "first code cell prints profile/device and seeds (utils.config.start_chapter)"
    pngs = sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    assert pngs >= 3, "stored figures for readers on GitHub"
    assert path.stat().st_size < 3 * 2**20, "keep a chapter under 3 MiB"
    for c in code:
        s = "".join(c["source"])
        assert "!pip" not in s and ".cuda()" not in s
        tags = c.get("metadata", {}).get("tags", [])
        if "interact" in s or "widgets." in s:
            assert "nbval-ignore-output" in tags or "NBVAL_IGNORE_OUTPUT" in s, "widget cells ignore their output"
