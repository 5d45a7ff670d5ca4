"""replay_frames: both replays recorded at evenly spaced entries, every OOM and the peaks; the torch
model's frames are pool snapshots of its state; the paged frames are the pool's own snapshots."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import numpy as np
import pytest

from autoglm_lab.pool import PagedPool, PageState, PoolConfig, PoolExhausted, PoolSnapshot
from autoglm_lab.torchsnap import (
    Action,
    ReplayFrames,
    TorchSnapshot,
    _replay,
    device_capacity,
    load_torch_snapshot,
    pool_configs,
    replay_frames,
    replay_pool,
    replay_torch,
    run_program,
    shipped_snapshot_path,
    synthetic_snapshot,
    timeline,
)

M = 1 << 20
LAZY = {"page_size": "1MiB", "compaction": "lazy", "max_consecutive_failures": 1}


@cache
def _snap(name: str) -> TorchSnapshot:
    if name == "shipped":
        return load_torch_snapshot(shipped_snapshot_path())
    kwargs: dict[str, Any] = {"seed1": {"seed": 1, "capacity": 96 * M}, "expandable": {"seed": 2,
                              "expandable_segments": True}, "ring": {"seed": 0, "ring_capacity": 3000}}[name]
    return load_torch_snapshot(synthetic_snapshot(**kwargs))


@cache
def _frames(name: str, lazy: bool = False, **kwargs: Any) -> ReplayFrames:
    if lazy:  # 1 MiB pages, compaction on every failed allocation, 72 MiB: blocks move, some fail
        kwargs.update(config=LAZY, capacity=72 * M)
    return replay_frames(_snap(name), **kwargs)


def _without_seconds(x: Any) -> dict[str, Any]:
    return {f.name: getattr(x, f.name) for f in dataclasses.fields(x) if f.name != "seconds"}


@pytest.mark.parametrize("name", ["shipped", "seed1", "ring"])
def test_frames_include_every_oom_and_the_peaks(name: str) -> None:
    snap = _snap(name)
    f = _frames(name)
    trace = snap.traces[0]
    tl = timeline(snap, 0)
    n = len(trace)
    e = f.entry_index
    assert e.dtype == np.int64 and np.all(np.diff(e) > 0) and e[-1] == n - 1
    ooms = trace.indices("oom")
    assert ooms.size and np.array_equal(e[f.oom_frames], ooms) and f.oom_frames.dtype == np.int64
    assert e[f.peak_frame] == tl.peak_index
    assert tl.reserved[e[f.peak_reserved_frame]] == tl.reserved.max()
    assert 300 <= len(f) <= 300 + ooms.size + 2
    for arr in (f.time_s, f.torch_segment_allocs, f.torch_segment_frees, f.torch_flushes, f.torch_ooms,
                f.paged_failed_allocs, f.paged_compactions, f.paged_bytes_moved, f.paged_pause_s):
        assert arr.shape == e.shape
    assert len(f.torch) == len(f.paged) == len(f)
    t = trace.time_us
    assert np.all(t >= 0) and np.allclose(f.time_s, (t[e] - t[0]) / 1e6) and f.time_s.dtype == np.float64
    assert [s.time_s for s in f.torch] == [s.time_s for s in f.paged] == f.time_s.tolist()
    # fewer frames: still every OOM and the peak, and the last entry
    few = replay_frames(snap, frames=1)
    assert set(few.entry_index.tolist()) == {n - 1, tl.peak_index, int(e[f.peak_reserved_frame]), *ooms.tolist()}


def test_the_runs_are_replay_torch_and_replay_pool_and_the_counts_add_up() -> None:
    snap = _snap("seed1")
    f = _frames("seed1", lazy=True)
    assert _without_seconds(f.torch_replay) == _without_seconds(replay_torch(snap))
    plain = replay_pool(snap, config=LAZY, capacity=72 * M, backend="meta")
    assert _without_seconds(f.paged_replay) == _without_seconds(plain)
    assert f.paged_label == plain.label and f.torch_label == "torch caching allocator (model)"
    assert f.capacity_bytes == 72 * M and f.granularity == 2 * M
    # the latency signals per frame add up to the runs' totals
    assert plain.compactions > 0 and plain.failed_allocs > 0
    assert f.paged_failed_allocs.sum() == plain.failed_allocs and f.paged_compactions.sum() == plain.compactions
    assert f.paged_bytes_moved.sum() == plain.bytes_moved
    assert np.allclose(f.paged_pause_s, f.paged_bytes_moved / 1e12)
    act = snap.traces[0].action
    assert f.torch_segment_allocs.sum() == np.count_nonzero((act == Action.SEGMENT_ALLOC) | (act == Action.SEGMENT_MAP))
    assert f.torch_segment_frees.sum() == np.count_nonzero(act == Action.SEGMENT_FREE)
    assert 0 < f.torch_flushes.sum() <= f.torch_segment_frees.sum()
    assert f.torch_ooms.sum() == np.count_nonzero(act == Action.OOM) and np.all(f.torch_ooms[f.oom_frames] >= 1)


def test_the_default_pool_is_the_one_analyze_judges_with_compaction() -> None:
    f = _frames("shipped")
    cfg = f.paged_replay.config
    lazy = pool_configs()[1]
    assert (cfg.page_size, cfg.compaction, cfg.max_consecutive_failures, cfg.device) == \
        (lazy.page_size, "lazy", 1, "meta")
    assert f.paged_replay.capacity_bytes == device_capacity(_snap("shipped"), 0) // (2 * M) * (2 * M)


def _page_map(segments: list[tuple[int, int, list[tuple[int, int, int]]]], g: int) -> tuple[np.ndarray, int, int]:
    """(used per page, requested bytes, active bytes) of segments [(address, size, [(addr, size, requested)
    of the active blocks])] at ``g``-byte pages: a page is used when any active byte lies in it."""
    used = []
    requested = active = 0
    for addr, size, blocks in sorted(segments):
        pages = np.zeros(-(-size // g), dtype=bool)
        for a, s, r in blocks:
            pages[(a - addr) // g:-(-(a + s - addr) // g)] = True
            requested += r
            active += s
        used.append(pages)
    return (np.concatenate(used) if used else np.zeros(0, dtype=bool)), requested, active


def _check_torch_frame(frame: PoolSnapshot, segments: list[Any], g: int) -> None:
    used, requested, active = _page_map(segments, g)
    assert frame.num_pages == used.size and frame.page_size == g
    assert np.array_equal(frame.page_state != PageState.FREE, used)
    assert frame.stats.used_bytes == int(used.sum()) * g and frame.stats.requested_bytes == requested
    assert frame.stats.capacity_bytes == sum(-(-s // g) * g for _, s, _ in segments)
    assert frame.stats.num_segments == len(segments) and int(frame.block_nbytes.sum()) == requested
    if g == 512:  # torch's block unit: every block is its own, page for page
        assert frame.stats.used_bytes == active and frame.num_blocks == sum(len(b) for _, _, b in segments)
    start, length = frame.free_runs()
    assert frame.stats.free_runs == start.size and frame.stats.largest_free_run_pages == length.max(initial=0)


@pytest.mark.parametrize("name", ["shipped", "expandable", "ring"])
@pytest.mark.parametrize("granularity", [512, "64KiB", "2MiB", "8MiB"])
def test_the_last_torch_frame_is_the_models_final_state(name: str, granularity: int | str) -> None:
    snap = _snap(name)
    f = _frames(name, granularity=granularity, frames=20)
    g = f.granularity
    run = _replay.TorchStepper(snap, 0, timeline(snap, 0))
    run.advance(run.n)
    model = [(s["address"], s["total_size"], [(b["address"], b["size"], b["requested_size"]) for b in s["blocks"]
                                              if b["state"] != "inactive"]) for s in run.model.segment_dicts()]
    _check_torch_frame(f.torch[-1], model, g)
    assert f.torch[-1].stats.requested_bytes == run.model.requested
    if g == 512:
        assert f.torch[-1].stats.used_bytes == run.model.active
    assert f.torch_replay.ends_in_snapshot_state  # so the snapshot's own segments are that state too
    own = [(s.address, s.total_size, [(b.address, b.size, b.requested_size) for b in s.blocks
                                      if b.state != "inactive"]) for s in snap.segments_of(0)]
    _check_torch_frame(f.torch[-1], own, g)


def test_torch_frames_follow_reserved_memory() -> None:
    snap = _snap("shipped")
    f = _frames("shipped")
    tl = timeline(snap, 0)
    # 2 MiB pages tile every segment (2 MiB, 20 MiB or a multiple of 2 MiB): capacity is reserved
    assert [s.stats.capacity_bytes for s in f.torch] == tl.reserved[f.entry_index].tolist()
    assert len({s.num_pages for s in f.torch}) > 1
    assert [s.seq for s in f.torch] == (f.entry_index + 1).tolist() and f.torch[0].device == "cuda:0"
    # a block's creation time: its alloc entry's time (0 for one from before the trace)
    trace = snap.traces[0]
    times = (trace.time_us - trace.time_us[0]) / 1e6
    k = f.peak_frame
    fine = _frames("shipped", granularity=512)
    frame = fine.torch[fine.peak_frame]
    e = int(fine.entry_index[fine.peak_frame])
    for bid, born in zip(frame.block_id.tolist(), frame.block_created_s.tolist(), strict=True):
        allocs = np.flatnonzero((trace.action[: e + 1] == Action.ALLOC) & (trace.addr[: e + 1] == bid))
        assert born == (times[allocs[-1]] if allocs.size else 0.0)
    assert f.entry_index[k] == e


def test_blocks_smaller_than_a_page_are_rounded_out_and_merged() -> None:
    snap = load_torch_snapshot(run_program([("alloc", "a", 1000), ("alloc", "b", 100), ("alloc", "c", 3 * M + 100),
                                            ("free", "a")]))
    f = replay_frames(snap, granularity="1MiB", frames=100)
    assert f.entry_index.tolist() == list(range(len(snap.traces[0])))
    before_free, last = f.torch[-2], f.torch[-1]
    # the small segment (2 pages): a and b share page 0 (one block of 1100 requested bytes); the large
    # segment (20 pages): c's 3 MiB + 512 B block covers 4 pages, the last partly (TAIL)
    used, tail, free = PageState.USED, PageState.TAIL, PageState.FREE
    assert before_free.num_pages == 22 and before_free.block_nbytes.tolist() == [1100, 3 * M + 100]
    assert before_free.page_state.tolist() == [tail, free, used, used, used, tail] + [free] * 16
    assert last.block_nbytes.tolist() == [100, 3 * M + 100] and last.page_state[0] == tail
    st = last.stats
    assert (st.used_pages, st.free_pages, st.free_runs, st.largest_free_run_pages) == (5, 17, 2, 16)
    assert st.requested_bytes == 3 * M + 200 and st.internal_waste_bytes == 5 * M - (3 * M + 200)
    assert (st.num_allocs, st.num_frees, st.failed_allocations) == (3, 1, 0)
    a, b = (int(x) for x in snap.traces[0].addr[[1, 2]])  # segment_alloc, alloc a, alloc b (same segment)
    assert before_free.block_id[0] == a and last.block_id[0] == b


def _plain_pool_replay(snap: TorchSnapshot, config: PoolConfig, upto: int) -> tuple[PagedPool, dict[int, int]]:
    """The pool after entries 0..upto, replayed plainly: every alloc kept if it fits, every free of a
    held block done, every OOM's request tried and given back. Returns the pool and block id -> alloc entry."""
    pool = PagedPool(config)
    trace = snap.traces[0]
    held: dict[int, Any] = {}
    entry_of: dict[int, int] = {}
    for pre in timeline(snap, 0).initial.allocations:
        held[pre.address] = pool.alloc_bytes(max(pre.requested, 1))
    for i in range(upto + 1):
        code, addr, size = int(trace.action[i]), int(trace.addr[i]), int(trace.size[i])
        if code in (Action.ALLOC, Action.OOM):
            try:
                blk = pool.alloc_bytes(max(size, 1))
            except PoolExhausted:
                continue
            if code == Action.OOM:
                pool.free(blk)
            else:
                held[addr] = blk
                entry_of[blk.id] = i
        elif code == Action.FREE_COMPLETED and addr in held:
            pool.free(held.pop(addr))
    return pool, entry_of


