"""Issue 15 req 5: a recorded run (`SnapshotHistory`, as ``dash.save`` writes it) replays offline:
``autoglm-lab history FILE.npz`` writes a standalone page with a time slider over the frames."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.cli import main
from autoglm_lab.history import SnapshotHistory
from autoglm_lab.report import build_history_report, thin_indices, write_history_report
from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

STEP_KEYS = ("time_s", "step_latency_s", "alloc_latency_s", "compaction_pause_s", "failures", "compaction_reason")


def _record(frames: int, **bound: int) -> SnapshotHistory:
    """A real run recorded as the dashboard does: a frame every 4 steps, a summary every third one."""
    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="4MiB", max_size="4MiB",
                                      device="cpu"))
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                     requests=synthetic_requests(120, rate_per_s=80.0, seed=1))
    hist = SnapshotHistory(**bound)
    last = 0
    for f in range(frames):
        sim.run(4, progress=False)
        new, last = sim.steps - last, sim.steps
        hist.record(pool.snapshot(), sim.clock, summary=sim.summary() if f % 3 == 0 else None,
                    steps=sim.recent_steps(new, keys=STEP_KEYS))
    return hist


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> tuple[SnapshotHistory, Path]:
    """A history whose bound dropped its oldest frames, saved and loaded back."""
    hist = _record(150, max_bytes=64 << 10, keyframe_every=16)
    assert hist.dropped > 0 and len(hist) > 40
    path = hist.save(tmp_path_factory.mktemp("hist") / "run.npz")
    return SnapshotHistory.load(path), path


def _page(path: Path) -> tuple[str, dict]:
    text = path.read_text(encoding="utf-8")
    data = re.search(r'<script type="application/json" id="replay-data">(.*?)</script>', text, re.S)
    assert data
    return text, json.loads(data.group(1).replace("<\\/", "</"))


def _maps(text: str) -> list[bytes]:
    block = re.search(r'<div id="replay-maps">(.*?)</div>', text, re.S)
    assert block
    return [base64.b64decode(b) for b in re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', block.group(1))]


def test_cli_replays_a_recorded_run_offline(bounded, tmp_path, capsys) -> None:
    hist, path = bounded
    out = tmp_path / "sub" / "replay.html"
    assert main(["history", str(path), "--out", str(out), "--max-frames", "40"]) == 0
    said = capsys.readouterr().out
    recorded = len(hist) + hist.dropped
    assert f"{recorded:,} frames recorded, {hist.dropped:,} dropped" in said and str(out.resolve()) in said
    text, data = _page(out)

    maps = _maps(text)
    assert len(maps) == 40 and all(m.startswith(b"\x89PNG\r\n\x1a\n") for m in maps)  # one PNG per frame shown
    assert len(re.findall(r"<img[^>]*\bhidden\b", text)) == 39                        # one shown at a time
    slider = re.search(r'<input type="range" id="scrub" min="0" max="(\d+)" step="1" value="(\d+)"', text)
    assert slider and int(slider.group(1)) == 39 and int(slider.group(2)) == 39
    assert len(data["t"]) == len(data["time"]) == len(data["v"]) == 40
    assert data["t"][0] == hist.times[0] and data["t"][-1] == hist.times[-1]     # thinning keeps both ends
    assert data["rec"][0] == hist.dropped + 1 and data["rec"][-1] == recorded
    for t in (hist.times[0], hist.times[-1]):
        assert f"t = {t:,.3f} s" in text

    counts = re.search(r'id="frame-counts" data-recorded="(\d+)" data-held="(\d+)" data-dropped="(\d+)" '
                       r'data-shown="(\d+)"', text)
    assert counts and tuple(map(int, counts.groups())) == (recorded, len(hist), hist.dropped, 40)
    assert f"{recorded:,} frames recorded" in text and f"dropped the first {hist.dropped:,}" in text

    # offline: nothing fetched, plotly.js inline once, both figures drawn with the slider's line
    assert not re.search(r"<script[^>]+src=", text)
    assert not re.search(r"""<(?:img|link|iframe)[^>]+(?:src|href)=["']?https?://""", text)
    assert text.count("plotly.js v") == 1 and 4_000_000 < len(text) < 6_000_000  # plotly.js inline, once
    assert text.count("Plotly.newPlot(") == 2 and data["figs"] == ["replay-heatmap", "replay-trace"]
    # the frame's figures in words, with units, for the last frame as loaded
    stats = hist.snapshot(-1).stats
    assert "largest free run" in text and f"{stats.largest_free_run_pages:,} pages" in data["v"][-1]
    assert "time to first token (TTFT), p99" in text and data["v"][-1][-1] == f"{hist.summary(-1)['evictions']:,}"


def test_thinning_keeps_first_and_last() -> None:
    for n, k in ((1, 2), (5, 2), (7, 3), (100, 7), (301, 300), (1000, 300), (300, 300), (10, 50)):
        idx = thin_indices(n, k)
        assert len(idx) == min(n, k) and idx[0] == 0 and idx[-1] == n - 1
        gaps = np.diff(idx)
        assert (gaps >= 1).all() and (gaps.max() - gaps.min() <= 1 if len(gaps) else True)
    for bad in (0, 1, -3, True, 2.5):
        with pytest.raises(ValueError, match="max_frames"):
            thin_indices(10, bad)


def test_a_short_history_shows_every_frame(tmp_path) -> None:
    hist = _record(6)
    out = write_history_report(tmp_path / "r.html", hist, title="six <frames>")
    text, data = _page(out)
    assert len(_maps(text)) == 6 and data["rec"] == [1, 2, 3, 4, 5, 6]
    assert "this page shows all of them" in text and "none was dropped" in text
    assert "<title>six &lt;frames&gt;</title>" in text


