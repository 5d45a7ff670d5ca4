"""The real-browser end-to-end test: JupyterLab on localhost, Debian's Chromium driven by Playwright.

It runs a notebook that shows a Dashboard on a small CPU pool, reads the page map's pixels back and
compares them with the pool's snapshot taken in the same kernel (through a second kernel client),
presses "Compact now" and checks the page map changed exactly as the pool did (and the charts did
not move), moves a slider and checks the pool's config changed, and saves a screenshot to
artifacts/. A second dashboard replays a small trace: its status shows the progress and
"finished" at the end, the heatmap stops, and Reset brings every counter back to zero. At 1,200 px
with the side bar open nothing is cut off (a second screenshot), and the browser console holds no
error or warning from our code.
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

SIM_CELL = """\
from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

pool2 = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="4MiB", max_size="4MiB",
                                   device="cpu"))
sim2 = ServingSim(pool2, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                  requests=synthetic_requests(60, rate_per_s=50.0, seed=1))
dash2 = Dashboard(pool2, sim2, fps=20)
dash2"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _notebook(path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [],
                     "source": src.splitlines(keepends=True)} for cid, src in (("setup", SETUP_CELL),
                                                                                ("sim", SIM_CELL))],
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
    return page.locator("canvas.agl-canvas").first.evaluate("c => ({...c.dataset})")


STATS_ROWS = """(panel) => Object.fromEntries([...panel.querySelectorAll('tr')].map(
  r => [r.cells[0].textContent.trim(), r.cells[1].textContent.trim()]))"""

# elements of the dashboards whose content is wider than their box (cut off, or scrolled)
OVERFLOWING = """() => [...document.querySelectorAll(
  '.jp-OutputArea-output, .jp-OutputArea-output .widget-box, .jp-OutputArea-output .agl-stats')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => `${e.className.slice(-40)} ${e.scrollWidth}>${e.clientWidth}: ${e.innerText.slice(0, 40)}`)"""

# parts of a dashboard whose right edge lies beyond its output area's
PAST_THE_EDGE = """(out) => { const right = out.getBoundingClientRect().right;
  return [...out.querySelectorAll('.agl-stats, canvas, .widget-button, .widget-slider, .widget-dropdown')]
    .filter(e => e.getBoundingClientRect().right > right + 1).map(e => e.className || e.tagName); }"""


