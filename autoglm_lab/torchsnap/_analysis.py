"""`analyze`: stats, both replays and a verdict for every OOM (and the peak) of one device."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..pool import PoolConfig, format_bytes, parse_size
from ._replay import (
    DEFAULT_BANDWIDTH,
    PoolOutcome,
    PoolReplay,
    TorchReplay,
    TorchState,
    device_capacity,
    pick_device,
    pool_configs,
    replay_pool,
    replay_torch,
)
from ._schema import Action, TorchSnapshot
from ._stats import SnapshotStats, call_site_label, snapshot_stats
from ._timeline import Timeline, timeline

__all__ = ["Verdict", "Analysis", "analyze", "fmt_bytes", "fmt_seconds"]


def fmt_bytes(n: int) -> str:
    """Bytes in binary units with two decimals (``1.50 GiB``); exact bytes under 1 KiB."""
    return format_bytes(n, 2)


def fmt_seconds(s: float) -> str:
    """A duration with a unit that keeps three significant digits (``2.10 us``, ``1.50 ms``)."""
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= f:
            return f"{s / f:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


@dataclass(frozen=True)
class Verdict:
    """One request judged: what torch had, why it failed (OOMs), what paged pools would have done."""

    kind: str                    # "oom" or "peak"
    index: int                   # trace entry
    time_us: int
    stream: int
    requested_bytes: int         # oom: torch's rounded request; peak: the allocation's requested size
    device_free_bytes: int | None  # oom: what CUDA reported free
    torch: TorchState
    cause: str                   # oom: "fragmentation", "segment rounding" or "capacity"; peak: "peak"
    model_reproduces: bool | None  # oom: torch's rules (the model) fail too
    paged: tuple[tuple[str, PoolOutcome], ...]
    site: str

    @property
    def total_free_bytes(self) -> int:
        """Free device memory plus torch's cached free blocks."""
        return (self.device_free_bytes or 0) + self.torch.free_cached_bytes

    def summary(self) -> str:
        t = self.torch
        c = t.check
        head = (f"{'OOM' if self.kind == 'oom' else 'peak'} at entry {self.index} (stream {self.stream}, {self.site}): "
                f"{'asked' if self.kind == 'oom' else 'allocated'} {fmt_bytes(self.requested_bytes)}")
        if self.kind == "oom":
            body = (f"; torch had {fmt_bytes(self.device_free_bytes or 0)} free on the device and "
                    f"{fmt_bytes(t.free_cached_bytes)} cached in free blocks (largest usable "
                    f"{fmt_bytes(c.largest_free_block)}), a new segment needed {fmt_bytes(c.segment_bytes)}: "
                    f"{self.cause}; the allocator model {'fails too' if self.model_reproduces else 'would serve it'}")
        else:
            body = (f"; torch then held {fmt_bytes(t.reserved_bytes)} reserved, {fmt_bytes(t.active_bytes)} active, "
                    f"{fmt_bytes(t.free_cached_bytes)} cached free (largest {fmt_bytes(c.largest_free_block_any)})")
        parts = []
        for label, o in self.paged:
            if not o.served:
                what = (f"not served ({fmt_bytes(o.free_bytes)} free, largest run "
                        f"{fmt_bytes(o.largest_free_run_bytes)})")
            elif o.compacted:
                what = (f"served after compaction moved {fmt_bytes(o.bytes_moved)} "
                        f"(~{fmt_seconds(o.pause_estimate_s)} of copying)")
            else:
                what = "served without compaction"
            parts.append(f"{label}: {what}")
        return head + body + ". " + "; ".join(parts)