def test_frames_without_steps_or_summary() -> None:
    pool = al.PagedPool(al.PoolConfig(page_size=4096, memory_pool_initial_size=64 * 4096, device="cpu"))
    hist = SnapshotHistory()
    blocks = []
    for i in range(5):
        blocks.append(pool.alloc_bytes(3 * 4096))
        if i % 2:
            pool.free(blocks.pop(0))
        hist.record(pool.snapshot(), float(i))
    text = build_history_report(hist)
    data = json.loads(re.search(r'id="replay-data">(.*?)</script>', text, re.S).group(1))
    assert data["figs"] == ["replay-heatmap"] and "The run so far" not in text and len(data["v"][0]) == 7
    with pytest.raises(ValueError, match="empty"):
        build_history_report(SnapshotHistory())


def test_dashboard_save_replays(tmp_path, capsys) -> None:
    from autoglm_lab.widget import Dashboard

    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="4MiB", max_size="4MiB",
                                      device="cpu"))
    sim = ServingSim(pool, ServingConfig(), requests=synthetic_requests(30, rate_per_s=50.0, seed=1))
    dash = Dashboard(pool, sim)
    try:
        dash.run(30, frame_every=5)
        path = dash.save(tmp_path / "run.npz")
        n = len(dash.history)
    finally:
        dash.close()
    assert main(["history", str(path)]) == 0          # default: run.html beside the history
    text, data = _page(tmp_path / "run.html")
    assert n >= 2 and len(_maps(text)) == n and len(data["t"]) == n
    assert "report written to" in capsys.readouterr().out


def _one_line(capsys, args: list[str], status: int, words: str) -> None:
    try:
        got = main(args)
    except SystemExit as exc:  # argparse
        got = int(exc.code or 0)
    captured = capsys.readouterr()
    err = captured.err
    assert got == status, err
    assert len(err.splitlines()) == 1 and err.startswith("autoglm-lab history: error: ") and words in err, err
    assert "Traceback" not in err and captured.out == ""


def test_bad_history_files(bounded, tmp_path, capsys) -> None:
    _, good = bounded
    raw = good.read_bytes()
    flipped = bytearray(raw)
    flipped[len(raw) // 2:len(raw) // 2 + 64] = bytes(64)
    cases = {
        "junk.npz": (b"not a history\n", "is not an .npz archive"),
        "half.npz": (raw[:len(raw) // 2], "is not a history file"),
        "flipped.npz": (bytes(flipped), "is not a history file"),
    }
    for name, (data, _) in cases.items():
        (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    cases["other.npz"] = (b"", "not a history file, missing ['header'")
    (tmp_path / "folder").mkdir()
    cases["folder"] = (b"", "is a folder")
    cases["missing.npz"] = (b"", f"history file '{tmp_path}/missing.npz' does not exist")
    for name, (_, words) in cases.items():
        out = tmp_path / f"{name}.html"
        _one_line(capsys, ["history", str(tmp_path / name), "--out", str(out)], 1, words)
        assert not out.exists()
    _one_line(capsys, ["history", str(good), "--out", str(tmp_path)], 1, "is a directory")
    _one_line(capsys, ["history", str(good), "--out", str(good)], 1, "is the history file itself")


@pytest.mark.parametrize(("value", "words"), [("0", "'0' must be at least 2"), ("1", "'1' must be at least 2"),
                                              ("many", "'many' is not an integer")])
def test_max_frames_refused(bounded, tmp_path, capsys, value, words) -> None:
    _, good = bounded
    _one_line(capsys, ["history", str(good), "--out", str(tmp_path / "r.html"), "--max-frames", value], 2,
              f"argument --max-frames: {words}")
    assert not (tmp_path / "r.html").exists()


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
@pytest.mark.slow
def test_the_slider_replays_in_a_browser(bounded, tmp_path) -> None:
    """The page's own script: the slider, step and play buttons change the frame shown, and the line
    in both figures follows; no request leaves the page."""
    from playwright import sync_api  # a dev dependency; Debian's chromium: scripts/browser-deps.sh

    assert CHROMIUM.exists(), "Debian's chromium is required: scripts/browser-deps.sh installs it"
    hist, _ = bounded
    out = write_history_report(tmp_path / "r.html", hist, max_frames=25)
    _, data = _page(out)
    requests, errors = [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:"))
                       else (requests.append(r.request.url), r.abort()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(out.as_uri())
            page.wait_for_load_state("load")

            def state() -> list:
                return page.evaluate("""() => [+document.getElementById('scrub').value,
                    document.getElementById('frame-time').textContent,
                    document.getElementById('replay-heatmap').layout.shapes[0].x0,
                    document.getElementById('replay-trace').layout.shapes[0].x0,
                    [...document.querySelectorAll('#replay-maps img')].findIndex(i => !i.hidden)]""")

            assert state() == [24, data["time"][24], data["t"][24], data["t"][24], 24]
            page.fill("#scrub", "3")
            page.dispatch_event("#scrub", "input")
            assert state() == [3, data["time"][3], data["t"][3], data["t"][3], 3]
            cells = page.evaluate("() => [...document.querySelectorAll('#frame-stats td')].map(c => c.textContent)")
            assert cells == data["v"][3]
            page.click("#next")
            page.click("#next")
            page.click("#prev")
            assert state()[0] == 4
            page.click("#play")
            page.wait_for_function("() => +document.getElementById('scrub').value >= 7", timeout=10_000)
            page.click("#play")  # pause
            at = state()[0]
            page.wait_for_timeout(500)
            assert state()[0] == at and "play" in page.inner_text("#play")
        finally:
            browser.close()
    assert requests == [] and errors == []
