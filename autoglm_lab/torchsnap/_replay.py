"""Replay a snapshot's trace: into the caching-allocator model (in step with the trace) and into a
`PagedPool` (any configuration), and judge every OOM: would paging, or compaction, have served it?

Both replays start from the state before the trace's first entry (`initial_state`) and apply the
allocations and frees in order. The paged pool gets the memory torch had: one segment of the
device's capacity (by default the smallest ``reserved + device_free`` over the OOMs, and at least
the peak reserved), on torch's ``meta`` device so that only the books are kept: an 80 GB trace
replays on a laptop. Compaction is planned and booked as usual; its pause on a real device is
estimated from the bytes it moves and a copy bandwidth (``bandwidth``, default 1 TB/s).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pool import PagedPool, PoolConfig, PoolExhausted, format_size, parse_size
from ._model import CachingAllocatorModel, OomCheck
from ._schema import Action, TorchSnapshot, round_size
from ._timeline import Timeline, round_sizes, timeline

__all__ = ["TorchState", "TorchReplay", "PoolOutcome", "PoolReplay", "replay_torch", "replay_pool",
           "device_capacity", "DEFAULT_BANDWIDTH", "pick_device", "model_for", "pool_configs", "pool_config",
           "TorchStepper", "PoolStepper", "run_torch", "run_pool"]

DEFAULT_BANDWIDTH = 1.0e12  # bytes per second a device-side copy moves (order of an H100's copy_)
CPU_BACKEND_BYTES = 256 << 20  # the CPU backend divides every size by a power of two to stay under this
_A, _FR, _FC = int(Action.ALLOC), int(Action.FREE_REQUESTED), int(Action.FREE_COMPLETED)
_SA, _SF, _SM, _SU, _OOM = (int(Action.SEGMENT_ALLOC), int(Action.SEGMENT_FREE), int(Action.SEGMENT_MAP),
                            int(Action.SEGMENT_UNMAP), int(Action.OOM))


def pick_device(snapshot: TorchSnapshot, device: int | None) -> int:
    """``device`` checked, or the device with the longest trace (else the first with segments)."""
    devices = snapshot.devices
    if device is not None:
        if isinstance(device, bool) or not isinstance(device, int) or device not in devices:
            raise ValueError(f"device={device!r} is not in the snapshot: it has {list(devices) or 'no devices'}")
        return device
    if not devices:
        raise ValueError("the snapshot has no segments and no trace entries: nothing to analyse")
    return max(devices, key=lambda d: (len(snapshot.trace_of(d) or ()), -d))


@dataclass(frozen=True)
class TorchState:
    """The caching allocator's state (per the model, in step with the trace) just before an entry."""

    index: int
    reserved_bytes: int
    active_bytes: int
    allocated_bytes: int
    free_cached_bytes: int
    check: OomCheck           # what torch's rules do with this entry's request now


@dataclass(frozen=True)
class TorchReplay:
    device: int
    allocs: int
    same_address: int          # allocations the model would have placed where torch did
    states: Mapping[int, TorchState]   # at every oom entry and at the peak
    peak_active_bytes: int     # exact block sizes, as torch's active_bytes counts them
    peak_reserved_bytes: int
    final_segments_matching: int   # segments whose blocks end exactly as the snapshot's do
    final_segments: int
    num_anomalies: int
    anomalies: tuple[str, ...]
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def same_address_ratio(self) -> float:
        return self.same_address / self.allocs if self.allocs else 1.0

    @property
    def ends_in_snapshot_state(self) -> bool:
        return self.final_segments_matching == self.final_segments


def model_for(snapshot: TorchSnapshot, device: int) -> CachingAllocatorModel:
    """A synchronised model set to the snapshot's allocator settings (max_split_size, expandable)."""
    settings = snapshot.allocator_settings
    mss = settings.get("max_split_size")
    max_split = mss if isinstance(mss, int) and not isinstance(mss, bool) and 1 << 20 < mss < 1 << 62 else None
    expandable = bool(settings.get("expandable_segments", False)) or any(
        s.is_expandable for s in snapshot.segments_of(device))
    return CachingAllocatorModel(None, max_split_size=max_split, expandable_segments=expandable)