@dataclass(frozen=True)
class Analysis:
    source: str
    device: int
    capacity_bytes: int
    bandwidth: float
    stats: SnapshotStats
    torch: TorchReplay
    pools: tuple[PoolReplay, ...]
    verdicts: tuple[Verdict, ...]
    timeline: Timeline
    seconds: float

    @property
    def ooms(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.kind == "oom")

    @property
    def peak(self) -> Verdict | None:
        return next((v for v in self.verdicts if v.kind == "peak"), None)

    def summary_lines(self) -> list[str]:
        s = self.stats
        t = s.total
        lines = [
            f"{self.source}, device {self.device}: {len(s.segments)} segments, {fmt_bytes(t.reserved)} reserved, "
            f"{fmt_bytes(t.active)} active ({fmt_bytes(t.requested)} requested), {fmt_bytes(t.free)} cached free; "
            f"{s.trace_entries} trace entries, {s.oom_count} OOM(s)",
            f"peak active {fmt_bytes(s.peak_active)} of peak reserved {fmt_bytes(s.peak_reserved)}: fragmentation "
            f"ratio {s.fragmentation_ratio:.3f}; internal fragmentation now {t.internal_fragmentation:.3f}, external "
            f"{t.external_fragmentation:.3f}",
            f"allocator model: {self.torch.same_address_ratio:.1%} of {self.torch.allocs} allocations at torch's "
            f"address; "
            f"ends in the snapshot's state: {self.torch.ends_in_snapshot_state} "
            f"({self.torch.final_segments_matching}/{self.torch.final_segments} segments)",
        ]
        lines.extend(f"note: {n}" for n in (*self.stats.notes, *self.torch.notes))
        for p in self.pools:
            lines.append(f"{p.label} ({fmt_bytes(p.capacity_bytes)}, {p.backend}): {p.failed_allocs} of {p.allocs} "
                         f"allocations torch served would fail; {p.compactions} compaction(s) moved "
                         f"{fmt_bytes(p.bytes_moved)}")
        lines.extend(v.summary() for v in self.verdicts)
        return lines


def analyze(snapshot: TorchSnapshot, device: int | None = None, *, page_size: int | str = "2MiB",
            configs: Sequence[PoolConfig | Mapping[str, Any]] | None = None, capacity: int | str | None = None,
            bandwidth: float = DEFAULT_BANDWIDTH, backend: str = "auto") -> Analysis:
    """Everything about one device of ``snapshot``: `SnapshotStats`, the allocator-model replay, one
    `PoolReplay` per pool configuration (default: ``page_size`` pages without compaction, and with
    compaction on every failed allocation) and a `Verdict` for every OOM and for the peak."""
    t0 = time.perf_counter()
    device = pick_device(snapshot, device)
    tl = timeline(snapshot, device)
    stats = snapshot_stats(snapshot, device, tl=tl)
    torch_replay = replay_torch(snapshot, device, tl=tl)
    cfgs = pool_configs(page_size) if configs is None else list(configs)
    cap = (max(device_capacity(snapshot, device, tl), parse_size(page_size, name="page_size")) if capacity is None
           else parse_size(capacity, name="capacity"))
    pools = tuple(replay_pool(snapshot, device, c, capacity=cap, backend=backend, bandwidth=bandwidth, tl=tl)
                  for c in cfgs)
    trace = snapshot.trace_of(device)
    verdicts = []
    if trace is not None:
        for i in sorted(torch_replay.states):
            st = torch_replay.states[i]
            oom = int(trace.action[i]) == Action.OOM
            size = int(trace.size[i])
            free = int(trace.addr[i]) if oom else None
            if oom:
                total_free = (free or 0) + st.free_cached_bytes
                cause = ("capacity" if total_free < size else
                         "segment rounding" if (free or 0) >= size else "fragmentation")
            else:
                cause = "peak"
            verdicts.append(Verdict(
                kind="oom" if oom else "peak", index=i, time_us=int(trace.time_us[i]), stream=int(trace.stream[i]),
                requested_bytes=size, device_free_bytes=free, torch=st, cause=cause,
                model_reproduces=st.check.fails if oom else None,
                paged=tuple((p.label, p.outcomes[i]) for p in pools if i in p.outcomes),
                site=call_site_label(trace.frames_of(i))))
    return Analysis(source=snapshot.source, device=device, capacity_bytes=pools[0].capacity_bytes if pools else cap,
                    bandwidth=bandwidth, stats=stats, torch=torch_replay, pools=pools, verdicts=tuple(verdicts),
                    timeline=tl, seconds=time.perf_counter() - t0)

