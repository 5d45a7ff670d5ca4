"""Per-step records: the full history for `results()` and a bounded ring for live views.

Both store one numpy column per field, so the dashboard reads arrays, never per-step objects, and
memory stays bounded however long the simulator runs (the history drops its oldest half when full).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..pool import COMPACT_REASONS

__all__ = ["RunMetrics", "StepRecord", "StepColumns", "FIELDS", "RECENT_KEYS", "reason_code"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one scheduler iteration did. Latencies in seconds; ``compaction_reason`` is a code of
    `autoglm_lab.pool.COMPACT_REASONS` (-1: no compaction in this step)."""

    step: int
    time_s: float               # simulated clock at the end of the step
    step_latency_s: float       # clock advance: wall time (compute="model") or the cost model ("none")
    alloc_latency_s: float      # measured wall time spent allocating, growing and freeing KV
    compaction_pause_s: float   # measured pause of compactions that ran during the step
    compaction_reason: int
    compaction_bytes_moved: int
    batch_size: int
    tokens: int
    prefill_tokens: int
    decode_tokens: int
    queue_length: int
    finished: int
    failures: int               # the pool's failed allocations: nothing free or evictable, compaction could not help
    preemptions: int
    evictions: int              # cached KV blocks freed (for room, by TTL or by a closed session)
    cache_hits: int             # session reuse hits plus prefix blocks found in the cache
    utilisation: float          # the pool's: referenced (not cached) requested bytes / capacity
    external_fragmentation: float  # the pool's: 1 - largest free run / free
    kv_fragmentation: float        # share of free bytes in runs smaller than a typical KV allocation
    used_bytes: int             # pages of referenced blocks (not cached)
    cached_bytes: int = 0       # pages of cached (evictable) blocks
    free_bytes: int = 0
    ttft_s: float = float("nan")   # mean time to first token of the first tokens emitted in this step
    tpot_s: float = float("nan")   # mean time per output token of the requests that finished in this step
    prefix_queries: int = 0     # prefix blocks looked up by the requests admitted in this step
    prefix_hits: int = 0        # of which found in the cache
    running: int = 0            # sequences running after the step


FIELDS = tuple(StepRecord.__dataclass_fields__)
_INT_FIELDS = {"step", "compaction_reason", "compaction_bytes_moved", "batch_size", "tokens", "prefill_tokens",
               "decode_tokens", "queue_length", "finished", "failures", "preemptions", "evictions", "cache_hits",
               "used_bytes", "cached_bytes", "free_bytes", "prefix_queries", "prefix_hits", "running"}
RECENT_KEYS = ("time_s", "step_latency_s", "alloc_latency_s", "compaction_pause_s", "batch_size", "tokens",
               "failures", "preemptions", "evictions", "utilisation", "external_fragmentation", "compaction_reason",
               "kv_fragmentation", "queue_length", "used_bytes", "cached_bytes", "free_bytes", "ttft_s", "tpot_s",
               "running")


def reason_code(reason: str | None) -> int:
    return COMPACT_REASONS.index(reason) if reason in COMPACT_REASONS else -1


class StepColumns:
    """Columns of step records. ``ring=True``: a ring of ``capacity`` rows; else a history that drops
    its oldest half when ``capacity`` rows are reached."""

    def __init__(self, capacity: int, *, ring: bool) -> None:
        self.capacity = capacity
        self.ring = ring
        self._size = min(capacity, 1024) if not ring else capacity
        self.cols = {f: np.zeros(self._size, np.int64 if f in _INT_FIELDS else np.float64) for f in FIELDS}
        self.count = 0  # rows stored (history) or ever written (ring)
        self.dropped = 0

    def __len__(self) -> int:
        return min(self.count, self.capacity) if self.ring else self.count

    def append(self, rec: StepRecord) -> None:
        if self.ring:
            i = self.count % self.capacity
        else:
            if self.count == self._size:
                self._make_room()
            i = self.count
        for name, value in zip(FIELDS, _values(rec), strict=True):
            self.cols[name][i] = value
        self.count += 1

    def _make_room(self) -> None:
        if self._size < self.capacity:
            self._size = min(self.capacity, 2 * self._size)
            for name, col in self.cols.items():
                grown = np.zeros(self._size, col.dtype)
                grown[:self.count] = col[:self.count]
                self.cols[name] = grown
            return
        half = self.count // 2
        for col in self.cols.values():
            col[:self.count - half] = col[half:self.count]
        self.count -= half
        self.dropped += half

    def arrays(self, n: int | None = None, keys: tuple[str, ...] = FIELDS) -> dict[str, np.ndarray]:
        """The last ``n`` rows (all when None), oldest first, as copies."""
        size = len(self)
        n = size if n is None else max(0, min(int(n), size))
        if not self.ring:
            return {k: self.cols[k][self.count - n:self.count].copy() for k in keys}
        idx = (np.arange(self.count - n, self.count) % self.capacity) if n else np.zeros(0, np.int64)
        return {k: self.cols[k][idx] for k in keys}


def _values(rec: StepRecord) -> tuple[float | int, ...]:
    return tuple(getattr(rec, f) for f in FIELDS)


def as_dict(rec: StepRecord) -> dict[str, float | int]:
    return asdict(rec)


@dataclass
class RunMetrics:
    """What a run has measured so far (`ServingSim.metrics`): `summarise`, `over_time` and the
    dashboard's views read this record, never the simulator's private state."""

    history: StepColumns                                 # one row per step (bounded)
    pool_base: tuple[int, int, float]                    # the pool's compactions, bytes moved, pause at start
    ttft_s: list[float] = field(default_factory=list)    # time to first token, per request
    ttft_at_s: list[float] = field(default_factory=list)  # the clock at each first token
    tpot_s: list[float] = field(default_factory=list)    # time per output token, per request
    tpot_at_s: list[float] = field(default_factory=list)  # the clock at each finish
    peak_utilisation: float = 0.0                        # the highest referenced share seen after a step
    wall_s: float = 0.0                                  # wall time spent stepping
