"""Dashboard: controls reach the pool, refused messages leave it unchanged, buttons, the live loop."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.widget import Dashboard, decode_page_frame, palette_indices

from .conftest import Outbox


def fragmented_pool() -> tuple[al.PagedPool, list[al.Block]]:
    pool = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="512KiB", max_size="1MiB",
                                      device="cpu"))
    blocks = [pool.alloc_bytes(4096 * (1 + i % 3), tag=f"t{i % 4}") for i in range(40)]
    for b in blocks[::2]:
        pool.free(b)
    return pool, blocks[1::2]


def tiny_sim() -> tuple[al.PagedPool, object]:
    from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="4MiB", max_size="4MiB",
                                      device="cpu"))
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                     requests=synthetic_requests(60, rate_per_s=50.0, seed=1))
    return pool, sim


@pytest.fixture
def dash() -> Dashboard:
    pool, _ = fragmented_pool()
    d = Dashboard(pool)
    yield d
    d.close()


def test_control_changes_reach_the_pool(dash: Dashboard) -> None:
    c = dash.controls
    c["free_ratio_trigger"].set_state({"value": 0.35})   # as a slider move arrives from the front end
    c["max_consecutive_failures"].set_state({"value": 7})
    c["fit"].set_state({"index": c["fit"].options.index("first")})
    c["compaction"].set_state({"index": list(c["compaction"].options).index("eager")})
    budget = c["compaction_budget_bytes"]
    budget.set_state({"index": 2})
    cfg = dash.pool.config
    assert (cfg.free_ratio_trigger, cfg.max_consecutive_failures) == (0.35, 7)
    assert (cfg.fit, cfg.compaction) == ("first", "eager")
    assert cfg.compaction_budget_bytes == budget.options[2][1] == 4 * 4096
    assert dash.set("fragmentation_threshold_factor", 0.15)
    assert dash.pool.config.fragmentation_threshold_factor == 0.15


@pytest.mark.parametrize(("name", "state"), [
    ("free_ratio_trigger", {"value": 1.5}),        # out of range (a plain slider would clamp it)
    ("free_ratio_trigger", {"value": "0.5"}),      # wrong type
    ("free_ratio_trigger", {"value": True}),
    ("free_ratio_trigger", {"description": "x"}),  # not a field the front end may set
    ("max_consecutive_failures", {"value": 2.5}),
    ("max_consecutive_failures", {"value": 0}),
    ("fit", {"index": 7}),
    ("fit", {"index": None}),
    ("compaction_strategy", {"index": -1}),
    ("request_rate_scale", {"value": 100.0}),
])
def test_refused_front_end_values_leave_the_pool_unchanged(dash: Dashboard, caplog: pytest.LogCaptureFixture,
                                                           name: str, state: dict) -> None:
    before = (dash.pool.config, dash.pool.seq, dash.controls[name].value)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        dash.controls[name].set_state(state)
    assert "refused" in caplog.text
    assert (dash.pool.config, dash.pool.seq, dash.controls[name].value) == before


def test_kernel_side_set_refuses_what_the_front_end_could_not_send(dash: Dashboard,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    before = dash.pool.config
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        assert not dash.set("free_ratio_trigger", 1.5)
        assert not dash.set("compaction", "sometimes")
        assert not dash.set("no_such_setting", 1)
        assert not dash.set("kv_layout", "paged")  # a plain pool has no simulator
    assert dash.pool.config == before
    assert caplog.text.count("refused") + caplog.text.count("unknown setting") >= 4


def test_values_that_pass_the_control_go_through_pool_configure(dash: Dashboard, monkeypatch: pytest.MonkeyPatch,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    calls = []
    real = dash.pool.configure

    def configure(**changes: object) -> object:
        calls.append(changes)
        if changes.get("free_ratio_trigger") == 0.25:
            raise ValueError("refused by PoolConfig validation")
        return real(**changes)

    monkeypatch.setattr(dash.pool, "configure", configure)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        dash.controls["free_ratio_trigger"].set_state({"value": 0.25})
    assert calls == [{"free_ratio_trigger": 0.25}]
    assert "refused by PoolConfig validation" in caplog.text
    assert dash.controls["free_ratio_trigger"].value == dash.pool.config.free_ratio_trigger  # snapped back


def test_buttons_take_only_clicks(dash: Dashboard, caplog: pytest.LogCaptureFixture) -> None:
    compactions = dash.pool.stats().compactions
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        dash.controls["compact"]._handle_button_msg(None, {"event": "dblclick"}, [])
        dash.controls["compact"]._handle_button_msg(None, {"event": "click", "x": 1}, [])
    assert caplog.text.count("refused") == 2
    assert dash.pool.stats().compactions == compactions
    dash.controls["compact"]._handle_button_msg(None, {"event": "click"}, [])
    assert dash.pool.stats().compactions == compactions + 1


def test_compact_now_shows_the_compacted_pool_in_the_next_frame(outbox: Outbox) -> None:
    pool, _ = fragmented_pool()
    dash = Dashboard(pool)
    dash.page_map.send = outbox
    dash.page_map._on_custom(dash.page_map, {"action": "request_full"}, [])
    _, screen = decode_page_frame(outbox.of("frame")[-1][1][0])
    before = pool.snapshot()
    assert screen.tolist() == before.page_state.tolist()
    report = dash.compact_now()
    assert report is not None and report.pages_moved > 0
    after = pool.snapshot()
    assert after.stats.external_fragmentation == 0.0 < before.stats.external_fragmentation
    fields, screen = decode_page_frame(outbox.of("frame")[-1][1][0], screen)
    assert fields["seq"] == after.seq
    assert screen.tolist() == palette_indices(after, "state").tolist()
    assert not np.array_equal(screen, before.page_state)
    assert "last compact now" in dash.stats.value
    dash.close()


def test_loop_starts_stops_and_other_work_runs_meanwhile(dash: Dashboard) -> None:
    dash.set("fps", 25)
    dash.play()
    assert dash.playing and dash.controls["play"].value
    t_end = time.perf_counter() + 0.6
    spins = 0
    while time.perf_counter() < t_end:  # "another cell": the main thread keeps computing
        spins += 1
    time.sleep(0.3)
    frames = dash.loop.frames
    dash.stop()
    assert not dash.playing and not dash.controls["play"].value
    assert frames >= 5 and spins > 1000
    assert dash.loop.error is None
    assert not any(t.name == "autoglm-dashboard" for t in threading.enumerate())
    time.sleep(0.15)
    assert dash.loop.frames == frames  # stopped means stopped
    dash.controls["play"].set_state({"value": True})  # the Play button
    time.sleep(0.3)
    assert dash.playing
    dash.close()
    assert not dash.playing


def test_reset_clears_history(dash: Dashboard) -> None:
    for _ in range(3):
        dash.pool.alloc_bytes(4096)
        dash.run(1)
    dash.run(3)  # nothing changes: no more columns
    assert dash.heatmap.columns().shape[0] == 4
    dash.reset()
    assert dash.heatmap.columns().shape[0] == 1


def test_headless_run_with_a_simulator() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    seen = []
    dash.on_frame(lambda snap, info: seen.append(info.seq))
    summary = dash.run(20, frame_every=5)
    assert sim.steps == 20 and len(seen) == 4
    assert seen[-1] == pool.snapshot().seq
    assert "cache_hit_rate" in summary and "prefix hits (blocks)" in dash.serving.value
    dash.set("cache_reuse_strategy", "ttl")
    dash.set("kv_layout", "paged")
    dash.set("request_rate_scale", 2.0)
    scfg = sim.config
    assert (scfg.cache_reuse_strategy, scfg.kv_layout, scfg.request_rate_scale) == ("ttl", "paged", 2.0)
    dash.reset()  # a fresh run: a new simulator (and pool) with the config as set
    assert dash.sim is not sim and dash.sim.steps == 0 and dash.sim.config == scfg and dash.pool is not pool
    dash.close()


def test_page_and_pool_size_rebuild_pool_and_simulator() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    dash.run(5)
    assert dash.set("page_size", "64KiB") and dash.set("memory_pool_initial_size", "16MiB")
    assert dash.pool is pool  # pending until applied
    dash.controls["apply"]._handle_button_msg(None, {"event": "click"}, [])
    assert dash.pool is not pool and dash.pool.page_size == 64 * 1024
    assert dash.pool.capacity_bytes == 16 * 2**20
    assert dash.sim is not sim and dash.sim.pool is dash.pool and dash.sim.steps == 0
    assert dash.page_map.num_pages == 256
    dash.run(3)
    assert dash.sim.steps == 3
    dash.close()


def test_live_loop_drives_the_simulator() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, fps=20, pace=1.0)  # real time: the trace outlasts the test
    dash.play()
    time.sleep(0.6)
    dash.stop()
    assert sim.steps > 0 and dash.loop.frames >= 5
    assert dash.page_map.snapshot is not None and dash.page_map.snapshot.seq <= pool.seq
    dash.close()


def test_demo_builds_a_ready_to_play_dashboard() -> None:
    dash = Dashboard.demo()
    assert dash.sim is not None and dash.sim.config.kv_layout == "contiguous"
    assert dash.pool.device.type == "cpu"
    dash.run(5)
    assert dash.sim.steps == 5
    dash.close()


def test_widget_imports_and_works_without_the_workload() -> None:
    code = (
        "import sys; sys.modules['autoglm_lab.workload'] = None\n"
        "import autoglm_lab as al\n"
        "from autoglm_lab.widget import Dashboard\n"
        "pool = al.PagedPool(al.PoolConfig(page_size='4KiB', memory_pool_initial_size='64KiB', device='cpu'))\n"
        "pool.alloc_bytes(5000)\n"
        "d = Dashboard(pool); info = d.run(2); d.close()\n"
        "assert info['num_blocks'] == 1\n"
        "try:\n    Dashboard.demo()\nexcept ImportError:\n    print('demo needs the workload')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "demo needs the workload" in out.stdout


def test_pool_layer_does_not_import_the_widget_stack() -> None:
    code = ("import sys, autoglm_lab.pool\n"
            "bad = [m for m in ('anywidget', 'ipywidgets', 'autoglm_lab.widget') if m in sys.modules]\n"
            "assert not bad, bad\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_click_and_frame_racing_resolve_the_selection_in_one_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #12: a click picks a block from snapshot A on the comm thread; the block is freed and a
    live-loop frame draws snapshot B before the click shows its selection. The selection must come
    from one snapshot (never looked up in B), and nothing may raise: not the click, not the frame,
    not later frames of the live loop, not stop() or close()."""
    from autoglm_lab.widget import _pagemap

    pool, live = fragmented_pool()
    dash = Dashboard(pool, fps=30)
    target = live[3]
    page = target.first_page
    reached, go = threading.Event(), threading.Event()
    real_block_row = _pagemap._block_row

    def block_row_then_pause(snap: object, p: int) -> object:  # the click's pause point
        row = real_block_row(snap, p)
        if threading.current_thread().name == "comm" and not reached.is_set():
            reached.set()
            assert go.wait(10), "never released"
        return row

    monkeypatch.setattr(_pagemap, "_block_row", block_row_then_pause)
    errors: list[tuple[str, BaseException]] = []

    def thread(name: str, body: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                body()
            except BaseException as err:  # reported by the assertion below
                errors.append((name, err))
        return threading.Thread(target=run, name=name, daemon=True)

    click = thread("comm", lambda: dash.page_map._on_custom(dash.page_map, {"action": "select", "page": page}, []))
    frame = thread("loop", lambda: dash._live_tick(time.perf_counter()))
    click.start()
    assert reached.wait(10)  # the click has picked its block from the snapshot on screen (A)
    pool.free(target)        # the block goes; the next frame draws B
    click_holds_lock = not dash._lock.acquire(blocking=False)
    if not click_holds_lock:
        dash._lock.release()
    frame.start()
    if not click_holds_lock:  # nothing stops the frame: it runs while the click is paused
        frame.join(10)
        assert not frame.is_alive()
    # else the frame waits for the dashboard's lock until the click is done
    go.set()
    click.join(10)
    frame.join(10)
    assert not click.is_alive() and not frame.is_alive()
    assert errors == []
    # the block is gone: the selection is cleared, or shown as gone, never as the old place
    assert dash.page_map.selection in ([], [target.id, page, target.num_pages])
    if dash.page_map.selection:
        assert dash.page_map.selected_block(dash._last_snapshot) is None
    dash.frame()
    assert dash.page_map.selection == [] and "class='sep sel'" not in dash.stats.value
    dash.stop()
    dash.play()  # the live loop keeps drawing
    deadline = time.perf_counter() + 10
    start = dash.loop.frames
    while dash.loop.frames < start + 3 and dash.playing and time.perf_counter() < deadline:
        time.sleep(0.01)
    dash.stop()
    assert dash.loop.error is None and dash.loop.frames >= start + 3
    dash.close()


def test_stale_selection_is_shown_as_gone_not_raised() -> None:
    pool, live = fragmented_pool()
    dash = Dashboard(pool)
    target = live[2]
    dash.page_map._on_custom(dash.page_map, {"action": "select", "page": target.first_page}, [])
    old = dash._last_snapshot
    assert dash.page_map.selected_block(old)["block_id"] == target.id
    pool.free(target)
    gone = pool.snapshot()
    assert dash.page_map.selected_block(gone) is None  # looked up by id in the snapshot given
    dash.stats.update(gone.stats, {}, {"block_id": target.id})  # a caller's partial info: shown as gone
    assert f"selected block {target.id}" in dash.stats.value and "gone" in dash.stats.value
    dash.close()


def test_a_failed_frame_stops_the_loop_and_stop_and_close_still_work(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    pool, _ = fragmented_pool()
    dash = Dashboard(pool, fps=30)
    boom = RuntimeError("the stats panel broke")

    def broken(*_args: object, **_kwargs: object) -> None:
        raise boom

    monkeypatch.setattr(dash.stats, "update", broken)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        dash.play()
        deadline = time.perf_counter() + 10
        while dash.playing and time.perf_counter() < deadline:  # the first frame fails: the loop ends
            time.sleep(0.01)
        assert not dash.playing and dash.loop.error is boom
        dash.stop()   # must not raise
        dash.close()  # must not raise
    assert "frame failed" in caplog.text
    assert not dash.controls["play"].value
