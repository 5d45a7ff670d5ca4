"""`summarise`: the numbers a run is judged by (the dict returned by `ServingSim.summary`), each in
words in `SUMMARY_LABELS`; `over_time`: the same figures per slice of simulated time (the slowdown as
it happens), and `slowdown_ratio`, how much slower the first token came at the end than at the start."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..pool import StatTable, check_stat_table

if TYPE_CHECKING:
    from ._sim import ServingSim

__all__ = ["summarise", "over_time", "slowdown_ratio", "SUMMARY_LABELS"]

#: every key of `summarise` in words (group -> key -> (label, unit of `pool.STAT_UNITS`)): the HTML
#: report's statistics and the command line's summary; what each figure counts is in `summarise`
SUMMARY_LABELS: StatTable = {
    "Run": {
        "steps": ("simulator steps", "count"),
        "sim_time_s": ("simulated time", "s"),
        "wall_s": ("wall time spent stepping", "s"),
    },
    "Requests": {
        "requests_total": ("requests in the workload", "count"),
        "requests_done": ("requests finished", "count"),
        "requests_rejected": ("rejected (too long for the context or the pool)", "count"),
        "requests_truncated": ("stopped at the context limit", "count"),
        "requests_waiting": ("waiting at the end", "count"),
        "requests_running": ("running at the end", "count"),
        "preemptions": ("preemptions (KV dropped, recomputed later)", "count"),
    },
    "Latency": {
        "ttft_p50_s": ("time to first token (TTFT), p50", "ms"),
        "ttft_p99_s": ("time to first token (TTFT), p99", "ms"),
        "per_token_latency_p50_s": ("time per output token (TPOT), p50", "ms"),
        "per_token_latency_p99_s": ("time per output token (TPOT), p99", "ms"),
        "step_latency_p50_s": ("step latency, p50 (steps with a batch)", "ms"),
        "step_latency_p99_s": ("step latency, p99 (steps with a batch)", "ms"),
    },
    "Throughput": {
        "tokens_per_sim_s": ("tokens per simulated second", "per_s"),
        "tokens": ("tokens processed (prefill + decode)", "count"),
        "prefill_tokens": ("prefill tokens", "count"),
        "decode_tokens": ("decode tokens", "count"),
        "generated_tokens": ("tokens generated", "count"),
        "recompute_tokens": ("prefill tokens recomputed after preemption", "count"),
        "prewarm_tokens": ("prefill tokens spent pre-warming", "count"),
        "prewarm_hits": ("turns that found pre-warmed KV", "count"),
    },
    "Memory": {
        "capacity_bytes": ("pool capacity", "bytes"),
        "used_bytes": ("used at the end (referenced KV)", "bytes"),
        "cached_bytes": ("cached at the end (evictable KV)", "bytes"),
        "free_bytes": ("free at the end", "bytes"),
        "kv_usage": ("KV usage at the end (used / capacity)", "percent"),
        "peak_utilisation": ("peak KV usage (referenced share of the capacity)", "percent"),
        "failures": ("failed allocations (even after evicting cached KV)", "count"),
        "fragmentation_failures": ("failed allocations with enough free pages, no run long enough", "count"),
        "mean_external_fragmentation": ("external fragmentation, mean over busy steps", "percent"),
        "mean_kv_fragmentation": ("KV fragmentation (free bytes in runs too short for KV), mean", "percent"),
        "pool_growths": ("pool growths", "count"),
        "growth_s": ("time spent growing the pool", "ms"),
        "leaked_blocks": ("leaked KV blocks (closed sessions)", "count"),
        "leaked_bytes": ("leaked KV", "bytes"),
    },
    "Prefix cache / reuse": {
        "cache_hit_rate": ("reuse hit rate", "percent"),
        "cache_lookups": ("reuse lookups (session turns + prefix blocks)", "count"),
        "cache_hits": ("reuse hits", "count"),
        "cache_bytes_saved": ("KV reused instead of recomputed", "bytes"),
        "prefix_cache_hit_rate": ("prefix-cache hit rate, blocks", "percent"),
        "prefix_cache_queries": ("prefix blocks looked up", "count"),
        "prefix_cache_hits": ("prefix blocks found in the cache", "count"),
        "prefix_cache_token_hit_rate": ("prefix-cache hit rate, tokens", "percent"),
        "prefix_cache_query_tokens": ("prompt tokens in looked-up prefix blocks", "count"),
        "prefix_cache_hit_tokens": ("prompt tokens reused from the cache", "count"),
        "prefix_copy_bytes": ("KV copied to reuse a prefix (contiguous layout)", "bytes"),
        "prefix_cache_entries": ("prefix-cache entries at the end", "count"),
        "pinned_bytes": ("KV pinned by pre-warming", "bytes"),
        "evictions": ("cached KV blocks evicted", "count"),
        "evicted_entries": ("cache entries evicted for room", "count"),
        "expired": ("cache entries expired (TTL)", "count"),
    },
    "Compaction": {
        "compactions": ("compactions run", "count"),
        "compaction_bytes_moved": ("moved by compaction", "bytes"),
        "compaction_pause_s": ("compaction pauses, total (wall time)", "ms"),
    },
}
check_stat_table(SUMMARY_LABELS)


def _pct(values: np.ndarray | list[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def _pcts(values: np.ndarray | list[float], qs: tuple[float, float] = (50, 99)) -> tuple[float, float]:
    """``np.percentile(values, qs)`` (its default linear method, the same floats) with one sort: numpy's
    own call costs ~0.2 ms of overhead on a few thousand values, and the dashboard asks 5 times a second."""
    a = np.sort(np.asarray(values, dtype=np.float64))
    n = a.shape[0]
    if not n:
        return float("nan"), float("nan")
    out = []
    for q in qs:
        pos = (q / 100) * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        t = pos - lo
        x, y = a[lo], a[hi]
        diff = y - x
        out.append(float(y - diff * (1 - t) if t >= 0.5 else x + diff * t))  # numpy's _lerp
    return out[0], out[1]


def summarise(sim: ServingSim) -> dict[str, Any]:
    """Totals of the run so far. Memory, counted the way vLLM counts its block pool:

    used_bytes / cached_bytes / free_bytes (and capacity_bytes): the pool now; *used* is KV that a
        running request (or a leak) references, *cached* is reusable KV that nothing references
        (evictable: it never blocks an allocation), *free* is the rest. ``kv_usage`` = used / capacity,
        ``peak_utilisation`` the highest referenced share of the capacity seen after a step.
    failures: the pool's *failed allocations* made by this simulator, the same count as the pool's
        ``failed_allocations`` and the dashboard's stats panel: allocations that found no free run
        after merging free runs, growing the pool, evicting every evictable cached block and (when
        compaction is on) compacting. Each one makes the scheduler defer an admission, preempt a
        sequence or reject a request. ``fragmentation_failures``: those with enough free pages in all,
        but no run long enough.
    evictions: cached KV blocks freed, for room or by TTL or a closed session (the pool counts the
        same); ``evicted_entries``: cache entries (prefix units or session turns) evicted for room;
        ``expired``: entries dropped by TTL.
    prefix_cache_*: vLLM-style prefix-cache counters for requests with block hashes: queries and hits in
        prefix blocks (a hit: the block is in the cache when the request is admitted, as part of the
        leading run) and in tokens (hit tokens: prompt tokens whose KV was reused, never the last one);
        ``prefix_cache_hit_rate`` = hit blocks / query blocks. ``prefix_copy_bytes``: KV bytes the
        contiguous layout copied into new buffers to reuse a prefix (paged shares blocks instead).
    cache_lookups / cache_hits / cache_hit_rate: session reuse (turns of requests without block hashes)
        plus prefix blocks; the hit rate is the prefix block hit rate when there were prefix queries.
    """
    tot, pool = sim.totals, sim.pool
    hist = sim.metrics.history.arrays(keys=("step_latency_s", "batch_size", "external_fragmentation",
                                            "kv_fragmentation"))
    busy = hist["batch_size"] > 0
    step_lat = hist["step_latency_s"][busy]
    leaks = sim.leaks()
    lookups, hits = int(tot["cache_lookups"]), int(tot["cache_hits"])  # sessions and prefix blocks
    pq, ph = int(tot["prefix_query_blocks"]), int(tot["prefix_hit_blocks"])
    pqt, pht = int(tot["prefix_query_tokens"]), int(tot["prefix_hit_tokens"])
    session_lookups, session_hits = lookups - pq, hits - ph
    base_compactions, base_moved, base_pause = sim.metrics.pool_base
    st = pool.stats()
    cached = int(getattr(st, "cached_bytes", 0))
    # p50 and p99 in one pass each (the dashboard's serving panel reads this 5 times a second)
    step_p, tpot_p, ttft_p = (_pcts(v) for v in (step_lat, sim.metrics.tpot_s, sim.metrics.ttft_s))
    return {
        "steps": sim.steps,
        "sim_time_s": sim.clock,
        "wall_s": sim.metrics.wall_s,
        "requests_total": len(sim.requests),
        "requests_done": int(tot["finished"]),
        "requests_rejected": int(tot["rejected"]),
        "requests_truncated": int(tot["truncated"]),
        "requests_waiting": len(sim.sched.waiting),
        "requests_running": len(sim.sched.running),
        "tokens": int(tot["prefill_tokens"] + tot["decode_tokens"]),
        "generated_tokens": int(tot["generated_tokens"]),
        "prefill_tokens": int(tot["prefill_tokens"]),
        "decode_tokens": int(tot["decode_tokens"]),
        "recompute_tokens": int(tot["recompute_tokens"]),
        "prewarm_tokens": int(tot["prewarm_tokens"]),
        "prewarm_hits": int(tot["prewarm_hits"]),
        "tokens_per_sim_s": (tot["prefill_tokens"] + tot["decode_tokens"]) / sim.clock if sim.clock else 0.0,
        "step_latency_p50_s": step_p[0],
        "step_latency_p99_s": step_p[1],
        "per_token_latency_p50_s": tpot_p[0],
        "per_token_latency_p99_s": tpot_p[1],
        "ttft_p50_s": ttft_p[0],
        "ttft_p99_s": ttft_p[1],
        "failures": int(tot["failures"]),
        "fragmentation_failures": int(tot["fragmentation_failures"]),
        "preemptions": int(tot["preemptions"]),
        "compactions": pool.compactions - base_compactions,
        "compaction_bytes_moved": pool.compaction_bytes_moved - base_moved,
        "compaction_pause_s": pool.compaction_pause_s - base_pause,
        "pool_growths": int(tot["pool_growths"]),
        "growth_s": float(tot["growth_s"]),
        "capacity_bytes": st.capacity_bytes,
        "used_bytes": st.used_bytes,
        "cached_bytes": cached,
        "free_bytes": st.free_bytes,
        "kv_usage": st.used_bytes / st.capacity_bytes if st.capacity_bytes else 0.0,
        "peak_utilisation": sim.metrics.peak_utilisation,
        "mean_external_fragmentation": float(hist["external_fragmentation"][busy].mean()) if busy.any() else 0.0,
        "mean_kv_fragmentation": float(hist["kv_fragmentation"][busy].mean()) if busy.any() else 0.0,
        "cache_lookups": lookups,
        "cache_hits": hits,
        "cache_hit_rate": (ph / pq if pq else session_hits / session_lookups if session_lookups else 0.0),
        "cache_bytes_saved": int(tot["reused_tokens"] + tot["prefix_hit_tokens"]) * sim.layout.bytes_per_token,
        "prefix_cache_queries": pq,
        "prefix_cache_hits": ph,
        "prefix_cache_hit_rate": ph / pq if pq else 0.0,
        "prefix_cache_query_tokens": pqt,
        "prefix_cache_hit_tokens": pht,
        "prefix_cache_token_hit_rate": pht / pqt if pqt else 0.0,
        "prefix_copy_bytes": int(tot["prefix_copy_bytes"]),
        "prefix_cache_entries": len(sim.prefix),
        "pinned_bytes": sim.prefix.pinned_pages() * pool.page_size,
        "evictions": int(tot["evictions"]),
        "evicted_entries": int(tot["evicted_entries"]),
        "expired": int(tot["expired"]),
        "leaked_blocks": len(leaks),
        "leaked_bytes": sum(d["nbytes"] for d in leaks),
    }


def over_time(sim: ServingSim, bins: int = 10) -> pd.DataFrame:
    """The run cut into ``bins`` equal slices of simulated time (from the first to the last step kept):
    per slice, TTFT and TPOT percentiles of the requests whose first token (TTFT) or last token (TPOT)
    fell in it, the mean queue and running batch, mean used / cached / free MiB, mean KV fragmentation,
    failed allocations, preemptions and tokens per simulated second."""
    cols = sim.metrics.history.arrays()
    time_s = cols["time_s"]
    if not len(time_s):
        return pd.DataFrame()
    start = time_s[0] - cols["step_latency_s"][0]
    edges = np.linspace(start, time_s[-1], bins + 1)
    edges[-1] = np.nextafter(edges[-1], np.inf)
    step_bin = np.clip(np.searchsorted(edges, time_s, side="right") - 1, 0, bins - 1)
    ttft_at, ttft = np.asarray(sim.metrics.ttft_at_s), np.asarray(sim.metrics.ttft_s)
    tpot_at, tpot = np.asarray(sim.metrics.tpot_at_s), np.asarray(sim.metrics.tpot_s)
    mib = float(1 << 20)
    rows = []
    for b in range(bins):
        lo, hi = edges[b], edges[b + 1]
        m = step_bin == b
        ft = ttft[(ttft_at >= lo) & (ttft_at < hi)]
        fp = tpot[(tpot_at >= lo) & (tpot_at < hi)]
        span = hi - lo
        rows.append({
            "t_start_s": lo, "t_end_s": min(hi, float(time_s[-1])), "steps": int(m.sum()),
            "ttft_p50_s": _pct(ft, 50), "ttft_p99_s": _pct(ft, 99), "tpot_p50_s": _pct(fp, 50),
            "tpot_p99_s": _pct(fp, 99), "first_tokens": len(ft), "finished": len(fp),
            "queue_mean": float(cols["queue_length"][m].mean()) if m.any() else float("nan"),
            "running_mean": float(cols["running"][m].mean()) if m.any() else float("nan"),
            "used_mib": float(cols["used_bytes"][m].mean()) / mib if m.any() else float("nan"),
            "cached_mib": float(cols["cached_bytes"][m].mean()) / mib if m.any() else float("nan"),
            "free_mib": float(cols["free_bytes"][m].mean()) / mib if m.any() else float("nan"),
            "kv_fragmentation": float(cols["kv_fragmentation"][m].mean()) if m.any() else float("nan"),
            "failures": int(cols["failures"][m].sum()), "preemptions": int(cols["preemptions"][m].sum()),
            "tokens_per_s": float(cols["tokens"][m].sum()) / span if span > 0 else float("nan"),
        })
    return pd.DataFrame(rows)


def slowdown_ratio(table: pd.DataFrame) -> float:
    """TTFT p50 of the last slice of an `over_time` table over that of its first (with 10 slices: the
    last tenth of the run against the first); NaN when either slice had no first token."""
    if not len(table) or "ttft_p50_s" not in table:
        return float("nan")
    first, last = float(table["ttft_p50_s"].iloc[0]), float(table["ttft_p50_s"].iloc[-1])
    return last / first if math.isfinite(first) and math.isfinite(last) and first > 0 else float("nan")
