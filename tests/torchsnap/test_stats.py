"""Pairing, the state before the trace, bytes over time, and the stats with their conservation checks."""

from __future__ import annotations

import numpy as np
import pytest

from autoglm_lab.torchsnap import load_torch_snapshot, run_program, snapshot_stats, synthetic_snapshot, timeline
from autoglm_lab.torchsnap._schema import Frame
from autoglm_lab.torchsnap._stats import call_site_label

K, M = 1 << 10, 1 << 20


def _program() -> list[tuple[object, ...]]:
    return [("alloc", "w", 12 * M), ("alloc", "a", 3 * M), ("alloc", "s", 1000), ("alloc", "b", 5 * M),
            ("free", "a"), ("alloc", "c", 2 * M), ("free_requested", "b"), ("alloc", "t", 100, 1),
            ("free_completed", "b"), ("free", "s")]


def test_stats_of_a_known_program() -> None:
    snap = load_torch_snapshot(run_program(_program()))
    st = snapshot_stats(snap, 0)
    # segments: w (12 MiB, its own), a 20 MiB one where c took a's 3 MiB block whole (a 1 MiB remainder is
    # not split off in the large pool), a small one for stream 0 (s freed) and one for stream 1 (t)
    t = st.total
    assert t.reserved == 12 * M + 20 * M + 2 * M + 2 * M
    assert t.allocated == 12 * M + 3 * M + 512 and t.active == t.allocated
    assert t.requested == 12 * M + 2 * M + 100
    assert t.internal_waste == M + 412 and t.free == t.reserved - t.active
    assert t.largest_free == 17 * M and t.external_fragmentation == pytest.approx(1 - 17 * M / t.free)
    assert st.counts == {"alloc": 6, "free_requested": 3, "free_completed": 3, "segment_alloc": 4}
    # peak active: w + a + s + b = 12 + 3 + 1 KiB + 5 MiB (rounded sizes)
    assert st.peak_active == 20 * M + 1024 and st.peak_reserved == 36 * M
    assert st.fragmentation_ratio == pytest.approx(1 - (20 * M + 1024) / (36 * M))
    assert all(st.checks.values()) and len(st.checks) == 3
    assert [c.label for c in st.top_sites[:2]] == ["program.py:1:w", "program.py:4:b"]
    assert st.top_sites[0].allocs == 1 and st.top_sites[0].bytes == 12 * M
    # histogram: power-of-two bins; 100 and 1000 bytes in the first (< 1 KiB), 12 MiB in [8, 16) MiB
    edges, counts = st.histogram_edges, st.histogram_counts
    assert counts.sum() == 6 and counts[0] == 2
    assert counts[np.searchsorted(edges, 12 * M, side="right") - 1] == 1
    assert int(st.histogram_bytes.sum()) == 12 * M + 3 * M + 1000 + 5 * M + 2 * M + 100


def test_timeline_and_pairing() -> None:
    snap = load_torch_snapshot(run_program(_program()))
    tl = timeline(snap, 0)
    trace = snap.traces[0]
    allocs = trace.indices("alloc").tolist()
    frees = trace.indices("free_completed").tolist()
    # every free_completed closes the alloc at its address; w, c and t are live at the end
    for i in frees:
        j = int(tl.pairing.open_of[i])
        assert j in allocs and trace.addr[j] == trace.addr[i] and int(tl.pairing.close_of[j]) == i
    assert len(tl.pairing.live_at_end) == 3 and len(tl.pairing.orphan_completed) == 0
    # the timeline counts 512 B-rounded requests (c: 2 MiB), the blocks hold 1 MiB more
    assert tl.reserved[-1] == 36 * M and tl.active[-1] == 12 * M + 2 * M + 512 and tl.allocated[-1] == tl.active[-1]
    b_req = trace.indices("free_requested").tolist()[1]
    assert tl.active[b_req] - tl.allocated[b_req] == 5 * M  # b: freed, not yet completed


def test_ring_overflow_reconstructs_the_state_before_the_trace() -> None:
    full = load_torch_snapshot(synthetic_snapshot(4))
    n = len(full.traces[0])
    cut = n - 1500
    ring = load_torch_snapshot(synthetic_snapshot(4, ring_capacity=1500))
    tl_full, tl_ring = timeline(full, 0), timeline(ring, 0)
    # the ring's start state is the full trace's state after entry cut-1
    assert tl_ring.initial.reserved_bytes == tl_full.reserved[cut - 1]
    assert np.array_equal(tl_ring.reserved, tl_full.reserved[cut:])
    assert np.array_equal(tl_ring.active, tl_full.active[cut:])
    live = sorted(p.address for p in tl_ring.initial.allocations)
    addr = full.traces[0].addr
    expected = sorted(int(addr[i]) for i in full.traces[0].indices("alloc").tolist()
                      if i < cut and (tl_full.pairing.close_of[i] < 0 or tl_full.pairing.close_of[i] >= cut))
    weights = {int(addr[i]) for i in full.traces[0].indices("alloc").tolist()[:4]}
    assert live == sorted(set(expected)) and weights <= set(live)
    assert all(snapshot_stats(ring, 0).checks.values())


def test_a_snapshot_without_trace() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(2, legacy="list"))
    st = snapshot_stats(snap, 0)
    assert st.trace_entries == 0 and st.peak_active == st.total.active and st.peak_reserved == st.total.reserved
    assert st.histogram_counts.sum() == sum(1 for s in snap.segments for b in s.blocks if b.state != "inactive")
    assert st.notes and "no trace" in st.notes[0]


def test_conservation_check_catches_an_inconsistent_trace() -> None:
    d = run_program(_program())
    d["device_traces"][0] = [e for e in d["device_traces"][0] if e["action"] != "segment_alloc"][:]
    d["device_traces"][0].append({"action": "segment_alloc", "addr": 1 << 44, "size": 2 * M, "stream": 0})
    st = snapshot_stats(load_torch_snapshot(d), 0)
    assert not st.checks["segment events account for the reserved bytes"]
    assert any("not inside a segment" in n for n in st.notes)


def test_call_site_label_skips_library_frames() -> None:
    frames = (Frame("/x/site-packages/torch/nn/modules/module.py", 1, "_call_impl"), Frame("/home/me/train.py", 7,
                                                                                           "step"))
    assert call_site_label(frames) == "train.py:7:step"
    assert call_site_label(frames[:1]) == "module.py:1:_call_impl"
    assert call_site_label(()) == "<no stack recorded>"
