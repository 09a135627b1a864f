"""Execute notebooks top to bottom in place, as ``jupyter nbconvert --execute --inplace`` does, printing each one's
seconds: what ``make course`` runs.

    python docs/execute_chapters.py chapters/03_ddpm.ipynb [...] [--timeout 3600] [--jobs 2]

``--jobs N`` runs N notebooks at a time, each kernel with an equal share of the usable cores as threads
(``OMP_NUM_THREADS``, unless set). Much of a chapter runs on one thread anyway, and the ``cpu`` profile's small
convolutions use a second one only in part (one digits-UNet call on 1,000 images: 1.5-1.9x faster on two threads),
so on two cores two chapters on one thread each get through the course faster than one at a time on two threads.

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
import os
import subprocess
import sys
import tempfile
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


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it, else all of them)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_in_parallel(paths: list[Path], timeout: int, jobs: int) -> int:
    """Run each notebook in its own process of this script, ``jobs`` at a time (in the given order), printing each
    one's report when it ends; 0 if all succeeded, else 1 (the running ones finish, no new one starts)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // jobs)))
    waiting, running, failed = list(paths), {}, []
    while waiting or running:
        while waiting and len(running) < jobs:
            path, log = waiting.pop(0), tempfile.TemporaryFile("w+")  # a file, not a pipe: it never fills up
            running[path] = (subprocess.Popen([sys.executable, __file__, str(path), "--timeout", str(timeout)],
                                              env=env, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(0.5)
        for path, (proc, log) in list(running.items()):
            if proc.poll() is not None:
                log.seek(0)
                print(log.read(), end="", flush=True)
                log.close()
                failed += [path] if proc.returncode else []
                del running[path]
        waiting = [] if failed else waiting
    for path in failed:
        print(f"failed: {path}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at a time")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.jobs > 1:
        code = run_in_parallel(args.notebooks, args.timeout, args.jobs)
    else:
        AsyncZMQSocketChannel.get_msg = polled_in_slices(AsyncZMQSocketChannel.get_msg)
        for path in args.notebooks:
            print(f"== {path}", flush=True)
            print(f"   {path}: {execute(path, args.timeout):.0f} s", flush=True)
        code = 0
    if len(args.notebooks) > 1:
        print(f"all {len(args.notebooks)}: {time.perf_counter() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
