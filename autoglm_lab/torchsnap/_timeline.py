"""What a trace says over time: alloc/free pairs, the state before its first entry, bytes per entry.

The snapshot's segments are the state at the *end*; the trace is a ring buffer of the last entries.
Pairing is by address, in order (as torch's memory_viz does): a ``free_completed`` closes the latest
``alloc`` at its address. A free with no alloc before it is an allocation made before the trace
began (the ring overflowed, or history was switched on late); so is a block still active at the end
that no traced alloc made. Segments at the start are those at the end, with the trace's segment
events undone backwards. All of it is numpy work on the columns, except the (few) segment events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._schema import KMIN_BLOCK, SMALL_BUFFER, Action, TorchSnapshot, Trace

__all__ = ["Pairing", "InitialState", "Timeline", "pair_trace", "initial_state", "timeline", "round_sizes"]

_A = int(Action.ALLOC)
_FR = int(Action.FREE_REQUESTED)
_FC = int(Action.FREE_COMPLETED)
_SA = int(Action.SEGMENT_ALLOC)
_SF = int(Action.SEGMENT_FREE)
_SM = int(Action.SEGMENT_MAP)
_SU = int(Action.SEGMENT_UNMAP)


def round_sizes(size: np.ndarray) -> np.ndarray:
    """Vectorised `round_size`: up to a multiple of 512 B, at least 512 B."""
    return np.asarray(np.maximum(KMIN_BLOCK, -(-size // KMIN_BLOCK) * KMIN_BLOCK), dtype=np.int64)


@dataclass(frozen=True)
class Pairing:
    """close_of[i]: for an alloc, the index of the free_completed that ends it (-1: live at the end);
    open_of[i]: for a free (requested or completed), its alloc's index (-1: allocated before the trace).
    repeated_allocs: allocs at an address that was already live (a trace the model cannot trust there)."""

    close_of: np.ndarray
    open_of: np.ndarray
    orphan_completed: np.ndarray   # indices of free_completed with no alloc: allocated before the trace
    orphan_requested: np.ndarray   # free_requested with no alloc
    live_at_end: np.ndarray        # indices of allocs never completed
    repeated_allocs: int
    repeated_frees: int


def _pair(action: np.ndarray, addr: np.ndarray, close_code: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray, int, int]:
    idx = np.flatnonzero((action == _A) | (action == close_code))
    n = len(action)
    open_of = np.full(n, -1, dtype=np.int64)
    close_of = np.full(n, -1, dtype=np.int64)
    if idx.size == 0:
        return open_of, close_of, idx, idx, 0, 0
    a = addr[idx]
    order = np.lexsort((idx, a))
    s_idx, s_a, s_open = idx[order], a[order], action[idx][order] == _A
    same_prev = np.zeros(idx.size, dtype=bool)
    same_prev[1:] = s_a[1:] == s_a[:-1]
    prev_open = np.zeros(idx.size, dtype=bool)
    prev_open[1:] = s_open[:-1]
    paired = ~s_open & same_prev & prev_open
    where = np.flatnonzero(paired)
    open_of[s_idx[where]] = s_idx[where - 1]
    close_of[s_idx[where - 1]] = s_idx[where]
    orphans = np.sort(s_idx[~s_open & ~paired])
    last = np.ones(idx.size, dtype=bool)
    last[:-1] = s_a[:-1] != s_a[1:]
    live = np.sort(s_idx[s_open & last])
    repeated_allocs = int(np.count_nonzero(s_open & same_prev & prev_open))
    repeated_frees = int(np.count_nonzero(~s_open & ~paired & same_prev))
    return open_of, close_of, orphans, live, repeated_allocs, repeated_frees


def pair_trace(trace: Trace) -> Pairing:
    open_c, close_of, orphan_c, live, rep_a, rep_f = _pair(trace.action, trace.addr, _FC)
    open_r, _close_r, orphan_r, _live_r, _ra, rep_fr = _pair(trace.action, trace.addr, _FR)
    open_of = np.where(open_c >= 0, open_c, open_r)
    return Pairing(close_of=close_of, open_of=open_of, orphan_completed=orphan_c, orphan_requested=orphan_r,
                   live_at_end=live, repeated_allocs=rep_a, repeated_frees=rep_f + rep_fr)


@dataclass(frozen=True)
class SegmentRange:
    address: int
    size: int
    stream: int
    large: bool
    expandable: bool


@dataclass(frozen=True)
class PreAllocation:
    """An allocation that existed before the trace's first entry."""

    address: int
    requested: int
    pending: bool          # its free was already requested (stream-ordered), not yet completed
    completed_at: int      # index of the free_completed that ends it, -1 if still active at the end
    frame_id: int = -1
    block_size: int | None = None  # known when it is a block of the snapshot


@dataclass(frozen=True)
class InitialState:
    segments: tuple[SegmentRange, ...]
    allocations: tuple[PreAllocation, ...]
    reserved_bytes: int
    notes: tuple[str, ...] = ()


def _remove_range(ranges: dict[int, list[object]], addr: int, size: int, notes: list[str], what: str) -> None:
    for start in sorted(ranges):
        r = ranges[start]
        rsize = int(r[1])  # type: ignore[call-overload]
        if start <= addr and addr + size <= start + rsize:
            del ranges[start]
            if addr > start:
                ranges[start] = [start, addr - start, *r[2:]]
            if addr + size < start + rsize:
                ranges[addr + size] = [addr + size, start + rsize - addr - size, *r[2:]]
            return
    notes.append(f"{what} at {addr:#x} (+{size}) is not inside a segment of the snapshot")


