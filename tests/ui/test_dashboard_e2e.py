"""The real-browser end-to-end test: JupyterLab on localhost, Debian's Chromium driven by Playwright.

It runs a notebook that shows a Dashboard on a small CPU pool, reads the page map's pixels back and
compares them with the pool's snapshot taken in the same kernel (through a second kernel client),
presses "Compact now" and checks the page map changed exactly as the pool did, moves a slider and
checks the pool's config changed, and saves a screenshot to artifacts/.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]

SETUP_CELL = """\
import autoglm_lab as al
from autoglm_lab.widget import Dashboard

pool = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="1MiB", max_size="1MiB",
                                  device="cpu", fit="first"))
blocks = [pool.alloc_bytes(4096 * (1 + i % 3) - 100 * (i % 2), tag=f"seq-{i % 5}") for i in range(110)]
for b in blocks[::2]:
    pool.free(b)
dash = Dashboard(pool)
dash"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook(path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "setup", "metadata": {}, "outputs": [],
                     "source": SETUP_CELL.splitlines(keepends=True)}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb), encoding="utf-8")


class Lab:
    def __init__(self, url: str, token: str, runtime: Path) -> None:
        self.url, self.token, self.runtime = url, token, runtime

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as r:
            return json.loads(r.read())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with jupyter_lab(tmp_path) as server:
        yield server


@contextlib.contextmanager
def jupyter_lab(tmp_path: Path) -> Iterator[Lab]:
    """JupyterLab on a free localhost port with a token, a temp root holding the notebook; always ended."""
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "dashboard.ipynb")
    runtime = tmp_path / "runtime"
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"), "PYTHONUNBUFFERED": "1"}
    # no "get notified about Jupyter news?" toast over the dashboard in the screenshot
    labconfig = tmp_path / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root", f"--IdentityProvider.token={token}", "--LabApp.extension_manager=readonly",
         f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, runtime)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                server.api("/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()) from None
                time.sleep(0.5)
        yield server
    finally:
        # always end the server and its kernels (the whole process group we started)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        log.close()


class Kernel:
    """A second client of the notebook's kernel: evaluates Python there and returns JSON."""

    def __init__(self, lab: Lab) -> None:
        from jupyter_client import BlockingKernelClient

        sessions = lab.api("/api/sessions")
        assert len(sessions) == 1, sessions
        kid = sessions[0]["kernel"]["id"]
        self.client = BlockingKernelClient(connection_file=str(lab.runtime / f"kernel-{kid}.json"))
        self.client.load_connection_file()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)

    def eval(self, expr: str) -> Any:
        out: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("kernel error: " + "\n".join(msg["content"]["traceback"]))

        code = f"import json as _j\nprint('@@' + _j.dumps({expr}))"
        reply = self.client.execute_interactive(code, output_hook=hook, timeout=60, store_history=False)
        assert reply["content"]["status"] == "ok", reply["content"]
        text = "".join(out)
        return json.loads(text[text.index("@@") + 2:])

    def close(self) -> None:
        self.client.stop_channels()


STATE_EXPR = ("(lambda s: {'seq': s.seq, 'states': s.page_state.tolist(), "
              "'checksum': __import__('autoglm_lab.widget', fromlist=['x']).page_checksum(s.page_state), "
              "'compactions': s.stats.compactions, 'ext': s.stats.external_fragmentation})(pool.snapshot())")

READ_PIXELS = """(canvas) => {
  const cell = +canvas.dataset.cell, cols = +canvas.dataset.cols, n = +canvas.dataset.numPages;
  const ctx = canvas.getContext('2d');
  const img = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const out = [];
  for (let p = 0; p < n; p++) {
    const x = (p % cols) * cell + (cell >> 2), y = Math.floor(p / cols) * cell + (cell >> 2);
    const o = 4 * (y * canvas.width + x);
    out.push([img[o], img[o + 1], img[o + 2]]);
  }
  return out;
}"""


KERNEL_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def _states_from_pixels(pixels: list[list[int]], palette: list[str]) -> list[int]:
    """The page state whose palette colour each pixel shows (exact match required)."""
    colours = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)): idx for idx, c in enumerate(palette[:4])}
    return [colours.get(tuple(px), -1) for px in pixels]


def _canvas_attrs(page: Any) -> dict[str, str]:
    return page.locator("canvas.agl-canvas").evaluate("c => ({...c.dataset})")


