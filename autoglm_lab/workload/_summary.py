"""`summarise`: the numbers a run is judged by (the dict returned by `ServingSim.summary`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._sim import ServingSim

__all__ = ["summarise"]


def _pct(values: np.ndarray | list[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def summarise(sim: ServingSim) -> dict[str, Any]:
    tot, pool = sim.totals, sim.pool
    hist = sim._history.arrays(keys=("step_latency_s", "batch_size", "external_fragmentation", "kv_fragmentation"))
    busy = hist["batch_size"] > 0
    step_lat = hist["step_latency_s"][busy]
    leaks = sim.leaks()
    lookups = int(tot["cache_lookups"])
    base_compactions, base_moved, base_pause = sim._pool_base
    return {
        "steps": sim.steps,
        "sim_time_s": sim.clock,
        "wall_s": sim._wall_s,
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
        "step_latency_p50_s": _pct(step_lat, 50),
        "step_latency_p99_s": _pct(step_lat, 99),
        "per_token_latency_p50_s": _pct(sim._tpot, 50),
        "per_token_latency_p99_s": _pct(sim._tpot, 99),
        "ttft_p50_s": _pct(sim._ttft, 50),
        "ttft_p99_s": _pct(sim._ttft, 99),
        "failures": int(tot["failures"]),
        "fragmentation_failures": int(tot["fragmentation_failures"]),
        "preemptions": int(tot["preemptions"]),
        "compactions": pool.compactions - base_compactions,
        "compaction_bytes_moved": pool.compaction_bytes_moved - base_moved,
        "compaction_pause_s": pool.compaction_pause_s - base_pause,
        "peak_utilisation": sim._peak_util,
        "mean_external_fragmentation": float(hist["external_fragmentation"][busy].mean()) if busy.any() else 0.0,
        "mean_kv_fragmentation": float(hist["kv_fragmentation"][busy].mean()) if busy.any() else 0.0,
        "cache_lookups": lookups,
        "cache_hits": int(tot["cache_hits"]),
        "cache_hit_rate": tot["cache_hits"] / lookups if lookups else 0.0,
        "cache_bytes_saved": int(tot["reused_tokens"]) * sim.layout.bytes_per_token,
        "evictions": int(tot["evictions"]),
        "expired": int(tot["expired"]),
        "cached_bytes": sim.cache.bytes,
        "leaked_blocks": len(leaks),
        "leaked_bytes": sum(d["nbytes"] for d in leaks),
    }