def initial_state(snapshot: TorchSnapshot, device: int, pairing: Pairing | None = None) -> InitialState:
    """The segments and live allocations when the device's trace began (see the module docstring)."""
    trace = snapshot.trace_of(device)
    segments = snapshot.segments_of(device)
    ranges: dict[int, list[object]] = {
        s.address: [s.address, s.total_size, s.stream, s.segment_type == "large", s.is_expandable] for s in segments}
    notes: list[str] = []
    end_live = {}
    for s in segments:
        for b in s.blocks:
            if b.state != "inactive":
                end_live[b.address] = b
    if trace is None or len(trace) == 0:
        allocs = tuple(PreAllocation(b.address, b.requested_size, b.state == "active_pending_free", -1,
                                     block_size=b.size) for b in end_live.values())
        return InitialState(tuple(SegmentRange(*r) for r in ranges.values()),  # type: ignore[arg-type]
                            tuple(sorted(allocs, key=lambda p: p.address)), sum(s.total_size for s in segments))
    pairing = pairing or pair_trace(trace)
    act, addr, size, stream = trace.action, trace.addr, trace.size, trace.stream
    seg_events = np.flatnonzero((act >= _SA) & (act <= _SU))
    for i in seg_events[::-1].tolist():
        c, a, n, st = int(act[i]), int(addr[i]), int(size[i]), int(stream[i])
        if c == _SA:
            if a in ranges and ranges[a][1] == n:
                del ranges[a]
            else:
                _remove_range(ranges, a, n, notes, "segment_alloc")
        elif c == _SM:
            _remove_range(ranges, a, n, notes, "segment_map")
        elif c == _SF:
            ranges[a] = [a, n, st, n != SMALL_BUFFER, False]
        else:  # unmap: the range comes back, joined to an expandable neighbour
            prev = next((r for r in ranges.values() if int(r[0]) + int(r[1]) == a and r[4]), None)  # type: ignore[call-overload]
            if prev is not None:
                prev[1] = int(prev[1]) + n  # type: ignore[call-overload]
            else:
                prev = ranges[a] = [a, n, st, n % (20 << 20) == 0, True]
            nxt = ranges.get(a + n)
            if nxt is not None and nxt[4]:
                del ranges[a + n]
                prev[1] = int(prev[1]) + int(nxt[1])  # type: ignore[call-overload]
    # live at the start: frees of earlier allocations, and blocks active at the end no traced alloc made
    requested_before = {int(addr[i]) for i in pairing.orphan_requested.tolist()}
    pre: dict[int, PreAllocation] = {}
    for i in pairing.orphan_completed.tolist():
        a = int(addr[i])
        if a not in pre:
            pre[a] = PreAllocation(a, int(size[i]), a not in requested_before, i, int(trace.frame_id[i]))
    live_traced = {int(addr[i]) for i in pairing.live_at_end.tolist()}
    for a, b in end_live.items():
        if a not in live_traced and a not in pre:
            pending = b.state == "active_pending_free" and a not in requested_before
            pre[a] = PreAllocation(a, b.requested_size, pending, -1, block_size=b.size)
    missing = live_traced - set(end_live)
    if missing:
        notes.append(f"{len(missing)} traced allocation(s) live at the end are not active blocks of the snapshot")
    segs = tuple(SegmentRange(int(r[0]), int(r[1]), int(r[2]), bool(r[3]), bool(r[4]))  # type: ignore[call-overload]
                 for _, r in sorted(ranges.items()))
    return InitialState(segs, tuple(sorted(pre.values(), key=lambda p: p.address)),
                        sum(s.size for s in segs), tuple(notes))


@dataclass(frozen=True)
class Timeline:
    """Bytes after each trace entry (int64 columns as long as the trace).

    reserved: segment bytes (exact: from the segment events). active: allocations not yet
    completed, each counted at its 512 B-rounded size (torch may hand out a larger block when the
    remainder is too small to split: those bytes count as free here). allocated: the same until
    free_requested."""

    reserved: np.ndarray
    active: np.ndarray
    allocated: np.ndarray
    initial: InitialState
    pairing: Pairing

    @property
    def peak_reserved(self) -> int:
        return int(max(self.reserved.max(initial=0), self.initial.reserved_bytes))

    @property
    def peak_active(self) -> int:
        return int(self.active.max(initial=0))

    @property
    def peak_index(self) -> int:
        """The first entry at which active bytes peak (-1 for an empty trace)."""
        return int(np.argmax(self.active)) if self.active.size else -1


def timeline(snapshot: TorchSnapshot, device: int) -> Timeline:
    trace = snapshot.trace_of(device)
    if trace is None:
        empty = np.zeros(0, dtype=np.int64)
        init = initial_state(snapshot, device)
        return Timeline(empty, empty, empty, init, Pairing(empty, empty, empty, empty, empty, 0, 0))
    pairing = pair_trace(trace)
    init = initial_state(snapshot, device, pairing)
    act, size = trace.action, trace.size
    rounded = round_sizes(size)
    seg_delta = np.where((act == _SA) | (act == _SM), size, 0) - np.where((act == _SF) | (act == _SU), size, 0)
    end_reserved = sum(s.total_size for s in snapshot.segments_of(device))
    reserved = end_reserved - int(seg_delta.sum()) + np.cumsum(seg_delta)
    start_active = sum(int(round_sizes(np.array([p.requested]))[0]) for p in init.allocations)
    start_allocated = sum(int(round_sizes(np.array([p.requested]))[0]) for p in init.allocations if not p.pending)
    d_active = np.where(act == _A, rounded, 0) - np.where(act == _FC, rounded, 0)
    d_alloc = np.where(act == _A, rounded, 0) - np.where(act == _FR, rounded, 0)
    return Timeline(reserved=reserved.astype(np.int64), active=start_active + np.cumsum(d_active),
                    allocated=start_allocated + np.cumsum(d_alloc), initial=init, pairing=pairing)
