"""A run as the dashboard shows it: progress and the end of the trace, the pace, Reset as a fresh
run, the one rule for resizing a pool, and the time window the charts share."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.widget import Dashboard
from autoglm_lab.widget._dashboard import demo_pace
from autoglm_lab.widget._resize import resize_note, resized_config
from autoglm_lab.widget._stats import COUNTERS
from autoglm_lab.widget._status import progress_of

from .test_dashboard import fragmented_pool, tiny_sim


def wait_until(cond: object, timeout_s: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout_s
    while not cond() and time.perf_counter() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def counters(pool: al.PagedPool) -> dict[str, float]:
    st = pool.stats()
    return {k: getattr(st, k) for k in COUNTERS if hasattr(st, k)}


def test_progress_is_shown_and_the_loop_stops_at_the_end() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, fps=30)
    total = len(sim.requests)
    assert f"0 / {total} requests" in dash.status.value and "paused" in dash.status.value
    dash.play()
    wait_until(lambda: not dash.playing)
    dash.loop.stop()  # joins the loop thread: it has finished its last frame and status
    assert not dash.playing and dash.finished and dash.loop.error is None
    assert not dash.controls["play"].value and dash.controls["play"].description == "Play"
    progress = progress_of(dash.sim)
    assert progress.finished and progress.done == total
    assert "finished" in dash.status.value and f"{total} / {total} requests" in dash.status.value
    assert f"{dash.sim.clock:.1f} s simulated" in dash.status.value
    # nothing moves: no more heatmap columns, no trace frames
    columns, window = dash.heatmap.columns().shape[0], dash.trace._window
    dash.frame()
    dash.step()
    assert dash.heatmap.columns().shape[0] == columns and dash.trace._window is window
    assert "finished" in dash.status.value
    # Play after the end: a fresh run
    dash.play()
    wait_until(lambda: dash.runs == 2 and dash.sim.steps > 0)
    dash.stop()
    assert dash.runs == 2
    dash.close()


def test_loop_starts_the_trace_over() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, fps=30, at_end="loop")
    assert dash.controls["at_end"].value == "loop"
    dash.play()
    wait_until(lambda: dash.runs >= 3)
    assert dash.playing and dash.runs >= 3
    dash.stop()
    assert dash.loop.error is None
    dash.set("at_end", "stop")
    assert dash.at_end == "stop"
    dash.close()


def test_pace_keeps_simulated_time_at_most_real_time_times_the_pace() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, fps=20, pace=0.5)
    assert dash.controls["pace"].value == 0.5
    t0 = time.perf_counter()
    dash.play()
    time.sleep(0.6)
    dash.stop()
    elapsed = time.perf_counter() - t0
    # never ahead of the pace (one frame's slot and one step of slack); it did move
    assert 0 < dash.sim.clock <= 0.5 * (elapsed + 0.1) + 0.05
    assert not dash.finished
    dash.close()


def test_demo_pace_serves_the_trace_within_about_two_minutes() -> None:
    def sim(last_arrival_s: float, scale: float = 1.0) -> SimpleNamespace:
        reqs = [SimpleNamespace(arrival_s=0.0), SimpleNamespace(arrival_s=float("nan")),
                SimpleNamespace(arrival_s=last_arrival_s)]
        return SimpleNamespace(requests=reqs, config=SimpleNamespace(request_rate_scale=scale))

    assert demo_pace(sim(106.0)) == 1.0   # the shipped demo: real time
    assert demo_pace(sim(200.0)) == 2.0
    assert demo_pace(sim(400.0, scale=2.0)) == 2.0
    assert demo_pace(sim(1000.0)) == 20.0
    assert demo_pace(sim(10_000.0)) == 20.0  # the fastest the control offers
    dash = Dashboard.demo()
    assert dash.pace == demo_pace(dash.sim) >= 1 and dash.at_end == "loop"
    dash.close()


def test_reset_is_a_fresh_run_with_the_same_config_and_seed() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    dash.set("compaction", "eager")
    dash.set("free_ratio_trigger", 0.4)
    while not dash.sim.done:
        dash.run(200, frame_every=50)
    first = counters(dash.pool)
    totals = dict(dash.sim.totals)
    assert first["failed_allocations"] > 0 and first["compactions"] > 0
    dash.reset()
    assert dash.pool is not pool and dash.sim is not sim
    assert dash.pool.config == pool.config and dash.sim.config == sim.config  # the config as set
    assert all(v == 0 for v in counters(dash.pool).values())
    stats = dash.stats.value
    for label in ("failed allocations", "compactions", "pages moved"):
        assert f"<td title='{label}'>{label}</td><td class='v' title='0'>0</td>" in stats
    assert "0.00 ms" in stats and "0 / 60 requests" in dash.status.value
    assert dash.heatmap.columns().shape[0] == 1 and dash.trace._window["time_s"].size == 0
    while not dash.sim.done:  # the same seed and config: the same run
        dash.run(200, frame_every=50)
    again = counters(dash.pool)
    assert {k: v for k, v in again.items() if k != "compaction_pause_s"} == \
        {k: v for k, v in first.items() if k != "compaction_pause_s"}
    assert dict(dash.sim.totals) == totals
    dash.close()


def test_reset_of_a_plain_pool_keeps_its_blocks_and_counts_from_zero() -> None:
    pool, live = fragmented_pool()
    dash = Dashboard(pool)
    dash.compact_now()
    assert pool.stats().compactions == 1 and "manual" in dash.stats.value
    dash.reset()
    assert dash.pool is pool and pool.stats().num_blocks == len(live)  # the blocks stay
    assert pool.stats().compactions == 1  # the pool's own books are the pool's
    assert "counters since Reset" in dash.stats.value
    assert "<td title='compactions'>compactions</td><td class='v' title='0'>0</td>" in dash.stats.value
    dash.compact_now()
    assert "<td title='compactions'>compactions</td><td class='v' title='1 · manual'>1 · manual</td>" \
        in dash.stats.value
    dash.close()


def test_one_rule_for_resizing_a_pool() -> None:
    fixed = al.PoolConfig(page_size="64KiB", memory_pool_initial_size="64MiB", max_size="64MiB", device="cpu")
    growable = fixed.replace(max_size=256 * 2**20)
    assert resized_config(fixed, memory_pool_initial_size="16MiB").max_size == 16 * 2**20  # fixed stays fixed
    assert resized_config(fixed, memory_pool_initial_size="1GiB").max_size == 2**30
    assert resized_config(growable, memory_pool_initial_size="16MiB").max_size == 256 * 2**20
    assert resized_config(growable, memory_pool_initial_size="1GiB").max_size == 2**30
    assert resized_config(fixed, page_size="4KiB").page_size == 4096
    with pytest.raises(ValueError, match="memory_pool_initial_size"):
        resized_config(fixed, page_size="1MiB", memory_pool_initial_size="1536KiB")
    assert resize_note(fixed, "16MiB") == "16MiB, max 16MiB (fixed)"
    assert resize_note(growable, "16MiB") == "16MiB, max 256MiB"


def test_apply_says_what_the_pool_becomes_and_builds_it() -> None:
    from autoglm_lab.workload import demo_setup

    pool, sim = demo_setup(device="cpu", limit=50)
    dash = Dashboard(pool, sim)
    apply = dash.controls["apply"]
    assert apply.disabled and "nothing to rebuild" in apply.tooltip
    assert dash.set("memory_pool_initial_size", "16MiB")
    assert not apply.disabled and apply.description == "Apply: 16MiB, max 16MiB (fixed) · 64KiB pages"
    assert apply.tooltip.startswith(apply.description)  # all of it, where the button is too narrow
    apply._handle_button_msg(None, {"event": "click"}, [])
    assert dash.pool.capacity_bytes == dash.pool.config.max_size == 16 * 2**20  # the 64 MiB is gone
    assert apply.disabled and apply.description == "Apply (rebuild pool)"
    dash.close()


def test_the_trace_keeps_the_charts_window_of_simulated_time() -> None:
    from autoglm_lab.workload import demo_setup

    pool, sim = demo_setup(device="cpu", limit=400, trace="azure", time_scale=4.0)
    dash = Dashboard(pool, sim)
    assert dash.trace.window_s == dash.heatmap.window_s
    while dash.sim.clock < 1.5 * dash.trace.window_s and not dash.sim.done:
        dash.run(2000, frame_every=500)
    window = dash.trace._window
    recent = sim.config.recent_capacity
    assert window["time_s"].size > recent  # more than the simulator's ring holds
    t = window["time_s"]
    assert t[-1] == pytest.approx(dash.sim.clock) and t[-1] - t[0] <= dash.trace.window_s
    assert (np.diff(t) >= 0).all()
    assert window["event_time_s"].size == 0 or window["event_time_s"][0] >= t[0]
    dash.close()


def test_a_loop_that_stopped_itself_restarts_as_one_loop() -> None:
    import threading

    from autoglm_lab.widget._loop import LiveLoop

    def tick(_due: float) -> None:
        time.sleep(0.05)  # a frame still running when Play comes again
        if loop.frames == 0:
            loop.stop()  # the end of the trace: the loop stops itself

    loop = LiveLoop(tick, fps=50, name="agl-test-loop")
    loop.start()
    wait_until(lambda: not loop.running, 5)
    assert not loop.running  # at once, though its last frame may still be drawing
    loop.start()
    seen = []
    for _ in range(10):
        seen.append(sum(t.name == "agl-test-loop" for t in threading.enumerate()))
        time.sleep(0.02)
    assert loop.stop() and not loop.running
    assert max(seen) == 1 and loop.frames >= 2


def test_markers_carry_their_trigger() -> None:
    from autoglm_lab.pool import COMPACT_REASONS, EventKind
    from autoglm_lab.widget._heatmap import MARK_COMPACT, MARK_REASON_SHIFT
    from autoglm_lab.widget._trace import EVENT_REASON_SHIFT

    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    while not dash.sim.done:
        dash.run(100)
    kinds = dash.trace._window["event_kind"]
    compactions = kinds[(kinds & ((1 << EVENT_REASON_SHIFT) - 1)) == EventKind.COMPACT]
    reasons = {COMPACT_REASONS[(k >> EVENT_REASON_SHIFT) - 1] for k in compactions.tolist()}
    assert compactions.size > 0 and reasons <= set(dash.pool.stats().compactions_by_reason)
    marks = dash.heatmap._ring_marks[dash.heatmap._order()]
    marked = marks[(marks & MARK_COMPACT) > 0]
    assert marked.size > 0
    assert {COMPACT_REASONS[((m >> MARK_REASON_SHIFT) & 7) - 1] for m in marked.tolist()} <= reasons
    dash.close()