def _initial_model(snapshot: TorchSnapshot, device: int, tl: Timeline) -> CachingAllocatorModel:
    model = model_for(snapshot, device)
    for seg in tl.initial.segments:
        if seg.expandable:
            model.apply_segment_map(seg.address, seg.size, seg.stream, seg.large)
        else:
            model.apply_segment_alloc(seg.address, seg.size, seg.stream, seg.large)
    for pre in tl.initial.allocations:
        model.place(pre.address, pre.requested, pending=pre.pending, block_size=pre.block_size)
    return model


def _final_match(model: CachingAllocatorModel, snapshot: TorchSnapshot, device: int) -> tuple[int, int]:
    have = {}
    for seg in model.segments():
        have[seg.addr] = tuple((b.addr, b.size, "active_allocated" if b.allocated else
                                "active_pending_free" if b.pending else "inactive") for b in seg.blocks())
    segs = snapshot.segments_of(device)
    same = sum(1 for s in segs if have.get(s.address) == tuple((b.address, b.size, b.state) for b in s.blocks))
    return same, len(segs)


class TorchStepper:
    """The synchronised model stepping through the trace: the one stepping core of `replay_torch`
    and `replay_frames`. `advance` applies the entries up to a position, in order, each once;
    between calls the caller reads the model (``model``, `state`)."""

    def __init__(self, snapshot: TorchSnapshot, device: int, tl: Timeline) -> None:
        self.model = _initial_model(snapshot, device, tl)
        self.notes: list[str] = []
        self.allocs = 0
        self.same = 0              # allocations the model would have placed where torch did
        self.pos = 0               # entries applied so far
        trace = snapshot.trace_of(device)
        if trace is not None and len(trace) and not tl.initial.segments and not np.any(
                (trace.action >= _SA) & (trace.action <= _SU)):
            self.notes.append("the trace has no segments or segment events (a snapshot made from profiler events?): "
                              "the allocator model has nothing to replay")
            trace = None
        self.trace = trace if trace is not None and len(trace) else None
        self.n = 0 if self.trace is None else len(self.trace)
        if self.trace is not None:
            t = self.trace
            self._cols = (t.action.tolist(), t.addr.tolist(), t.size.tolist(), round_sizes(t.size).tolist(),
                          t.stream.tolist())

    def state(self, i: int) -> TorchState:
        """The state now (just before entry ``i``) and what torch's rules do with entry ``i``'s request."""
        model = self.model
        act, addr, size, _rounded, stream = self._cols
        if act[i] == _OOM:
            check = model.check_oom(size[i], stream[i], addr[i])
        else:
            check = model.check_oom(round_size(size[i]), stream[i], 0)
        return TorchState(i, model.reserved, model.active, model.allocated, model.free_cached_bytes, check)

    def advance(self, stop: int) -> None:
        """Apply the entries from ``pos`` up to (not including) ``stop``."""
        stop = min(stop, self.n)
        if stop <= self.pos:
            return
        model = self.model
        act, addr, size, rounded, stream = self._cols
        predict, apply_alloc = model.predict, model.apply_alloc
        free_req, free_done = model.apply_free_requested, model.apply_free_completed
        allocs = same = 0
        for i in range(self.pos, stop):
            c = act[i]
            if c == _A:
                allocs += 1
                r = rounded[i]
                if predict(size[i], stream[i], r) == addr[i]:
                    same += 1
                apply_alloc(addr[i], size[i], stream[i], r)
            elif c == _FR:
                free_req(addr[i])
            elif c == _FC:
                free_done(addr[i])
            elif c == _SA:
                model.apply_segment_alloc(addr[i], size[i], stream[i])
            elif c == _SF:
                model.apply_segment_free(addr[i], size[i])
            elif c == _SM:
                model.apply_segment_map(addr[i], size[i], stream[i])
            elif c == _SU:
                model.apply_segment_unmap(addr[i], size[i])
        self.allocs += allocs
        self.same += same
        self.pos = stop

    def result(self, snapshot: TorchSnapshot, device: int, states: Mapping[int, TorchState], t0: float
               ) -> TorchReplay:
        model = self.model
        matching, total = _final_match(model, snapshot, device)
        notes = list(self.notes)
        if model.num_anomalies:
            notes.append(f"the allocator model could not apply {model.num_anomalies} trace event(s) (first: "
                         f"{model.anomalies[0]}): not a trace of torch's CUDA caching allocator, or settings the "
                         f"model does not cover; its verdicts are unreliable here")
        return TorchReplay(device=device, allocs=self.allocs, same_address=self.same, states=states,
                           peak_active_bytes=model.peak_active, peak_reserved_bytes=model.peak_reserved,
                           final_segments_matching=matching, final_segments=total,
                           num_anomalies=model.num_anomalies, anomalies=tuple(model.anomalies),
                           seconds=time.perf_counter() - t0, notes=tuple(notes))


