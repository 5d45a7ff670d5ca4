"""Replays: the allocator model reproduces torch's OOMs; paged pools answer each one; both backends agree."""

from __future__ import annotations

from typing import Any

import pytest

from autoglm_lab.pool import PoolConfig
from autoglm_lab.torchsnap import (
    _replay,
    analyze,
    device_capacity,
    load_torch_snapshot,
    replay_pool,
    replay_torch,
    run_program,
    synthetic_snapshot,
    timeline,
)

M = 1 << 20


@pytest.mark.parametrize("kwargs", [{"seed": 0}, {"seed": 1}, {"seed": 3}, {"seed": 1, "capacity": 96 * M},
                                    {"seed": 2, "expandable_segments": True}, {"seed": 0, "ring_capacity": 3000}],
                         ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_the_model_reproduces_every_oom_of_the_synthetic_snapshots(kwargs: dict[str, Any]) -> None:
    snap = load_torch_snapshot(synthetic_snapshot(**kwargs))
    rep = replay_torch(snap)
    ooms = snap.traces[0].indices("oom").tolist()
    assert ooms, "each of these snapshots has OOMs"
    assert all(rep.states[i].check.fails for i in ooms)
    assert rep.num_anomalies == 0 and rep.ends_in_snapshot_state
    if "ring_capacity" not in kwargs:  # a full trace: every allocation where torch put it
        assert rep.same_address == rep.allocs
    else:
        assert rep.same_address_ratio > 0.99


def _fragmented() -> Any:
    # four 2 MiB tensors in one 20 MiB segment, two freed: 36 MiB asked with 20 MiB free on the device
    return load_torch_snapshot(run_program(
        [("alloc", "a", 2 * M), ("alloc", "b", 2 * M), ("alloc", "c", 2 * M), ("alloc", "d", 2 * M),
         ("free", "b"), ("free", "d"), ("alloc", "big", 36 * M)], capacity=40 * M))


def test_a_fragmentation_oom_that_only_compaction_serves() -> None:
    snap = _fragmented()
    res = analyze(snap)
    (v,) = res.ooms
    assert v.requested_bytes == 36 * M and v.device_free_bytes == 20 * M
    assert v.torch.free_cached_bytes == 16 * M and v.torch.check.largest_free_block == 14 * M
    assert v.torch.check.segment_bytes == 36 * M and v.cause == "fragmentation" and v.model_reproduces
    assert res.capacity_bytes == 40 * M
    (off_label, off), (on_label, on) = v.paged
    assert "compaction off" in off_label and "compaction lazy" in on_label
    assert not off.served and off.free_bytes == 36 * M and off.largest_free_run_bytes == 34 * M
    assert on.served and on.compacted and on.bytes_moved == 2 * M  # block c moves into b's page
    assert on.pause_estimate_s == pytest.approx(2 * M / 1e12)
    assert v.summary().endswith("compaction lazy two_finger: served after compaction moved 2.00 MiB (~2.1 us of "
                                "copying)")


def test_a_capacity_oom_nobody_serves() -> None:
    snap = load_torch_snapshot(run_program([("alloc", "a", 30 * M), ("alloc", "b", 20 * M)], capacity=40 * M))
    (v,) = analyze(snap).ooms
    assert v.cause == "capacity" and v.total_free_bytes == 10 * M
    assert [o.served for _, o in v.paged] == [False, False]


def test_segment_rounding_oom() -> None:
    # 24 MiB reserved of 40: a 1.5 MiB request needs a 20 MiB segment; 16 MiB are free on the device
    snap = load_torch_snapshot(run_program([("alloc", "a", 24 * M), ("alloc", "b", M + M // 2)], capacity=40 * M))
    (v,) = analyze(snap).ooms
    assert v.cause == "segment rounding" and v.torch.check.segment_bytes == 20 * M and v.device_free_bytes == 16 * M
    assert all(o.served and not o.compacted for _, o in v.paged)


def test_the_peak_is_judged_too() -> None:
    snap = _fragmented()
    res = analyze(snap)
    peak = res.peak
    assert peak is not None and peak.index == res.timeline.peak_index
    assert peak.kind == "peak" and peak.requested_bytes == 2 * M and peak.torch.active_bytes == 6 * M
    assert all(o.served for _, o in peak.paged)


def test_cpu_backend_agrees_with_meta(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = load_torch_snapshot(synthetic_snapshot(1, capacity=96 * M))
    cfg = PoolConfig(page_size="1MiB", memory_pool_initial_size="1MiB", max_size=None, device="cpu",
                     compaction="lazy", max_consecutive_failures=1)
    monkeypatch.setattr(_replay, "CPU_BACKEND_BYTES", 8 * M)  # force scaling: 80 MiB / 16
    meta = replay_pool(snap, config=cfg, capacity=80 * M, backend="meta")
    cpu = replay_pool(snap, config=cfg, capacity=80 * M, backend="cpu")
    assert meta.backend == "meta" and cpu.backend == "cpu/16"
    assert meta.failed_allocs == cpu.failed_allocs and meta.compactions == cpu.compactions > 0
    assert meta.bytes_moved == cpu.bytes_moved > 0 and meta.peak_used_bytes == cpu.peak_used_bytes
    assert {i: (o.served, o.bytes_moved, o.largest_free_run_bytes) for i, o in meta.outcomes.items()} == \
        {i: (o.served, o.bytes_moved, o.largest_free_run_bytes) for i, o in cpu.outcomes.items()}


def test_compaction_lowers_the_capacity_that_suffices() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(1, capacity=96 * M))
    off = replay_pool(snap, config={"page_size": "1MiB", "compaction": "off"}, capacity=80 * M)
    on = replay_pool(snap, config={"page_size": "1MiB", "compaction": "lazy", "max_consecutive_failures": 1},
                     capacity=80 * M)
    assert on.failed_allocs < off.failed_allocs and on.bytes_moved > 0 and off.bytes_moved == 0


def test_any_pool_configuration_replays() -> None:
    snap = load_torch_snapshot(synthetic_snapshot(3))
    cfg = {"page_size": "64KiB", "fit": "first", "coalesce": "lazy", "compaction": "eager",
           "compaction_strategy": "sliding", "compaction_budget_bytes": "4MiB"}
    rep = replay_pool(snap, config=cfg)
    assert rep.config.fit == "first" and rep.config.coalesce == "lazy" and rep.config.page_size == 64 << 10
    assert set(rep.outcomes) == set(snap.traces[0].indices("oom").tolist()) | {timeline(snap, 0).peak_index}
    assert rep.capacity_bytes == device_capacity(snap, 0) and not rep.notes


def test_bad_arguments_are_named() -> None:
    snap = _fragmented()
    for kwargs, match in (({"backend": "gpu"}, "backend"), ({"bandwidth": -1.0}, "bandwidth"),
                          ({"capacity": 1000}, "less than one"), ({"config": 3}, "config must be"),
                          ({"device": 4}, r"device=4 is not in the snapshot")):
        with pytest.raises(ValueError, match=match):
            replay_pool(snap, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="page_size"):
        analyze(snap, page_size="3MiB")


def test_a_snapshot_made_from_profiler_events_on_the_cpu() -> None:
    """torch has no public way to turn profiler memory events into a snapshot; its own viewer uses the
    private ``torch.cuda._memory_viz._profile_to_snapshot``, which this test uses while it exists."""
    torch = pytest.importorskip("torch")
    try:
        from torch.cuda._memory_viz import _profile_to_snapshot
        from torch.profiler import ProfilerActivity, profile
    except ImportError as exc:  # pragma: no cover - depends on the torch version
        pytest.skip(f"this torch cannot build a snapshot from profiler events: {exc}")
    lin = torch.nn.Linear(64, 128)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        for _ in range(2):
            lin(torch.randn(32, 64)).relu().sum().backward()
    snap = load_torch_snapshot(_profile_to_snapshot(prof))
    res = analyze(snap)
    assert res.stats.trace_entries > 0 and res.stats.counts["alloc"] > 0
    # CPU addresses, not torch's caching allocator: the model says it cannot follow
    assert res.torch.notes and ("profiler" in res.torch.notes[0] or "unreliable" in res.torch.notes[0])
    # (whether a paged pool of the heuristic capacity serves every CPU allocation depends on the
    # profiler's timing and the host allocator's addresses: not asserted)
    assert not res.ooms