def _ours(msg: Any) -> bool:
    """A console message from our code: the views (blob: modules anywidget loads) or about them."""
    text, url = msg.text, (msg.location or {}).get("url", "")
    return url.startswith("blob:") or any(k in text for k in ("anywidget", "autoglm", "agl-", "ResizeObserver"))


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
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text[:300]}")
                if m.type in ("error", "warning") and _ours(m) else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}") if "blob:" in (e.stack or "") else None)
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
            page.wait_for_function("() => document.querySelectorAll('canvas.agl-canvas').length === 2",
                                   timeout=120_000)
            kernel = Kernel(lab)
            out = page.locator(".jp-OutputArea-output").nth(0)   # the plain pool's dashboard
            out2 = page.locator(".jp-OutputArea-output").nth(1)  # the simulator's
            heat_top = page.evaluate("() => document.querySelector('.agl-heatmap canvas').getBoundingClientRect().top")

            # 1. the canvas has drawn the pool: every page's pixel shows its state's colour
            before = kernel.eval(STATE_EXPR)
            attrs = _canvas_attrs(page)
            assert int(float(attrs["seq"])) == before["seq"]
            assert int(attrs["checksum"]) == before["checksum"]
            pixels = out.locator("canvas.agl-canvas").evaluate(READ_PIXELS)
            assert _states_from_pixels(pixels, list(PALETTE)) == before["states"]
            assert before["ext"] > 0 and 0 in before["states"] and 1 in before["states"]
            assert page.evaluate(OVERFLOWING) == []  # nothing cut off or scrolled at 1,500 px either

            # 2. "Compact now": the page map changes exactly as the pool did
            out.get_by_role("button", name="Compact now").click()
            page.wait_for_function(
                f"() => +document.querySelector('canvas.agl-canvas').dataset.seq > {before['seq']}")
            after = kernel.eval(STATE_EXPR)
            assert after["compactions"] == before["compactions"] + 1 and after["ext"] == 0.0
            page.wait_for_function(
                f"() => +document.querySelector('canvas.agl-canvas').dataset.seq === {after['seq']}")
            attrs = _canvas_attrs(page)
            assert int(attrs["checksum"]) == after["checksum"]
            shown = _states_from_pixels(out.locator("canvas.agl-canvas").evaluate(READ_PIXELS), list(PALETTE))
            assert shown == after["states"] and shown != before["states"]
            free = [i for i, s in enumerate(shown) if s == 0]
            assert free == list(range(free[0], 256))  # one free run at the top: compacted

            # 3. move a slider: the pool's config changes
            trigger = kernel.eval("pool.config.free_ratio_trigger")
            handle = out.locator(".widget-slider", has_text="free-ratio trigger").locator(".noUi-handle")
            handle.focus()
            handle.press("ArrowRight")
            handle.press("ArrowRight")
            want = round(trigger + 0.10, 6)  # two steps of 0.05; each key press is its own message
            deadline = time.monotonic() + 20
            while (changed := kernel.eval("pool.config.free_ratio_trigger")) != pytest.approx(want):
                assert time.monotonic() < deadline, f"the slider moves never reached the pool ({changed} != {want})"
                time.sleep(0.2)
            assert kernel.eval("dash.controls['free_ratio_trigger'].value") == changed
            # a control with no effect in this mode is greyed out and says why
            threshold = out.locator(".widget-slider", has_text="defrag threshold")
            assert threshold.locator("[disabled]").count() > 0
            assert "no effect now" in (threshold.locator(".widget-label").first.get_attribute("title") or "")

            # 4. hover shows the block under the pointer
            canvas = out.locator("canvas.agl-canvas")
            box = canvas.bounding_box()
            assert box is not None
            cell = int(attrs["cell"])
            canvas.hover(position={"x": cell * 0.5 * box["width"] / int(page.evaluate(
                "document.querySelector('canvas.agl-canvas').width")), "y": cell * 0.5 * box["height"] / int(
                page.evaluate("document.querySelector('canvas.agl-canvas').height"))})
            page.wait_for_function("() => document.querySelector('.agl-tip').style.display === 'block'")
            tip = page.locator(".agl-tip").first.inner_text()
            assert "page 0" in tip and "block" in tip and " B)" in tip and "age" in tip
            # a click selects the block under the pointer; the stats panel shows it
            canvas.click(position={"x": box["width"] * 0.5 / int(attrs["cols"]), "y": box["height"] * 0.5 / 8})
            out.locator(".agl-stats tr.sel").wait_for()
            selection = kernel.eval("dash.page_map.selection")
            pool_panel = out.locator(".agl-stats").first
            assert selection[1] == 0 and f"selected block {selection[0]}" in pool_panel.inner_text()
            # rows that appeared (the last compaction, the selection) moved nothing below them
            assert page.evaluate(
                "() => document.querySelector('.agl-heatmap canvas').getBoundingClientRect().top") == heat_top

            # 5. live frames while the pool changes, so the heatmap and traces have history; the screenshot
            kernel.eval("[pool.free(b) for b in blocks[1::2][2:40:3]] and None")
            kernel.eval("dash.play(fps=20) or None")
            time.sleep(0.5)
            kernel.eval("[(pool.alloc_bytes(4096 * 3, tag='late'), __import__('time').sleep(0.12)) "
                        "for _ in range(14)] and None")  # one change at a time: a heatmap column each
            time.sleep(0.5)
            play = out.get_by_role("button", name="Pause")  # playing: the button pauses, its icon drawn
            assert play.locator("i").evaluate("i => i.getBoundingClientRect().width") > 4
            out.locator(".widget-hbox").first.screenshot(path=str(ARTIFACTS / "dashboard_e2e_playing_bar.png"))
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
            # the heatmap and the trace show one time window
            windows = page.evaluate("() => [...document.querySelectorAll('.agl-heatmap canvas, .agl-trace canvas')]"
                                    ".slice(0, 2).map(c => [c.dataset.t0, c.dataset.t1])")
            assert windows[0] == windows[1]
            # markers name their trigger on hover: the trace's compaction line, the heatmap's marked column
            t0, t1 = (float(v) for v in windows[0])
            hovers = {".agl-trace": (kernel.eval("float(dash.trace._window['event_time_s'][0])"), 62, 14, 0.0),
                      ".agl-heatmap": (kernel.eval(
                          "[float(t) for t, m in zip(dash.heatmap._ring_time[dash.heatmap._order()], "
                          "dash.heatmap._ring_marks[dash.heatmap._order()]) if m & 1][0]"), 74, 64, 1.0)}
            for view, (when, left, right, nudge) in hovers.items():
                chart = out.locator(f"{view} canvas")
                size = chart.bounding_box()
                assert size is not None
                x = left + (when - t0) / (t1 - t0) * (size["width"] - left - right) + nudge
                chart.hover(position={"x": x, "y": size["height"] / 2})
                tip = out.locator(f"{view} .agl-charttip")
                tip.wait_for(state="visible")
                assert "compaction: manual (Compact now)" in tip.inner_text()
            page.mouse.move(0, 0)
            shot = ARTIFACTS / "dashboard_e2e.png"
            out.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000

            # 6. a trace replayed to its end: progress, then "finished"; nothing moves after it
            status = out2.locator(".agl-status")
            assert status.get_attribute("data-state") == "paused" and "0 / 60 requests" in status.inner_text()
            out2.get_by_role("button", name="Play").click()
            page.wait_for_function("(el) => el.querySelector('.agl-status').dataset.state === 'finished'",
                                   arg=out2.element_handle(), timeout=60_000)
            assert "60 / 60 requests" in status.inner_text()
            assert kernel.eval("[dash2.finished, dash2.playing, dash2.controls['play'].value]") == [True, False, False]
            heat2 = out2.locator(".agl-heatmap canvas")
            columns = heat2.get_attribute("data-columns")
            time.sleep(1.0)
            assert heat2.get_attribute("data-columns") == columns  # the heatmap stopped with the run
            stats2 = out2.locator(".agl-stats").first  # the pool's panel (the serving panel is below it)
            shown = stats2.evaluate(STATS_ROWS)
            books = kernel.eval("(lambda s: [s.failed_allocations, s.compactions])(dash2.pool.stats())")
            assert books[0] > 0 and books[1] > 0
            assert shown["failed allocations"] == f"{books[0]:,}"
            serving = out2.locator(".agl-stats").nth(1).evaluate(STATS_ROWS)
            done = kernel.eval("dash2.sim.summary()['requests_done']")
            assert serving.get("done · rejected", "").startswith(f"{done:,} of 60"), serving
            out2.screenshot(path=str(ARTIFACTS / "dashboard_e2e_finished.png"))

            # 6b. history: scrub back to frame 1, the charts redraw as they were; Back to live returns
            frames = kernel.eval("len(dash2.history)")
            assert frames >= 3 and heat2.get_attribute("data-columns") == columns
            kernel.eval("dash2.show_frame(1) or dash2.scrubbing")
            page.wait_for_function("(el) => el.querySelector('.agl-heatmap canvas').dataset.columns === '2'",
                                   arg=out2.element_handle())
            assert "(scrubbing)" in out2.inner_text()
            out2.screenshot(path=str(ARTIFACTS / "dashboard_e2e_scrubbed.png"))
            out2.get_by_role("button", name="Back to live").click()
            page.wait_for_function("(el) => el.querySelector('.agl-heatmap canvas').dataset.columns !== '2'",
                                   arg=out2.element_handle())
            assert kernel.eval("dash2.scrubbing") is False
            assert heat2.get_attribute("data-columns") == columns  # the present again, column for column

            # 7. Reset: a fresh run, every counter back to zero
            out2.get_by_role("button", name="Reset").click()
            page.wait_for_function("(el) => el.querySelector('.agl-status').innerText.includes('0 / 60 requests')",
                                   arg=out2.element_handle())
            page.wait_for_function("(el) => el.querySelector('.agl-stats').innerText.includes('pages moved')"
                                   " && [...el.querySelectorAll('.agl-stats tr')].some(r => r.cells[0].textContent"
                                   " === 'failed allocations' && r.cells[1].textContent === '0')",
                                   arg=out2.element_handle())
            shown = stats2.evaluate(STATS_ROWS)
            assert shown["failed allocations"] == "0" and shown["compactions"] == "0"
            assert shown["bytes moved"] == "0 B" and shown["pages moved"] == "0"
            assert shown["pause (total)"] == "0.00 ms"
            assert status.get_attribute("data-state") == "paused"
            assert kernel.eval("(lambda s: [s.failed_allocations, s.compactions, s.compaction_pages_moved])"
                               "(dash2.pool.stats())") == [0, 0, 0]
            assert out2.locator(".agl-heatmap canvas").get_attribute("data-columns") == "1"

            # 8. 1,200 px with the side bar open: nothing cut off, no scrollbars
            page.set_viewport_size({"width": 1200, "height": 1900})
            page.evaluate("() => { window.jupyterapp.shell.expandLeft(); }")
            time.sleep(1.5)  # the side bar's animation and the views' relayout
            assert page.evaluate("() => !window.jupyterapp.shell.leftCollapsed")
            assert page.evaluate(OVERFLOWING) == []
            for area in (out, out2):
                assert area.evaluate(PAST_THE_EDGE) == []
            out.evaluate("o => o.scrollIntoView()")
            page.screenshot(path=str(ARTIFACTS / "dashboard_e2e_1200.png"))
            assert console == [], console
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "dashboard_e2e_failure.png"))
            raise
        finally:
            if kernel is not None:
                kernel.close()
            browser.close()
