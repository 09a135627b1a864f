"""docs/execute_chapters.py (what ``make course`` runs): the kernel's replies are polled in short slices, so a missed
ZeroMQ wake-up costs one slice instead of the cell's whole timeout, and a notebook with a widget executes in place."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
import execute_chapters  # noqa: E402


def fake_channel(ready_on_call: int | None, wait: bool = False):
    """(get_msg, timeouts asked): ``get_msg`` answers "msg" from call number ``ready_on_call`` on and raises Empty
    before (after sleeping out its timeout when ``wait``); ``None``: never answers."""
    asked = []

    async def get_msg(self, timeout=None):
        asked.append(timeout)
        if ready_on_call is not None and len(asked) >= ready_on_call:
            return "msg"
        if wait:
            await asyncio.sleep(timeout)
        raise Empty

    return get_msg, asked


def test_a_long_wait_is_polled_in_short_slices():
    get_msg, asked = fake_channel(ready_on_call=3)
    assert asyncio.run(execute_chapters.polled_in_slices(get_msg, 0.01)(None, timeout=3600)) == "msg"
    assert len(asked) == 3 and max(asked) <= 0.01
    # the nearest wrong answer, polling once for the whole timeout, asks for 3600 s: where a missed wake-up sleeps
    get_msg, asked = fake_channel(ready_on_call=3)
    with pytest.raises(Empty):
        asyncio.run(get_msg(None, timeout=3600))
    assert asked == [3600]


def test_no_timeout_still_waits_until_a_message_comes():
    get_msg, asked = fake_channel(ready_on_call=4)
    assert asyncio.run(execute_chapters.polled_in_slices(get_msg, 0.01)(None)) == "msg"
    assert asked == [0.01] * 4


def test_the_timeout_is_kept():
    get_msg, asked = fake_channel(ready_on_call=None, wait=True)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(execute_chapters.polled_in_slices(get_msg, 0.02)(None, timeout=0.1))
    waited = time.monotonic() - start
    assert 0.1 <= waited < 0.5, waited
    assert len(asked) >= 2 and all(t <= 0.02 for t in asked)


def test_a_widget_notebook_executes_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)  # restored afterwards
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import ipywidgets as widgets\n"
                                  "_ = widgets.interact(lambda k=2: print('k squared', k * k), k=(0, 4))"),
        nbformat.v4.new_code_cell("print('after the widget')"),
    ])
    path = tmp_path / "widget.ipynb"
    nbformat.write(nb, path)
    assert execute_chapters.main([str(path), "--timeout", "120"]) == 0
    assert AsyncZMQSocketChannel.get_msg.__name__ == "get_msg_in_slices"
    done = nbformat.read(path, as_version=4)
    assert [c.execution_count for c in done.cells] == [1, 2]
    assert any("widget-view" in k for o in done.cells[0].outputs for k in o.get("data", {}))
    assert done.cells[1].outputs[0]["text"] == "after the widget\n"
    assert f"{path}:" in capsys.readouterr().out


def test_notebooks_run_in_parallel_on_a_share_of_the_cores(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    paths = []
    for name, source in (("a", "import os\nprint(os.environ['OMP_NUM_THREADS'])"), ("b", "print('b ran')"),
                         ("c", "raise ValueError('c fails')")):
        paths.append(tmp_path / f"{name}.ipynb")
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)]), paths[-1])
    assert execute_chapters.run_in_parallel(paths[:2], timeout=120, jobs=2) == 0
    share = max(1, execute_chapters.usable_cores() // 2)
    assert nbformat.read(paths[0], as_version=4).cells[0].outputs[0]["text"] == f"{share}\n"
    assert nbformat.read(paths[1], as_version=4).cells[0].outputs[0]["text"] == "b ran\n"
    out = capsys.readouterr().out
    assert f"{paths[0]}:" in out and f"{paths[1]}:" in out
    # a failing notebook fails the run, and says which
    assert execute_chapters.run_in_parallel(paths[1:], timeout=120, jobs=2) == 1
    assert f"failed: {paths[2]}" in capsys.readouterr().out
