"""The dashboard's history: every frame recorded (bounded), the time slider scrubs back through page
map, heatmap, trace and panels as they were, and `dash.save` writes what the offline report reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from autoglm_lab.history import SnapshotHistory
from autoglm_lab.pool import PoolSnapshot
from autoglm_lab.widget import Dashboard
from autoglm_lab.widget._serving import serving_rows

from .test_dashboard import fragmented_pool, tiny_sim
from .test_serving import _rows


def _recorded(dash: Dashboard) -> list[tuple[PoolSnapshot, float, dict[str, Any]]]:
    seen: list[tuple[PoolSnapshot, float, dict[str, Any]]] = []
    dash.on_frame(lambda snap, _info: seen.append((snap, dash.sim.clock, dash.sim.summary())))
    return seen


def test_scrubbing_shows_every_view_as_it_was_then_back_to_live() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    try:
        seen = _recorded(dash)
        dash.run(400, frame_every=10)
        assert len(dash.history) == len(seen) + 1  # + the frame drawn when the dashboard was built
        snap, clock, summary = seen[12]
        dash.scrub(clock)
        assert dash.scrubbing and dash.page_map.snapshot.seq == snap.seq
        assert np.array_equal(dash.page_map.snapshot.page_state, snap.page_state)
        assert _rows(dash.serving.value) == dict(serving_rows(summary))
        assert f"{snap.stats.failed_allocations:,}" in dash.stats.value
        assert dash.heatmap.columns().shape[0] == 14 and dash.heatmap._ring_time.max() == clock
        trace_t = dash.trace._window["time_s"]
        assert trace_t.size and trace_t[-1] <= clock < trace_t[-1] + 1e-9 + (seen[13][1] - clock)
        assert f"t = {clock:.2f} s" in dash.scrub_label.value and dash.scrubber.value == 13
        assert not dash.live_button.disabled
        columns = len(dash.history)  # one heatmap column per frame drawn
        dash.scrub(None)  # back to the present
        assert not dash.scrubbing and dash.page_map.snapshot.seq == pool.snapshot().seq
        assert dash.heatmap.columns().shape[0] == columns  # no second column for the same moment
        assert dash.heatmap._ring_time.max() == sim.clock and dash.trace._window["time_s"][-1] == sim.clock
        assert dash.scrubber.value == dash.scrubber.max == len(dash.history) - 1 and dash.live_button.disabled
    finally:
        dash.close()


def test_moving_the_slider_pauses_the_loop_and_play_returns_to_the_present() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, fps=30)
    try:
        dash.run(200, frame_every=20)
        for _ in range(3):
            sim.step()
            dash._frame(live=True)  # live frames between text refreshes: the label may lag behind them
        dash.stop()  # stopping refreshes the text: the label names every frame recorded
        assert f"{len(dash.history):,} frames" in dash.scrub_label.value
        dash.play()
        assert dash.playing
        dash.scrubber.value = 2  # what the front end's slider sends
        assert not dash.playing and dash.scrubbing  # show_frame stopped (and joined) the loop first
        assert dash.page_map.snapshot.seq == dash.history.seqs[2]
        steps = sim.steps
        dash.step()  # any new frame is the present again
        assert not dash.scrubbing and sim.steps == steps + 1
        assert dash.scrubber.value == len(dash.history) - 1
    finally:
        dash.close()


def test_reset_starts_a_new_history_and_a_plain_pool_records_its_events() -> None:
    pool, _live = fragmented_pool()
    dash = Dashboard(pool)
    try:
        first = dash.history
        dash.compact_now()
        assert len(first) == 2 and first.snapshot(1).stats.compactions == first.snapshot(0).stats.compactions + 1
        dash.scrub(first.times[0])
        assert dash.page_map.snapshot.stats.external_fragmentation > 0  # before the compaction
        assert dash.trace._window["time_s"].size > 0  # the pool's own events, as logged then
        dash.reset()
        assert dash.history is not first and len(dash.history) == 1 and not dash.scrubbing
    finally:
        dash.close()


def test_the_dashboard_history_is_bounded_and_saved_for_the_offline_report(tmp_path: Path) -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim, history_bytes=96 * 1024)
    try:
        dash.run(1500, frame_every=1)
        hist = dash.history
        assert hist.dropped > 0 and hist.nbytes <= 96 * 1024
        assert re.search(r"[\d,]+ oldest dropped", dash.scrub_label.value)
        dash.scrub(0.0)  # before the oldest kept: shows the oldest kept
        assert dash.page_map.snapshot.seq == hist.seqs[0]
        back = SnapshotHistory.load(dash.save(tmp_path / "run.npz"))
        assert len(back) == len(hist) and np.array_equal(back.steps()["time_s"], hist.steps()["time_s"])
        assert back.summary(-1) == hist.summary(-1) and back.summary(-1)["steps"] == sim.steps
    finally:
        dash.close()


def test_a_simulator_started_over_behind_the_dashboards_back_starts_a_new_history() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    try:
        dash.run(300, frame_every=50)
        old = dash.history
        sim.reset()  # the user's own code: the clock goes back to 0
        dash.run(20, frame_every=10)
        assert dash.history is not old and len(dash.history) == 2
        assert dash.history.steps()["time_s"].size == 20 and dash.history.times[-1] == sim.clock
    finally:
        dash.close()


def test_live_frames_between_records_add_no_heatmap_column_so_scrubbing_redraws_it_exactly() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    try:
        for i in range(12):  # live frames a few ms apart: the history records at most 10 a second
            sim.step()
            if i % 4 == 0:
                dash._recorded_at = 0.0  # as if 0.1 s had passed: this one is recorded
            dash._frame(live=True)
        assert len(dash.history) == 1 + 3  # the first frame, then every fourth
        assert dash.heatmap.columns().shape[0] == len(dash.history)  # one column per recorded frame
        before = dash.heatmap.columns().copy()
        dash.show_frame(-1)  # the last recorded frame: the heatmap rebuilt from the history is the live one
        assert np.array_equal(dash.heatmap.columns(), before)
    finally:
        dash.close()