def test_dashboard_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    from autoglm_lab.widget import PALETTE

    ARTIFACTS.mkdir(exist_ok=True)
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: scripts/browser-deps.sh installs it"
    with sync_playwright() as pw:
        profile = lab.runtime.parent / "chromium-profile"
        browser = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1250})
        kernel = None
        page = browser.pages[0] if browser.pages else browser.new_page()
        try:
            page.set_default_timeout(60_000)
            page.goto(f"{lab.url}/lab/tree/dashboard.ipynb?token={lab.token}&reset")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_function(KERNEL_READY, timeout=90_000)
            page.evaluate("() => { window.jupyterapp.shell.collapseLeft(); }")  # room for the dashboard
            # do not await the command's promise: it settles only when every cell has run
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            page.wait_for_function(
                "() => { const c = document.querySelector('canvas.agl-canvas');"
                " return c && +c.dataset.numPages === 256 && c.dataset.checksum !== ''; }", timeout=120_000)
            kernel = Kernel(lab)

            # 1. the canvas has drawn the pool: every page's pixel shows its state's colour
            before = kernel.eval(STATE_EXPR)
            attrs = _canvas_attrs(page)
            assert int(float(attrs["seq"])) == before["seq"]
            assert int(attrs["checksum"]) == before["checksum"]
            pixels = page.locator("canvas.agl-canvas").evaluate(READ_PIXELS)
            assert _states_from_pixels(pixels, list(PALETTE)) == before["states"]
            assert before["ext"] > 0 and 0 in before["states"] and 1 in before["states"]

            # 2. "Compact now": the page map changes exactly as the pool did
            page.get_by_role("button", name="Compact now").click()
            page.wait_for_function(
                f"() => +document.querySelector('canvas.agl-canvas').dataset.seq > {before['seq']}")
            after = kernel.eval(STATE_EXPR)
            assert after["compactions"] == before["compactions"] + 1 and after["ext"] == 0.0
            page.wait_for_function(
                f"() => +document.querySelector('canvas.agl-canvas').dataset.seq === {after['seq']}")
            attrs = _canvas_attrs(page)
            assert int(attrs["checksum"]) == after["checksum"]
            shown = _states_from_pixels(page.locator("canvas.agl-canvas").evaluate(READ_PIXELS), list(PALETTE))
            assert shown == after["states"] and shown != before["states"]
            free = [i for i, s in enumerate(shown) if s == 0]
            assert free == list(range(free[0], 256))  # one free run at the top: compacted

            # 3. move a slider: the pool's config changes
            trigger = kernel.eval("pool.config.free_ratio_trigger")
            handle = page.locator(".widget-slider", has_text="free-ratio trigger").locator(".noUi-handle")
            handle.focus()
            handle.press("ArrowRight")
            handle.press("ArrowRight")
            want = round(trigger + 0.10, 6)  # two steps of 0.05; each key press is its own message
            deadline = time.monotonic() + 20
            while (changed := kernel.eval("pool.config.free_ratio_trigger")) != pytest.approx(want):
                assert time.monotonic() < deadline, f"the slider moves never reached the pool ({changed} != {want})"
                time.sleep(0.2)
            assert kernel.eval("dash.controls['free_ratio_trigger'].value") == changed

            # 4. hover shows the block under the pointer
            canvas = page.locator("canvas.agl-canvas")
            box = canvas.bounding_box()
            assert box is not None
            cell = int(attrs["cell"])
            canvas.hover(position={"x": cell * 0.5 * box["width"] / int(page.evaluate(
                "document.querySelector('canvas.agl-canvas').width")), "y": cell * 0.5 * box["height"] / int(
                page.evaluate("document.querySelector('canvas.agl-canvas').height"))})
            page.wait_for_function("() => document.querySelector('.agl-tip').style.display === 'block'")
            assert "page 0" in page.locator(".agl-tip").inner_text()
            # a click selects the block under the pointer; the stats panel shows it
            canvas.click(position={"x": box["width"] * 0.5 / int(attrs["cols"]), "y": box["height"] * 0.5 / 8})
            page.wait_for_selector(".agl-stats tr.sel")
            selection = kernel.eval("dash.page_map.selection")
            assert selection[1] == 0 and f"selected block {selection[0]}" in page.locator(".agl-stats").inner_text()

            # 5. a few live frames so the heatmap and traces have history, then the screenshot
            kernel.eval("[pool.free(b) for b in blocks[1::2][2:40:3]] and None")
            kernel.eval("dash.play(fps=20) or None")
            time.sleep(1.5)
            kernel.eval("[pool.alloc_bytes(4096 * 3, tag='late') for _ in range(6)] and None")
            time.sleep(1.0)
            kernel.eval("dash.stop() or None")
            assert kernel.eval("dash.loop.frames") >= 10
            page.wait_for_function("() => +document.querySelector('.agl-heatmap canvas').dataset.columns > 10")
            # the trace window, built from a full frame and then append frames, is the kernel's
            want = kernel.eval("(lambda w: [int(w['time_s'].size), int(w['event_time_s'].size), "
                               "float(w['time_s'][-1])])(dash.trace._window)")
            assert want[0] > 0
            page.wait_for_function(
                "([n, m, t]) => { const c = document.querySelector('.agl-trace canvas');"
                " return +c.dataset.points === n && +c.dataset.events === m && +c.dataset.lastTime === t; }",
                arg=want, timeout=20_000)
            page.mouse.move(0, 0)
            shot = ARTIFACTS / "dashboard_e2e.png"
            page.locator(".jp-OutputArea-output").first.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "dashboard_e2e_failure.png"))
            raise
        finally:
            if kernel is not None:
                kernel.close()
            browser.close()
