"""The synthetic generator: seeded, and covering every field, action, state and form of the format."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from autoglm_lab.torchsnap import (
    ACTIONS,
    BLOCK_STATES,
    load_torch_snapshot,
    run_program,
    synthetic_snapshot,
    write_synthetic_snapshot,
)
from autoglm_lab.torchsnap._timeline import pair_trace

SEGMENT_FIELDS = {"device", "address", "total_size", "allocated_size", "active_size", "requested_size", "stream",
                  "segment_type", "segment_pool_id", "is_expandable", "frames", "blocks"}
BLOCK_FIELDS = {"address", "size", "requested_size", "state", "frames"}
ENTRY_FIELDS = {"action", "addr", "size", "stream", "time_us", "frames"}


def test_same_seed_same_bytes_other_seed_other_trace(tmp_path: Path) -> None:
    a = write_synthetic_snapshot(tmp_path / "a.pickle", 5).read_bytes()
    b = pickle.dumps(synthetic_snapshot(5), protocol=4)
    assert a == b
    assert pickle.dumps(synthetic_snapshot(6), protocol=4) != a


def test_every_field_action_state_and_segment_type_appears() -> None:
    seen_actions: set[str] = set()
    seen_states: set[str] = set()
    seen_types: set[str] = set()
    seen_streams: set[int] = set()
    for kw in ({}, {"expandable_segments": True}):
        d: Any = synthetic_snapshot(1, **kw)
        for s in d["segments"]:
            assert set(s) == SEGMENT_FIELDS
            seen_types.add(s["segment_type"])
            for b in s["blocks"]:
                assert set(b) == BLOCK_FIELDS
                seen_states.add(b["state"])
        for e in d["device_traces"][0]:
            assert ENTRY_FIELDS - {"addr", "frames"} <= set(e)
            seen_actions.add(e["action"])
            seen_streams.add(e["stream"])
        assert {"allocator_settings", "external_annotations"} <= set(d)
    assert seen_actions == set(ACTIONS)
    assert seen_states == set(BLOCK_STATES)
    assert seen_types == {"small", "large"} and seen_streams == {0, 1}


def test_expandable_segments() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(2, expandable_segments=True))
    assert all(s.is_expandable for s in snap.segments)
    assert snap.traces[0].count("segment_map") and snap.traces[0].count("segment_unmap")
    assert snap.traces[0].count("segment_alloc") == 0


def test_ring_overflow_leaves_frees_without_allocs() -> None:
    full = load_torch_snapshot(synthetic_snapshot(0))
    ring = load_torch_snapshot(synthetic_snapshot(0, ring_capacity=1000))
    assert len(ring.traces[0]) == 1000 and len(full.traces[0]) > 1000
    assert len(pair_trace(full.traces[0]).orphan_completed) == 0
    assert len(pair_trace(ring.traces[0]).orphan_completed) > 0  # allocated before the ring's window
    assert [s.address for s in ring.segments] == [s.address for s in full.segments]


def test_oom_entries_come_from_the_allocator_rules() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(0))
    trace = snap.traces[0]
    ooms = trace.indices("oom")
    assert ooms.size >= 1
    assert all(0 <= trace.addr[i] < 112 << 20 for i in ooms)  # device_free under the capacity


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="legacy"):
        synthetic_snapshot(0, legacy="old")
    for kw in ({"steps": 0}, {"capacity": 10}, {"num_requests": True}):
        with pytest.raises(ValueError, match=next(iter(kw))):
            synthetic_snapshot(0, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ops\[0\]"):
        run_program([("malloc", "a", 1)])


def test_max_entries_stops_early() -> None:
    d: Any = synthetic_snapshot(0, steps=10_000, max_entries=3000)
    assert 3000 <= len(d["device_traces"][0]) < 3100
