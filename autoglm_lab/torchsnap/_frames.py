"""`replay_frames`: a loaded snapshot's trace replayed frame by frame, for a time slider.

The trace is replayed once into the caching-allocator model and once into a `PagedPool` (the same
stepping cores as `replay_torch` and `replay_pool`: their results come with the frames, equal to
theirs), and both are recorded as `PoolSnapshot`s at chosen entries: about ``frames`` evenly spaced
ones, every ``oom`` entry and the peaks. A view that draws a pool's snapshot (page map, heatmap)
draws the torch model's too, side by side with the paged pool's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..pool import SNAPSHOT_VERSION, PoolConfig, PoolSnapshot, PoolStats, parse_size
from ._model import CachingAllocatorModel
from ._replay import (
    DEFAULT_BANDWIDTH,
    PoolReplay,
    PoolStepper,
    TorchReplay,
    TorchStepper,
    pick_device,
    pool_configs,
    run_pool,
    run_torch,
)
from ._schema import KMIN_BLOCK, Action, TorchSnapshot, Trace
from ._timeline import timeline

__all__ = ["ReplayFrames", "replay_frames", "TORCH_LABEL"]

TORCH_LABEL = "torch caching allocator (model)"
_A, _FC, _OOM = int(Action.ALLOC), int(Action.FREE_COMPLETED), int(Action.OOM)
_SA, _SF, _SM, _SU = (int(Action.SEGMENT_ALLOC), int(Action.SEGMENT_FREE), int(Action.SEGMENT_MAP),
                      int(Action.SEGMENT_UNMAP))


@dataclass(frozen=True)
class ReplayFrames:
    """Both replays of one device's trace, recorded at the same entries (frame ``f`` of every array
    and tuple is taken just after entry ``entry_index[f]`` has been applied).

    Per frame (arrays as long as ``entry_index``; the counts are of the entries since the previous
    frame, ``(entry_index[f - 1], entry_index[f]]``, from the first entry for frame 0):

    entry_index        int64: the trace entry after which the frame is taken (ascending, distinct);
                       ``[-1]`` for a snapshot without trace entries (its one frame: the snapshot's state)
    time_s             float64: that entry's ``time_us`` in seconds since the trace's first timed entry
                       (an entry without a time takes the last time before it; 0 before any)
    torch              the caching-allocator model's state as a `PoolSnapshot` of ``granularity``-byte
                       pages (see `replay_frames` for how blocks become pages)
    paged              the `PagedPool`'s own `pool.snapshot()` (``time_s`` and ``block_created_s`` set to
                       trace time; its event ring left out: the arrays below are the latency signals)
    torch_segment_allocs  int64: ``segment_alloc`` + ``segment_map`` entries: torch's cudaMalloc calls
                       (each one a slow driver call, the allocator's latency cost)
    torch_segment_frees   int64: ``segment_free`` + ``segment_unmap`` entries: its cudaFree calls
    torch_flushes      int64: runs of consecutive segment frees: ``release_cached_blocks`` calls (an
                       ``empty_cache()``, or an allocation that failed to cudaMalloc flushing the cache to
                       retry: the trace does not say which)
    torch_ooms         int64: ``oom`` entries
    paged_failed_allocs   int64: allocations torch served that the paged pool could not (they sum to
                       ``paged_replay.failed_allocs``)
    paged_compactions  int64: compactions the pool ran
    paged_bytes_moved  int64: bytes its compactions moved (they sum to ``paged_replay.bytes_moved``)
    paged_pause_s      float64: the modelled pause, ``paged_bytes_moved / bandwidth``

    And: ``oom_frames`` (int64 positions into the frame arrays of the ``oom`` entries, in trace
    order), ``peak_frame`` (the frame of `Timeline.peak_index`, the first entry where active bytes
    peak, which `analyze` judges as "peak"; -1 without trace), ``peak_reserved_frame`` (the first entry
    where reserved bytes peak), ``torch_label`` / ``paged_label`` (for legends), ``torch_replay`` /
    ``paged_replay`` (the runs' results: what `replay_torch` and `replay_pool` return),
    ``granularity``, ``capacity_bytes`` (the paged pool's), ``bandwidth``, ``device``, ``seconds``.
    """

    device: int
    granularity: int
    entry_index: np.ndarray
    time_s: np.ndarray
    torch: tuple[PoolSnapshot, ...]
    paged: tuple[PoolSnapshot, ...]
    oom_frames: np.ndarray
    peak_frame: int
    peak_reserved_frame: int
    torch_label: str
    paged_label: str
    torch_segment_allocs: np.ndarray
    torch_segment_frees: np.ndarray
    torch_flushes: np.ndarray
    torch_ooms: np.ndarray
    paged_failed_allocs: np.ndarray
    paged_compactions: np.ndarray
    paged_bytes_moved: np.ndarray
    paged_pause_s: np.ndarray
    torch_replay: TorchReplay
    paged_replay: PoolReplay
    capacity_bytes: int
    bandwidth: float
    seconds: float

    def __len__(self) -> int:
        return int(self.entry_index.shape[0])


def _check_args(frames: int, granularity: int | str) -> int:
    if isinstance(frames, bool) or not isinstance(frames, int | np.integer) or frames < 1:
        raise ValueError(f"frames={frames!r} is not allowed: give the number of evenly spaced frames, an int >= 1")
    g = parse_size(granularity, name="granularity")
    if g < KMIN_BLOCK or g % KMIN_BLOCK:
        raise ValueError(f"granularity={granularity!r} is not allowed: a page size that is a positive multiple of "
                         f"{KMIN_BLOCK} bytes (torch's block unit), e.g. '2MiB'")
    return g


def _frame_entries(trace: Trace | None, frames: int, peaks: tuple[int, ...]) -> np.ndarray:
    """``frames`` evenly spaced entries ending at the last one, every oom entry and the peaks."""
    if trace is None or len(trace) == 0:
        return np.array([-1], dtype=np.int64)
    n = len(trace)
    k = min(frames, n)
    even = np.arange(1, k + 1, dtype=np.int64) * n // k - 1  # the last entry of each k-th of the trace
    extra = np.array([p for p in peaks if 0 <= p < n], dtype=np.int64)
    return np.unique(np.concatenate((even, trace.indices(Action.OOM).astype(np.int64), extra)))


def _entry_times(trace: Trace | None) -> np.ndarray:
    """Seconds since the first timed entry, per entry; untimed entries take the last time before them."""
    if trace is None or len(trace) == 0:
        return np.zeros(0, dtype=np.float64)
    t = trace.time_us
    timed = t >= 0
    if not timed.any():
        return np.zeros(len(t), dtype=np.float64)
    last = np.maximum.accumulate(np.where(timed, np.arange(len(t)), -1))
    out = (t[np.maximum(last, 0)] - t[int(np.argmax(timed))]) / 1e6
    return np.where(last >= 0, out, 0.0).astype(np.float64)


def _interval_counts(mask: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Per frame: True entries of ``mask`` in (previous frame's entry, this frame's entry]."""
    if mask.size == 0:
        return np.zeros(entries.shape[0], dtype=np.int64)
    upto = np.cumsum(mask, dtype=np.int64)[np.maximum(entries, 0)] * (entries >= 0)
    return np.diff(upto, prepend=0).astype(np.int64)


class _AllocTimes:
    """When the block at an address was allocated, as of an entry: the time of the last ``alloc`` at
    that address up to the entry (0.0 for a block from before the trace)."""

    def __init__(self, trace: Trace | None, times: np.ndarray) -> None:
        self.times = times
        idx = np.flatnonzero(trace.action == _A) if trace is not None else np.zeros(0, dtype=np.int64)
        addr = trace.addr[idx] if trace is not None else np.zeros(0, dtype=np.int64)
        order = np.lexsort((idx, addr))
        self.idx = idx[order]
        self.addrs, rank = np.unique(addr[order], return_inverse=True)
        self.stride = len(times) + 1
        self.key = rank.astype(np.int64) * self.stride + self.idx  # ascending: by address, then entry

    def at(self, addrs: np.ndarray, entry: int) -> np.ndarray:
        out = np.zeros(addrs.shape[0], dtype=np.float64)
        if not self.key.size or not addrs.size:
            return out
        r = np.minimum(np.searchsorted(self.addrs, addrs), self.addrs.size - 1)
        p = np.searchsorted(self.key, r * self.stride + entry, side="right") - 1
        ok = (self.addrs[r] == addrs) & (p >= 0) & (self.key[np.maximum(p, 0)] // self.stride == r)
        out[ok] = self.times[self.idx[p[ok]]]
        return out


def _model_snapshot(model: CachingAllocatorModel, granularity: int, *, seq: int = 0, time_s: float = 0.0,
                    device: str = "cuda", num_allocs: int = 0, num_frees: int = 0, failed_allocations: int = 0,
                    created_of: Callable[[np.ndarray], np.ndarray] | None = None) -> PoolSnapshot:
    """The model's state as a `PoolSnapshot` of ``granularity``-byte pages (see `replay_frames`).
    ``created_of(addresses)``: the creation time of the active blocks at those addresses (default 0)."""
    g = granularity
    seg_first: list[int] = []
    seg_pages: list[int] = []
    b_addr: list[int] = []            # every active block, in address order
    grp_block: list[int] = []         # per group of blocks sharing pages: its first block, pages, bytes
    grp_first: list[int] = []
    grp_pages: list[int] = []
    grp_bytes: list[int] = []
    runs = largest = 0
    first = 0
    for seg in model.segments():
        if seg.size <= 0:
            continue
        n = -(-seg.size // g)
        seg_first.append(first)
        seg_pages.append(n)
        cursor = first        # the first page after the last group of this segment
        end = -1
        b = seg.head
        while b is not None:
            if b.allocated or b.pending:
                lo = first + (b.addr - seg.addr) // g
                hi = first + -(-(b.addr + b.size - seg.addr) // g)
                if lo < end:  # shares a page with the group before: one block of the snapshot
                    end = max(end, hi)
                    grp_pages[-1] = end - grp_first[-1]
                    grp_bytes[-1] += b.requested
                else:
                    if lo > cursor:
                        runs += 1
                        largest = max(largest, lo - cursor)
                    grp_block.append(len(b_addr))
                    grp_first.append(lo)
                    grp_pages.append(hi - lo)
                    grp_bytes.append(b.requested)
                    end = hi
                cursor = end
                b_addr.append(b.addr)
            b = b.next
        if first + n > cursor:
            runs += 1
            largest = max(largest, first + n - cursor)
        first += n
    num_pages = first
    addrs = np.asarray(b_addr, dtype=np.int64)
    starts = np.asarray(grp_block, dtype=np.int64)
    born = created_of(addrs) if created_of is not None else np.zeros(addrs.shape[0], dtype=np.float64)
    nblocks = len(grp_first)
    block_created = np.minimum.reduceat(born, starts) if nblocks else np.zeros(0, dtype=np.float64)
    block_pages = np.asarray(grp_pages, dtype=np.int64)
    used = int(block_pages.sum())
    free = num_pages - used
    requested = sum(grp_bytes)
    waste = used * g - requested
    stats = PoolStats(
        page_size=g, capacity_bytes=num_pages * g, used_bytes=used * g, free_bytes=free * g,
        capacity_pages=num_pages, used_pages=used, free_pages=free, requested_bytes=requested,
        internal_waste_bytes=waste, num_blocks=nblocks, pinned_blocks=0, free_runs=runs,
        largest_free_run_pages=largest, largest_free_run_bytes=largest * g,
        external_fragmentation=(1.0 - largest / free) if free else 0.0,
        internal_fragmentation=(waste / (used * g)) if used else 0.0,
        utilisation=requested / (num_pages * g) if num_pages else 0.0,
        num_segments=len(seg_first), num_allocs=num_allocs, num_frees=num_frees,
        failed_allocations=failed_allocations, consecutive_failures=0, peak_used_bytes=model.peak_active,
        compactions=0, compaction_bytes_moved=0, compaction_pages_moved=0, compaction_pause_s=0.0,
        last_compaction_reason=None)
    return PoolSnapshot(
        version=SNAPSHOT_VERSION, seq=seq, time_s=time_s, page_size=g, device=device, num_pages=num_pages,
        segment_first_page=np.asarray(seg_first, dtype=np.int64),
        segment_num_pages=np.asarray(seg_pages, dtype=np.int64),
        block_id=addrs[starts] if nblocks else np.zeros(0, dtype=np.int64),
        block_first_page=np.asarray(grp_first, dtype=np.int64), block_num_pages=block_pages,
        block_nbytes=np.asarray(grp_bytes, dtype=np.int64), block_tag=np.full(nblocks, -1, dtype=np.int32),
        block_pinned=np.zeros(nblocks, dtype=bool), block_created_s=block_created.astype(np.float64),
        block_cached=np.zeros(nblocks, dtype=bool), tags=(), stats=stats, events_total=0, event_rows=())


def replay_frames(snapshot: TorchSnapshot, device: int | None = None, *,
                  config: PoolConfig | Mapping[str, Any] | None = None, granularity: int | str = "2MiB",
                  frames: int = 300, capacity: int | str | None = None,
                  bandwidth: float = DEFAULT_BANDWIDTH) -> ReplayFrames:
    """Replay ``device``'s trace (default: the longest) into the caching-allocator model and into a
    `PagedPool`, and record both at about ``frames`` evenly spaced entries (the last one included),
    at every ``oom`` entry and at the peaks; see `ReplayFrames` for every field.

    config: the paged pool, as `replay_pool` takes it (default: what `analyze` judges with
    compaction, ``{"page_size": "2MiB", "compaction": "lazy", "max_consecutive_failures": 1}``), on
    torch's ``meta`` device (books only: any device size replays anywhere), of ``capacity`` bytes
    (default `device_capacity`). Compaction pauses are modelled as bytes moved / ``bandwidth``.

    The torch frames: the model's segments, in address order, become the snapshot's segments, each of
    ``ceil(size / granularity)`` pages, so ``num_pages`` follows reserved memory and changes from frame
    to frame as segments come and go. A page is USED when any byte of an active block (allocated, or
    freed but waiting for its stream: ``active_pending_free``) lies in it, FREE only when wholly free
    (inside cached free blocks, or past a segment's end): blocks smaller than a page are rounded *out*
    to the pages they touch, and blocks that share a page are merged into one block of the snapshot
    (its ``block_id`` the first block's address, ``block_nbytes`` the sum of their requested bytes, its
    ``block_created_s`` the oldest one's allocation time). So ``used_bytes`` is the page-rounded active
    memory (at ``granularity=512`` exactly torch's active bytes), ``requested_bytes`` the active blocks'
    requested bytes, and the TAIL page and ``internal_waste_bytes`` show torch's rounding, its unsplit
    remainders and the page rounding together. ``seq`` is the number of entries applied (equal seqs:
    equal states), ``time_s`` the trace time, ``device`` ``"cuda:N"``; no tags, pins, cached blocks or
    events. ``peak_used_bytes`` is the model's peak active bytes; ``num_allocs``, ``num_frees`` and
    ``failed_allocations`` count the trace's allocs, completed frees and OOMs so far.

    Memory is bounded by the frames (each holds its block table, O(blocks)), not by the device; time
    is one pass of each replay plus O(blocks) per frame (about 0.4 ms a frame here). Measured on a
    shared 2-core machine: the shipped snapshot (4,000 entries, 304 frames) 0.07 to 0.18 s; a synthetic
    one of 100,219 entries (``synthetic_snapshot(0, steps=4250)``, 330 frames) 0.5 to 0.8 s, 21 MiB
    at most (tracemalloc), against 0.12 to 0.37 s for `replay_torch` plus 0.05 to 0.11 s for `replay_pool`.

    Raises ValueError for ``frames < 1``, a ``granularity`` that is not a size or not a positive
    multiple of 512 bytes, and whatever `replay_pool` refuses (device, config, capacity, bandwidth).
    """
    t0 = time.perf_counter()
    g = _check_args(frames, granularity)
    device = pick_device(snapshot, device)
    tl = timeline(snapshot, device)
    trace = snapshot.trace_of(device)
    n = 0 if trace is None else len(trace)
    peak_reserved = int(np.argmax(tl.reserved)) if n else -1
    entries = _frame_entries(trace, int(frames), (tl.peak_index, peak_reserved))
    after = entries.tolist()  # [-1] without trace entries: one frame before the first (the snapshot's state)
    times = _entry_times(trace)
    act = trace.action if trace is not None else np.zeros(0, dtype=np.int8)
    cum_frees = np.cumsum(act == _FC, dtype=np.int64)
    cum_ooms = np.cumsum(act == _OOM, dtype=np.int64)
    born = _AllocTimes(trace, times)
    dev_name = f"cuda:{device}"

    torch_snaps: list[PoolSnapshot] = []

    def torch_frame(run: TorchStepper, e: int) -> None:
        torch_snaps.append(_model_snapshot(
            run.model, g, seq=e + 1, time_s=float(times[e]) if e >= 0 else 0.0, device=dev_name,
            num_allocs=run.allocs, num_frees=int(cum_frees[e]) if e >= 0 else 0,
            failed_allocations=int(cum_ooms[e]) if e >= 0 else 0, created_of=lambda addrs: born.at(addrs, e)))

    torch_replay = run_torch(snapshot, device, tl, time.perf_counter(), after=after, on_frame=torch_frame)

    paged_snaps: list[PoolSnapshot] = []
    failed: list[int] = []

    def paged_frame(run: PoolStepper, e: int) -> None:
        snap = run.pool.snapshot()
        created = np.zeros(snap.num_blocks, dtype=np.float64)  # blocks from before the trace: 0
        if run.live:  # traced blocks: their alloc entry's time
            ids = np.fromiter((b.id for b in run.live.values()), dtype=np.int64, count=len(run.live))
            when = times[np.fromiter(run.live, dtype=np.int64, count=len(run.live))]
            order = np.argsort(ids)
            ids, when = ids[order], when[order]
            pos = np.minimum(np.searchsorted(ids, snap.block_id), ids.size - 1)
            known = ids[pos] == snap.block_id
            created[known] = when[pos[known]]
        paged_snaps.append(replace(snap, time_s=float(times[e]) if e >= 0 else 0.0, block_created_s=created,
                                   event_rows=()))
        failed.append(run.failed)

    cfg = pool_configs("2MiB")[1] if config is None else config
    paged_replay = run_pool(snapshot, device, cfg, capacity=capacity, backend="meta", bandwidth=bandwidth,
                            label=None, tl=tl, t0=time.perf_counter(), after=after, on_frame=paged_frame)
    page = int(paged_replay.config.page_size)
    moved = np.diff(np.array([s.stats.compaction_pages_moved for s in paged_snaps], dtype=np.int64), prepend=0) * page
    seg_free = (act == _SF) | (act == _SU)
    flush = seg_free & ~np.concatenate(([False], seg_free[:-1]))  # the first of each run of segment frees
    ooms = trace.indices(Action.OOM).astype(np.int64) if trace is not None else np.zeros(0, dtype=np.int64)
    return ReplayFrames(
        device=device, granularity=g, entry_index=entries,
        time_s=times[entries] if n else np.zeros(1, dtype=np.float64),
        torch=tuple(torch_snaps), paged=tuple(paged_snaps),
        oom_frames=np.searchsorted(entries, ooms).astype(np.int64),
        peak_frame=int(np.searchsorted(entries, tl.peak_index)) if n else -1,
        peak_reserved_frame=int(np.searchsorted(entries, peak_reserved)) if n else -1,
        torch_label=TORCH_LABEL, paged_label=paged_replay.label,
        torch_segment_allocs=_interval_counts((act == _SA) | (act == _SM), entries),
        torch_segment_frees=_interval_counts(seg_free, entries),
        torch_flushes=_interval_counts(flush, entries),
        torch_ooms=_interval_counts(act == _OOM, entries),
        paged_failed_allocs=np.diff(np.asarray(failed, dtype=np.int64), prepend=0),
        paged_compactions=np.diff(np.array([s.stats.compactions for s in paged_snaps], dtype=np.int64), prepend=0),
        paged_bytes_moved=moved, paged_pause_s=moved / float(bandwidth),
        torch_replay=torch_replay, paged_replay=paged_replay, capacity_bytes=paged_replay.capacity_bytes,
        bandwidth=float(bandwidth), seconds=time.perf_counter() - t0)