def run_torch(snapshot: TorchSnapshot, device: int, tl: Timeline, t0: float, after: Sequence[int] = (),
              on_frame: Callable[[TorchStepper, int], None] | None = None) -> TorchReplay:
    """`replay_torch`'s run, calling ``on_frame(stepper, e)`` after each entry ``e`` of ``after``
    (ascending) has been applied."""
    run = TorchStepper(snapshot, device, tl)
    watch: set[int] = set()
    if run.trace is not None:
        watch.update(run.trace.indices(Action.OOM).tolist())
        if tl.peak_index >= 0:
            watch.add(tl.peak_index)
    # (position, 0, i): the state just before entry i; (position, 1, e): a frame just after entry e
    stops = sorted([(i, 0, i) for i in watch] + [(e + 1, 1, e) for e in after])
    states: dict[int, TorchState] = {}
    for pos, kind, i in stops:
        run.advance(pos)
        if kind == 0:
            states[i] = run.state(i)
        elif on_frame is not None:
            on_frame(run, i)
    run.advance(run.n)
    return run.result(snapshot, device, states, t0)


def replay_torch(snapshot: TorchSnapshot, device: int | None = None, *, tl: Timeline | None = None) -> TorchReplay:
    """Replay the trace through the caching-allocator model, applying the trace's own addresses, and
    record the state (and what torch's rules would do) at every OOM and at the peak."""
    t0 = time.perf_counter()
    device = pick_device(snapshot, device)
    return run_torch(snapshot, device, tl or timeline(snapshot, device), t0)


def device_capacity(snapshot: TorchSnapshot, device: int, tl: Timeline | None = None) -> int:
    """Bytes the process could reserve: the smallest ``reserved + device_free`` over the trace's
    OOMs, and at least the peak reserved (torch held that much); the peak reserved if no OOM (the
    peak active for a trace without segment events)."""
    tl = tl or timeline(snapshot, device)
    trace = snapshot.trace_of(device)
    peak = max(tl.peak_reserved, tl.peak_active)
    if trace is None:
        return peak
    ooms = trace.indices(Action.OOM)
    if not ooms.size:
        return peak
    return max(peak, int((tl.reserved[ooms] + trace.addr[ooms]).min()))


@dataclass(frozen=True)
class PoolOutcome:
    """The paged pool's answer to one request (an OOM's, or the peak's)."""

    index: int
    pages: int
    served: bool
    free_bytes: int               # before the attempt
    largest_free_run_bytes: int   # before the attempt
    compacted: bool               # served only after compaction moved blocks
    bytes_moved: int
    pause_estimate_s: float       # bytes_moved / bandwidth

    @property
    def served_without_compaction(self) -> bool:
        return self.served and not self.compacted