@pytest.mark.parametrize("name", ["seed1", "ring"])
def test_a_paged_frame_equals_a_plain_replay(name: str) -> None:
    snap = _snap(name)
    f = _frames(name, lazy=True)
    cfg = PoolConfig(page_size="1MiB", memory_pool_initial_size=72 * M, max_size=72 * M, device="meta",
                     compaction="lazy", max_consecutive_failures=1)
    moved = np.flatnonzero(f.paged_compactions)
    picks = {int(f.oom_frames[-1]), f.peak_frame, len(f) // 2, len(f) - 1}
    if moved.size:
        picks.add(int(moved[0]))
    times = (snap.traces[0].time_us - snap.traces[0].time_us[0]) / 1e6
    for k in sorted(picks):
        frame = f.paged[k]
        pool, entry_of = _plain_pool_replay(snap, cfg, int(f.entry_index[k]))
        want = pool.snapshot()
        for col in ("num_pages", "page_size", "device", "seq"):
            assert getattr(frame, col) == getattr(want, col), (k, col)
        for col in ("segment_first_page", "segment_num_pages", "block_id", "block_first_page", "block_num_pages",
                    "block_nbytes", "block_tag", "block_pinned", "block_cached", "page_state"):
            assert np.array_equal(getattr(frame, col), getattr(want, col)), (k, col)
        assert _without_pause(frame.stats) == _without_pause(want.stats), k
        assert frame.block_created_s.tolist() == [times[entry_of[b]] if b in entry_of else 0.0
                                                  for b in frame.block_id.tolist()]
    if name == "seed1":
        assert moved.size  # compaction moved blocks before one of the compared frames


def _without_pause(stats: Any) -> dict[str, Any]:
    d = dataclasses.asdict(stats)
    d.pop("compaction_pause_s")  # measured wall time of the bookkeeping
    return d


def test_a_snapshot_without_a_trace_is_one_frame_of_its_state() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(0, legacy="list"))
    f = replay_frames(snap)
    assert f.entry_index.tolist() == [-1] and f.time_s.tolist() == [0.0] and len(f.torch) == len(f.paged) == 1
    assert f.peak_frame == -1 and f.oom_frames.size == 0 and f.torch_ooms.tolist() == [0]
    dev = f.device
    own = [(s.address, s.total_size, [(b.address, b.size, b.requested_size) for b in s.blocks
                                      if b.state != "inactive"]) for s in snap.segments_of(dev)]
    _check_torch_frame(f.torch[0], own, f.granularity)
    assert f.paged[0].num_blocks == len(timeline(snap, dev).initial.allocations) > 0


def test_bad_arguments_are_named() -> None:
    snap = _snap("shipped")
    for kwargs, match in (({"frames": 0}, "frames=0"), ({"frames": -3}, "frames=-3"), ({"frames": True}, "frames"),
                          ({"frames": 2.5}, "frames"), ({"granularity": "3XiB"}, "granularity='3XiB'"),
                          ({"granularity": 1000}, "granularity=1000.*multiple of 512"),
                          ({"granularity": 0}, "granularity=0"), ({"granularity": "1KB"}, "granularity='1KB'"),
                          ({"device": 4}, "device=4"), ({"config": 3}, "config must be"),
                          ({"bandwidth": 0.0}, "bandwidth")):
        with pytest.raises(ValueError, match=match):
            replay_frames(snap, **kwargs)
