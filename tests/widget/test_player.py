"""The snapshot player: a torch snapshot's trace replayed, torch's allocator and a paged pool side by
side, scrubbed with one slider, stepping from OOM to OOM."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autoglm_lab.torchsnap import load_torch_snapshot, replay_frames, shipped_snapshot_path
from autoglm_lab.widget import SnapshotPlayer


@pytest.fixture(scope="module")
def frames():  # type: ignore[no-untyped-def]
    return replay_frames(load_torch_snapshot(shipped_snapshot_path()), frames=120)


@pytest.fixture
def player(frames):  # type: ignore[no-untyped-def]
    p = SnapshotPlayer(frames)
    yield p
    p.close()


def test_both_sides_show_their_replay_at_the_same_entry(player: SnapshotPlayer, frames) -> None:  # type: ignore[no-untyped-def]
    oom = int(frames.oom_frames[0])
    player.show(oom)
    torch_map, torch_heat, torch_trace, torch_line = player.views["torch"]
    paged_map, paged_heat, paged_trace, _ = player.views["paged"]
    assert np.array_equal(torch_map.widget.snapshot.page_state, frames.torch[oom].page_state)
    assert np.array_equal(paged_map.widget.snapshot.page_state, frames.paged[oom].page_state)
    # the heatmaps hold one column per frame so far, although torch's reserved memory changed size
    assert len({s.num_pages for s in frames.torch[:oom + 1]}) > 1
    assert torch_heat.widget.columns().shape[0] == paged_heat.widget.columns().shape[0] == oom + 1
    # OOMs so far are the torch trace's failure markers
    assert torch_trace.widget._window["event_time_s"].size == int(np.count_nonzero(frames.torch_ooms[:oom + 1]))
    assert f"OOMs so far {int(frames.torch_ooms[:oom + 1].sum())}" in torch_line.value
    upto = slice(0, oom + 1)  # the paged side marks its failed allocations and compactions (modelled pause)
    assert paged_trace.widget._window["event_time_s"].size == int(np.count_nonzero(frames.paged_failed_allocs[upto])
                                                                  + np.count_nonzero(frames.paged_pause_s[upto]))
    assert f"entry {int(frames.entry_index[oom]):,}" in player.label.value and "OOM 1 of" in player.label.value
    assert player.slider.value == oom


def test_stepping_from_oom_to_oom_and_the_slider(player: SnapshotPlayer, frames) -> None:  # type: ignore[no-untyped-def]
    seen = []
    while (f := player.next_oom()) is not None:
        seen.append(f)
    assert seen == [int(x) for x in frames.oom_frames] and player.index == seen[-1]
    assert player.prev_oom() == (seen[-2] if len(seen) > 1 else None)
    player.slider.value = 7  # what the front end's slider sends
    assert player.index == 7 and player.views["paged"][0].widget.snapshot.seq == frames.paged[7].seq
    with pytest.raises(ValueError, match="frames 0 to"):
        player.show(len(frames.entry_index))
    assert player.index == 7


def test_play_runs_to_the_last_frame_and_stops(player: SnapshotPlayer, frames) -> None:  # type: ignore[no-untyped-def]
    player.show(-3)
    player.play()
    deadline = time.perf_counter() + 20
    while player.index < len(frames.entry_index) - 1 and time.perf_counter() < deadline:
        time.sleep(0.02)
    player.stop()  # joins the loop thread
    assert player.index == len(frames.entry_index) - 1 and not player.playing


def test_load_refuses_a_file_that_is_not_a_snapshot(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "x.pickle"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError):
        SnapshotPlayer.load(bad)


def test_scrubbed_heatmap_columns_are_computed_once_and_follow_the_metric(frames) -> None:  # type: ignore[no-untyped-def]
    """Moving the slider rebuilds each side's heatmap window from columns computed once per frame (when
    the player is built, from the replay's snapshots); the window is the one computed from the
    history's snapshots, and a change of metric computes them again."""
    p = SnapshotPlayer(frames)
    try:
        view = p.views["paged"][1]
        heat = view.widget
        hist = p.histories["paged"]
        p.show(len(frames.entry_index) - 1)
        expect = np.stack([heat.column(hist.snapshot(i), float(hist.times[i])).col for i in range(len(hist))])
        assert np.array_equal(heat.columns(), expect[-heat.columns().shape[0]:])
        calls = []
        real = hist.snapshot
        hist.snapshot = lambda i: calls.append(i) or real(i)  # type: ignore[method-assign]
        n = len(frames.entry_index)
        p.show(n - 2)
        p.show(n - 1)
        assert calls == []  # nothing decoded: the frames' snapshots are at hand, the window's columns cached
        heat.metric = "holes"
        p.show(n - 1)
        assert len(calls) > 3  # a new metric: the columns are computed again
        holes = np.stack([heat.column(real(i), float(hist.times[i])).col for i in range(len(hist))])
        assert np.array_equal(heat.columns(), holes[-heat.columns().shape[0]:]) and not np.array_equal(holes, expect)
    finally:
        p.close()