@dataclass(frozen=True)
class PoolReplay:
    label: str
    config: PoolConfig            # in real units (the pool ran on meta, or scaled on the CPU)
    capacity_bytes: int
    backend: str                  # "meta" or "cpu/N" (sizes divided by N)
    outcomes: Mapping[int, PoolOutcome]
    allocs: int
    failed_allocs: int            # allocations torch served that this pool could not
    first_failure: int            # entry index, -1 if none
    compactions: int
    bytes_moved: int
    peak_used_bytes: int
    seconds: float
    notes: tuple[str, ...] = field(default=())


def _label(cfg: PoolConfig) -> str:
    comp = "off" if cfg.compaction == "off" else f"{cfg.compaction} {cfg.compaction_strategy}"
    return f"paged {format_size(int(cfg.page_size))} pages, {cfg.fit} fit, compaction {comp}"


def _meta_ok() -> bool:
    try:
        PoolConfig(device="meta")
    except ValueError:
        return False
    return True


class PoolStepper:
    """A `PagedPool` replaying the trace's allocations and frees in order: the one stepping core of
    `replay_pool` and `replay_frames`. `advance` applies the entries up to a position, each once;
    between calls the caller reads ``pool`` and the counters."""

    def __init__(self, snapshot: TorchSnapshot, device: int, config: PoolConfig | Mapping[str, Any] | None,
                 capacity: int | str | None, backend: str, bandwidth: float, tl: Timeline) -> None:
        base = pool_config(config)
        page = int(base.page_size)
        if capacity is None:  # a trace without segments (made from profiler events) has no reserved bytes
            cap = max(device_capacity(snapshot, device, tl), page)
        else:
            cap = parse_size(capacity, name="capacity")
        if not (isinstance(bandwidth, int | float) and not isinstance(bandwidth, bool)
                and math.isfinite(bandwidth) and bandwidth > 0):
            raise ValueError(f"bandwidth={bandwidth!r} is not allowed: bytes per second, a finite number > 0")
        pages_total = cap // page
        if pages_total < 1:
            raise ValueError(f"capacity {cap} bytes is less than one {format_size(page)} page")
        if backend not in ("auto", "meta", "cpu"):
            raise ValueError(f"backend={backend!r} is not allowed: 'auto', 'meta' or 'cpu'")
        use_meta = backend == "meta" or (backend == "auto" and _meta_ok())
        scale = 1
        if not use_meta:
            while pages_total * page // scale > CPU_BACKEND_BYTES and page // (scale * 2) >= 64:
                scale *= 2
            if pages_total * page // scale > 1 << 30:
                raise ValueError(f"a {format_size(pages_total * page)} pool of {format_size(page)} pages does not "
                                 f"fit the CPU backend even scaled by {scale}: use backend='meta' or larger pages")
        run_bytes = pages_total * page // scale
        cfg = base.replace(page_size=page // scale, memory_pool_initial_size=run_bytes, max_size=run_bytes,
                           segment_size=run_bytes, device="meta" if use_meta else "cpu",
                           compaction_budget_bytes=None if base.compaction_budget_bytes is None else
                           max(page // scale, int(base.compaction_budget_bytes) // scale))
        self.pool = PagedPool(cfg)
        self.real_config = base.replace(memory_pool_initial_size=pages_total * page, max_size=pages_total * page,
                                        segment_size=pages_total * page,
                                        device="meta" if use_meta else base.device)
        self.page, self.scale, self.bandwidth = page, scale, bandwidth
        self.capacity_bytes = pages_total * page
        self.backend = "meta" if use_meta else f"cpu/{scale}"
        self.notes: list[str] = []
        self.by_close: dict[int, Any] = {}   # allocations from before the trace, by the entry that frees them
        for pre in tl.initial.allocations:
            try:
                blk = self.pool.alloc_bytes(-(-max(pre.requested, 1) // scale))
            except PoolExhausted:
                self.notes.append(f"an allocation from before the trace ({pre.requested} bytes) did not fit the pool")
                continue
            if pre.completed_at >= 0:
                self.by_close[pre.completed_at] = blk
        self.outcomes: dict[int, PoolOutcome] = {}
        self.live: dict[int, Any] = {}       # traced allocations held, by their alloc entry
        self.allocs = 0
        self.failed = 0                      # allocations torch served that this pool could not
        self.first_failure = -1
        self.k = 0                           # relevant entries applied so far
        self._eager = cfg.compaction == "eager"
        self._peak = tl.peak_index
        trace = snapshot.trace_of(device)
        if trace is not None and len(trace):
            act = trace.action
            self._rel = np.flatnonzero((act == _A) | (act == _FC) | (act == _OOM))
            self._cols = (self._rel.tolist(), act[self._rel].tolist(), trace.size[self._rel].tolist(),
                          tl.pairing.open_of[self._rel].tolist(), trace.time_us[self._rel].tolist())
            self.n = len(trace)
        else:
            self._rel = np.zeros(0, dtype=np.int64)
            self._cols = ([], [], [], [], [])
            self.n = 0
        self._t_first = next((t for t in self._cols[4] if t >= 0), 0)

    def advance(self, stop: int) -> None:
        """Apply the entries before position ``stop`` not applied yet."""
        k_stop = int(np.searchsorted(self._rel, stop))
        if k_stop <= self.k:
            return
        rel, codes, sizes, opens, times = self._cols
        pool, scale, page, bandwidth = self.pool, self.scale, self.page, self.bandwidth
        live, by_close, outcomes = self.live, self.by_close, self.outcomes
        peak, eager, t_first = self._peak, self._eager, self._t_first
        alloc_bytes, free = pool.alloc_bytes, pool.free
        allocs = failed = 0
        first_failure = self.first_failure
        for k in range(self.k, k_stop):
            i = rel[k]
            c = codes[k]
            if c == _A:
                allocs += 1
                if eager and times[k] >= 0:
                    pool.tick((times[k] - t_first) / 1e6)
                if i == peak:
                    outcomes[i] = _attempt(pool, i, sizes[k], scale, page, bandwidth, keep=live)
                    if not outcomes[i].served:
                        failed += 1
                        first_failure = i if first_failure < 0 else first_failure
                    continue
                try:
                    live[i] = alloc_bytes(-(-max(sizes[k], 1) // scale))
                except PoolExhausted:
                    failed += 1
                    if first_failure < 0:
                        first_failure = i
            elif c == _FC:
                j = opens[k]
                blk = live.pop(j, None) if j >= 0 else by_close.pop(i, None)
                if blk is not None:
                    free(blk)
            else:
                outcomes[i] = _attempt(pool, i, sizes[k], scale, page, bandwidth, keep=None)
        self.allocs += allocs
        self.failed += failed
        self.first_failure = first_failure
        self.k = k_stop

    def result(self, label: str | None, t0: float) -> PoolReplay:
        st = self.pool.stats()
        notes = list(self.notes)
        if st.num_segments != 1:
            notes.append("the pool grew past one segment")
        return PoolReplay(label=label or _label(self.real_config), config=self.real_config,
                          capacity_bytes=self.capacity_bytes, backend=self.backend, outcomes=self.outcomes,
                          allocs=self.allocs, failed_allocs=self.failed, first_failure=self.first_failure,
                          compactions=st.compactions, bytes_moved=st.compaction_pages_moved * self.page,
                          peak_used_bytes=st.peak_used_bytes * self.scale, seconds=time.perf_counter() - t0,
                          notes=tuple(notes))


def run_pool(snapshot: TorchSnapshot, device: int, config: PoolConfig | Mapping[str, Any] | None, *,
             capacity: int | str | None, backend: str, bandwidth: float, label: str | None, tl: Timeline,
             t0: float, after: Sequence[int] = (), on_frame: Callable[[PoolStepper, int], None] | None = None
             ) -> PoolReplay:
    """`replay_pool`'s run, calling ``on_frame(stepper, e)`` after each entry ``e`` of ``after``
    (ascending) has been applied."""
    run = PoolStepper(snapshot, device, config, capacity, backend, bandwidth, tl)
    for e in sorted(after):
        run.advance(e + 1)
        if on_frame is not None:
            on_frame(run, e)
    run.advance(run.n)
    return run.result(label, t0)


def replay_pool(snapshot: TorchSnapshot, device: int | None = None,
                config: PoolConfig | Mapping[str, Any] | None = None, *, capacity: int | str | None = None,
                backend: str = "auto", bandwidth: float = DEFAULT_BANDWIDTH, label: str | None = None,
                tl: Timeline | None = None) -> PoolReplay:
    """Replay the trace's allocations and frees, in order, into a `PagedPool` of ``config``
    (page size, fit, coalesce, compaction...: its sizes and device are replaced: the pool is one
    segment of ``capacity`` bytes, default `device_capacity`).

    backend: "meta" (books only, any size), "cpu" (a real CPU pool with every size divided by a power
    of two so that it stays under 256 MiB: page counts are exact, the copies are scaled), or "auto"
    (meta when the pool accepts it).
    """
    t0 = time.perf_counter()
    device = pick_device(snapshot, device)
    tl = tl or timeline(snapshot, device)
    return run_pool(snapshot, device, config, capacity=capacity, backend=backend, bandwidth=bandwidth, label=label,
                    tl=tl, t0=t0)


def _attempt(pool: PagedPool, index: int, size: int, scale: int, page: int, bandwidth: float,
             keep: dict[int, Any] | None) -> PoolOutcome:
    """Try one request, measuring what compaction it took; kept (peak) or freed again (an OOM's)."""
    before = pool.stats()
    pages = -(-max(size, 1) // page)
    try:
        blk = pool.alloc_bytes(-(-max(size, 1) // scale))
        served = True
    except PoolExhausted:
        served = False
        blk = None
    moved = (pool.stats().compaction_pages_moved - before.compaction_pages_moved) * page
    if blk is not None:
        if keep is not None:
            keep[index] = blk
        else:
            pool.free(blk)
    return PoolOutcome(index=index, pages=pages, served=served, free_bytes=before.free_pages * page,
                       largest_free_run_bytes=before.largest_free_run_pages * page, compacted=served and moved > 0,
                       bytes_moved=moved, pause_estimate_s=moved / bandwidth)


def pool_config(config: PoolConfig | Mapping[str, Any] | None) -> PoolConfig:
    """A PoolConfig from a config, a dict of its fields (page_size defaults to 2 MiB) or None; its sizes
    and device are placeholders: replays set them."""
    if config is None:
        return PoolConfig(page_size="2MiB", memory_pool_initial_size="2MiB", max_size="2MiB", device="cpu")
    if isinstance(config, PoolConfig):
        return config
    if isinstance(config, Mapping):
        fields = dict(config)
        fields.setdefault("page_size", "2MiB")
        page = parse_size(fields["page_size"], name="page_size")
        fields.setdefault("memory_pool_initial_size", page)
        fields.setdefault("max_size", None)
        fields.setdefault("device", "cpu")
        return PoolConfig(**fields)
    raise ValueError(f"config must be a PoolConfig, a dict of PoolConfig fields or None, not {type(config).__name__}")


def pool_configs(page_size: int | str = "2MiB", extra: Sequence[PoolConfig | Mapping[str, Any]] = ()
                 ) -> list[PoolConfig]:
    """The default pair judged for every OOM: paging without compaction, and with compaction on
    every failed allocation (lazy, ``max_consecutive_failures=1``), plus ``extra``."""
    out = [pool_config({"page_size": page_size, "compaction": "off"}),
           pool_config({"page_size": page_size, "compaction": "lazy", "max_consecutive_failures": 1})]
    out.extend(pool_config(c) for c in extra)
    return out
