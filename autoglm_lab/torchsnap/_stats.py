"""Where the memory went: per-segment and total accounting, fragmentation, sizes and call sites.

Definitions (bytes; per segment and in total):

- reserved: segment sizes (what ``cudaMalloc`` handed to torch);
- allocated: blocks in use by tensors; active: allocated plus blocks whose free waits on a stream;
- requested: what the active blocks' allocations asked for;
- internal waste: active - requested (rounding to 512 B, and remainders too small to split off);
  internal fragmentation = internal waste / active;
- free: reserved - active (cached, reusable blocks); external fragmentation = 1 - largest free
  block / free (as the pool defines it: 0 when all free memory is one block);
- fragmentation ratio = 1 - peak active / peak reserved over the trace (GMLake, and PyTorch's own
  memory planning, report this): the share of the memory torch held at its peak that held nothing.

Conservation checks (`SnapshotStats.checks`): reserved = active + free per segment and in total;
the trace's segment events account for the reserved bytes at the end; the allocations live at the
end of the trace are the snapshot's active blocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ._schema import Action, Frame, TorchSegment, TorchSnapshot
from ._timeline import Timeline, timeline

__all__ = ["SegmentStats", "SnapshotStats", "CallSite", "snapshot_stats", "segment_stats", "call_site_label"]


@dataclass(frozen=True)
class SegmentStats:
    address: int
    stream: int
    segment_type: str
    is_expandable: bool
    reserved: int
    allocated: int
    active: int
    requested: int
    free: int
    largest_free: int
    free_blocks: int
    blocks: int

    @property
    def internal_waste(self) -> int:
        return self.active - self.requested

    @property
    def internal_fragmentation(self) -> float:
        return self.internal_waste / self.active if self.active else 0.0

    @property
    def external_fragmentation(self) -> float:
        return 1.0 - self.largest_free / self.free if self.free else 0.0


def segment_stats(seg: TorchSegment) -> SegmentStats:
    free_sizes = [b.size for b in seg.blocks if b.state == "inactive"]
    return SegmentStats(address=seg.address, stream=seg.stream, segment_type=seg.segment_type,
                        is_expandable=seg.is_expandable, reserved=seg.total_size, allocated=seg.allocated_size,
                        active=seg.active_size, requested=seg.requested_size, free=sum(free_sizes),
                        largest_free=max(free_sizes, default=0), free_blocks=len(free_sizes), blocks=len(seg.blocks))


@dataclass(frozen=True)
class CallSite:
    label: str          # file:line:function of the first frame outside torch and Python internals
    allocs: int
    bytes: int          # requested bytes allocated from here during the trace


_INTERNAL = ("torch/", "<frozen", "site-packages/", "dist-packages/", "unwind::", "CapturedTraceback",
             "PyEval_", "PyObject_", "_PyFunction", "ceval", "pythonrun", "python3.")


def call_site_label(frames: tuple[Frame, ...]) -> str:
    """The frame that best says who allocated: the first outside torch, libraries and Python itself."""
    if not frames:
        return "<no stack recorded>"
    for f in frames:
        if not any(p in f.filename or p in f.name for p in _INTERNAL):
            return f.label()
    return frames[0].label()


@dataclass(frozen=True)
class SnapshotStats:
    device: int
    segments: tuple[SegmentStats, ...]
    total: SegmentStats                 # summed (address -1; largest_free: the largest of all)
    peak_active: int                    # over the trace (512 B-rounded sizes); the end state if no trace
    peak_reserved: int
    fragmentation_ratio: float          # 1 - peak_active / peak_reserved
    trace_entries: int
    counts: Mapping[str, int]           # entries per action
    histogram_edges: np.ndarray         # allocation sizes: bins [edges[i], edges[i+1]) in bytes
    histogram_counts: np.ndarray
    histogram_bytes: np.ndarray
    top_sites: tuple[CallSite, ...]
    checks: Mapping[str, bool]
    notes: tuple[str, ...] = field(default=())

    @property
    def oom_count(self) -> int:
        return int(self.counts.get("oom", 0))


def snapshot_stats(snapshot: TorchSnapshot, device: int, *, tl: Timeline | None = None, top: int = 10
                   ) -> SnapshotStats:
    segs = tuple(segment_stats(s) for s in snapshot.segments_of(device))
    total = SegmentStats(address=-1, stream=-1, segment_type="all", is_expandable=any(s.is_expandable for s in segs),
                         reserved=sum(s.reserved for s in segs), allocated=sum(s.allocated for s in segs),
                         active=sum(s.active for s in segs), requested=sum(s.requested for s in segs),
                         free=sum(s.free for s in segs), largest_free=max((s.largest_free for s in segs), default=0),
                         free_blocks=sum(s.free_blocks for s in segs), blocks=sum(s.blocks for s in segs))
    trace = snapshot.trace_of(device)
    checks = {"reserved == active + free (every segment)": all(s.reserved == s.active + s.free for s in segs)}
    notes: list[str] = []
    if trace is not None and len(trace):
        tl = tl or timeline(snapshot, device)
        peak_active = max(tl.peak_active, total.active)
        peak_reserved = max(tl.peak_reserved, total.reserved)
        act, size = trace.action, trace.size
        counts = {a.name.lower(): int(n) for a, n in zip(Action, np.bincount(act, minlength=len(Action)),
                                                          strict=True) if n}
        alloc_sizes = size[act == Action.ALLOC]
        checks["segment events account for the reserved bytes"] = (
            tl.initial.reserved_bytes == int(tl.reserved[0] - _seg_delta(trace, 0)) and tl.initial.reserved_bytes >= 0)
        live_end = {int(a) for a in trace.addr[tl.pairing.live_at_end].tolist()}
        active_end = {b.address for s in snapshot.segments_of(device) for b in s.blocks if b.state != "inactive"}
        checks["allocations live at the end are the active blocks"] = live_end <= active_end
        if tl.pairing.repeated_allocs or tl.pairing.repeated_frees:
            notes.append(f"{tl.pairing.repeated_allocs} alloc(s) at a live address and {tl.pairing.repeated_frees} "
                         f"repeated free(s): the trace is not consistent there")
        notes.extend(tl.initial.notes)
        sites = _top_sites(trace, top)
    else:
        peak_active, peak_reserved = total.active, total.reserved
        counts = {}
        alloc_sizes = np.array([b.requested_size for s in snapshot.segments_of(device) for b in s.blocks
                                if b.state != "inactive"], dtype=np.int64)
        sites = ()
        notes.append("no trace: peaks, sizes and call sites are those of the blocks active at the end")
    edges, hist_n, hist_b = _histogram(alloc_sizes)
    return SnapshotStats(device=device, segments=segs, total=total, peak_active=peak_active,
                         peak_reserved=peak_reserved,
                         fragmentation_ratio=1.0 - peak_active / peak_reserved if peak_reserved else 0.0,
                         trace_entries=len(trace) if trace is not None else 0, counts=counts, histogram_edges=edges,
                         histogram_counts=hist_n, histogram_bytes=hist_b, top_sites=sites, checks=checks,
                         notes=tuple(notes))


def _seg_delta(trace: object, i: int) -> int:
    act = trace.action[i]  # type: ignore[attr-defined]
    size = int(trace.size[i])  # type: ignore[attr-defined]
    if act in (Action.SEGMENT_ALLOC, Action.SEGMENT_MAP):
        return size
    if act in (Action.SEGMENT_FREE, Action.SEGMENT_UNMAP):
        return -size
    return 0


def _histogram(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power-of-two bins from 512 B (the first holds everything smaller) to the largest size."""
    top = int(sizes.max(initial=512))
    k = max(10, int(np.ceil(np.log2(max(top, 1) + 1))))
    edges = np.concatenate(([0], 2 ** np.arange(10, k + 1, dtype=np.int64)))
    which = np.searchsorted(edges, sizes, side="right") - 1
    counts = np.bincount(which, minlength=len(edges) - 1)[: len(edges) - 1]
    nbytes = np.bincount(which, weights=sizes, minlength=len(edges) - 1)[: len(edges) - 1].astype(np.int64)
    return edges, counts.astype(np.int64), nbytes


def _top_sites(trace: object, top: int) -> tuple[CallSite, ...]:
    act = trace.action  # type: ignore[attr-defined]
    fid = trace.frame_id[act == Action.ALLOC]  # type: ignore[attr-defined]
    size = trace.size[act == Action.ALLOC]  # type: ignore[attr-defined]
    table = trace.frames  # type: ignore[attr-defined]
    shift = fid + 1  # -1 (no stack) -> bin 0
    n = np.bincount(shift, minlength=len(table) + 1)
    b = np.bincount(shift, weights=size, minlength=len(table) + 1)
    by_label: dict[str, list[int]] = {}
    for k in np.flatnonzero(n).tolist():
        label = call_site_label(table[k - 1]) if k else "<no stack recorded>"
        acc = by_label.setdefault(label, [0, 0])
        acc[0] += int(n[k])
        acc[1] += int(b[k])
    ranked = sorted(by_label.items(), key=lambda kv: (-kv[1][1], kv[0]))[:top]
    return tuple(CallSite(label, c, nb) for label, (c, nb) in ranked)
