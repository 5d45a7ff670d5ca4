"""The quickstart as a Voila app (the README's second Binder link), in Debian's Chromium.

Voila executes ``notebooks/01_quickstart.ipynb`` top to bottom with no JupyterLab around it: the
dashboard must render from the bundled front end (no CDN), draw the real 64 MiB demo pool, and keep
drawing new frames from the live loop that ``dash.play()`` starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .test_dashboard_e2e import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, _free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]


def _wait_http(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/voila/static/", timeout=2):
                return
        except OSError as err:
            if getattr(err, "code", None):  # an HTTP error: the server is up
                return
            time.sleep(0.5)
    raise TimeoutError(f"voila did not answer at {url} within {timeout_s} s")


def test_quickstart_runs_as_a_voila_app(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    voila = shutil.which("voila", path=str(Path(sys.executable).parent))
    assert voila, "voila is a test dependency (pyproject's test extra)"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("AUTOGLM_LAB_HEADLESS", None)  # live: dash.play() runs the loop
    log = (tmp_path / "voila.log").open("w")
    proc = subprocess.Popen([voila, "notebooks/01_quickstart.ipynb", "--no-browser", f"--port={port}",
                             "--Voila.ip=127.0.0.1", "--show_tracebacks=True"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(url, proc, 60)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)  # a fresh profile
            page = browser.new_page(viewport={"width": 1320, "height": 1000})
            page.goto(url, timeout=120_000)  # voila started on one notebook serves it at the root
            canvas = page.locator("canvas.agl-canvas").first
            canvas.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => { const c = document.querySelector('canvas.agl-canvas');"
                " return c && Number(c.dataset.numPages) > 0; }", timeout=60_000)
            first = canvas.evaluate("c => ({...c.dataset})")
            assert int(first["numPages"]) == 1024  # the demo: 64 MiB of 64 KiB pages
            # the live loop keeps sending frames of a changing pool
            page.wait_for_function(
                f"() => Number(document.querySelector('canvas.agl-canvas').dataset.seq) > {int(first['seq'])}",
                timeout=60_000)
            later = canvas.evaluate("c => ({...c.dataset})")
            assert int(later["frameId"]) > int(first["frameId"])
            used = canvas.evaluate(
                "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " const seen = new Set();"
                " for (let i = 0; i < d.length; i += 4) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2]);"
                " return seen.size; }")
            assert used >= 3  # background, free pages and used pages at least
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "quickstart_voila.png"))
            browser.close()
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
