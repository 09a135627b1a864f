"""Execute notebooks top to bottom in place, as ``jupyter nbconvert --execute --inplace`` does, printing each one's
seconds: what ``make course`` runs.

    python docs/execute_chapters.py chapters/03_ddpm.ipynb [...] [--timeout 3600]

Why not nbconvert itself: its client waits for a cell's reply with one long poll of the kernel's shell socket
(the whole cell timeout). ZeroMQ signals a socket's file descriptor only on an edge, and that wake-up is sometimes
missed after a widget cell; the reply then sits in the socket while the client sleeps out the timeout. We caught it
once in chapter 05, after its ``interact`` cell: the kernel idle with the cell done, the client's shell socket
reporting a message ready (``zmq.EVENTS`` & ``POLLIN``), and nothing happening for nine minutes until we stopped
it. A fresh poll checks the socket's state before it waits, so this script polls in slices of ``SLICE_S`` seconds
up to the same timeout: a missed wake-up costs at most one slice; outputs and timeouts are those of nbconvert.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from queue import Empty

import nbformat
from jupyter_client.channels import AsyncZMQSocketChannel
from nbconvert.preprocessors import ExecutePreprocessor

SLICE_S = 1.0


def polled_in_slices(get_msg, slice_s: float = SLICE_S):
    """An ``async get_msg(timeout=None)`` that calls ``get_msg`` with timeouts of at most ``slice_s`` seconds until
    a message comes or ``timeout`` has passed (then ``queue.Empty``); ``timeout=None`` waits for ever, as before."""
    async def get_msg_in_slices(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(self, timeout=slice_s if left is None else min(slice_s, left))
            except Empty:
                if left is not None and left <= slice_s:
                    raise
    return get_msg_in_slices


def execute(path: Path, timeout: int = 3600) -> float:
    """Run the notebook at ``path`` in its own folder, write it back with its outputs; the seconds it took."""
    start = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    ExecutePreprocessor(timeout=timeout).preprocess(nb, {"metadata": {"path": str(path.parent)}})
    text = nbformat.writes(nb)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    AsyncZMQSocketChannel.get_msg = polled_in_slices(AsyncZMQSocketChannel.get_msg)
    for path in args.notebooks:
        print(f"== {path}", flush=True)
        print(f"   {path}: {execute(path, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
