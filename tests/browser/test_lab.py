"""JupyterLab as ``make lab`` starts it, in a real browser: open chapter 00, run it in a real kernel (smoke
profile), move the noising widget's slider and see its figure change, with no error in the page's console."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from browserkit import ROOT, screenshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, COURSE_PROFILE="smoke", OMP_NUM_THREADS="1",
               COURSE_CACHE_DIR=str(tmp_path_factory.mktemp("cache")))
    # The test runs a chapter but must never save it: autosave off (and no news prompt) in a throw-away
    # settings folder; the chapter's bytes are compared before and after.
    settings = tmp_path_factory.mktemp("settings")
    for plugin, value in (("docmanager-extension/plugin", {"autosave": False}),
                          ("apputils-extension/notification", {"fetchNews": "false"})):
        path = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    args = (f"--no-browser --ServerApp.port={port} --ServerApp.port_retries=0 --IdentityProvider.token={token} "
            f"--LabApp.user_settings_dir={settings} --LabApp.workspaces_dir={tmp_path_factory.mktemp('workspaces')}")
    log = open(tmp_path_factory.mktemp("lab") / "lab.log", "w+")
    proc = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.seek(0)
                pytest.fail(f"`make lab` did not start a server on {url}:\n{log.read()[-3000:]}", pytrace=False)
            time.sleep(1)
    yield url, token
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def _figure(page) -> str:
    """The src of the image the widget's output shows (changes when the figure is redrawn)."""
    return page.locator(".widget-interact .jp-OutputArea-output img, .widget-interact img").first.get_attribute("src")


CHAPTER = ROOT / "chapters" / "00_toolkit.ipynb"


def test_chapter_00_runs_and_its_slider_redraws(watched, lab):
    url, token = lab
    stored = hashlib.sha256(CHAPTER.read_bytes()).hexdigest()
    page, watch = watched(1400, 900)
    page.goto(f"{url}/lab/tree/chapters/00_toolkit.ipynb?token={token}", wait_until="domcontentloaded")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    select = page.locator(".jp-Dialog button", has_text="Select")  # JupyterLab may ask which kernel to start
    started = page.locator(".jp-InputPrompt", has_text="[*]")
    for _ in range(4):  # Run All, and again if JupyterLab was still choosing a kernel and dropped the request
        page.wait_for_timeout(3000)
        if select.count() and select.first.is_visible():
            select.first.click()
            page.wait_for_timeout(3000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            started.first.wait_for(timeout=20_000)
            break
        except PlaywrightTimeout:
            continue
    slider = page.locator(".widget-interact .widget-slider").first
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                         has_text="Traceback")
    deadline = time.time() + 300
    while not slider.is_visible():
        if select.count() and select.first.is_visible():  # "Run All" without a kernel asks which one
            select.first.click()
        if error.count():
            screenshot(page, "lab-chapter-00-error")
            pytest.fail(f"JupyterLab chapter 00: a cell raised before the widget: {error.first.inner_text()[:800]}")
        if time.time() > deadline:
            screenshot(page, "lab-chapter-00-timeout")
            pytest.fail("JupyterLab chapter 00: the widget did not appear within 300 s of Run All "
                        "(screenshot build/screenshots/lab-chapter-00-timeout.png)")
        page.wait_for_timeout(1000)
    page.wait_for_selector(".widget-interact img", timeout=120_000)
    slider.scroll_into_view_if_needed()
    before = _figure(page)
    readout = page.locator(".widget-interact .widget-slider .widget-readout").first
    value_before = readout.inner_text()
    handle = page.locator(".widget-interact .widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(20):
        handle.press("ArrowRight")
    page.wait_for_function("prev => { const i = document.querySelector('.widget-interact img'); "
                           "return i && i.getAttribute('src') !== prev; }", arg=before, timeout=60_000)
    screenshot(page, "lab-chapter-00-widget")
    assert readout.inner_text() != value_before, "the slider's readout did not move"
    assert _figure(page) != before, "the widget's figure did not change"
    errors = [e for e in watch.errors]
    assert not errors, f"JupyterLab chapter 00: console errors {errors[:5]}"
    outputs = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    tracebacks = [o for o in outputs if "Traceback" in o or "Error" in o]
    assert not tracebacks, f"JupyterLab chapter 00: a cell raised: {tracebacks[0][:500]}"
    page.close()
    assert hashlib.sha256(CHAPTER.read_bytes()).hexdigest() == stored, "the lab test changed the stored chapter"
