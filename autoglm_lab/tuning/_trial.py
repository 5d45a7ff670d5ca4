"""`run_trial`: build a fresh pool and simulator for one trial, run the workload, return its metrics.

A module-level function of picklable arguments, so any `concurrent.futures.Executor` (processes,
a Dask cluster) can run it. With ``compute="none"`` the simulator runs on a virtual clock, so every
metric except the ``*_wall_s`` columns is the same wherever and however often the trial runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..pool import PagedPool
from ..workload import ServingSim
from ._space import Trial
from ._workload import Workload

__all__ = ["run_trial", "METRICS", "WALL_COLUMNS"]

# Column -> what it means. Latencies are simulated seconds (compute="none"), wall columns are not.
METRICS: dict[str, str] = {
    "mean_utilisation": "requested bytes / pool capacity, averaged over busy steps",
    "peak_utilisation": "highest requested bytes / capacity seen",
    "mean_external_fragmentation": "1 - largest free run / free bytes, averaged over busy steps",
    "failures": "KV allocations the pool refused",
    "preemptions": "running sequences preempted for memory",
    "ttft_p50_s": "median time to first token (queueing + prefill)",
    "ttft_p99_s": "99th percentile time to first token",
    "tpot_p50_s": "median time per output token after the first",
    "tpot_p99_s": "99th percentile time per output token",
    "step_latency_p50_s": "median scheduler step latency",
    "step_latency_p99_s": "99th percentile scheduler step latency",
    "requests_done": "requests finished",
    "requests_rejected": "requests refused (too long for the context limit or the pool)",
    "tokens_per_sim_s": "prefill + decode tokens per simulated second",
    "compactions": "compactions run",
    "compaction_bytes_moved": "bytes moved by compaction",
    "cache_hit_rate": "KV reuse hits / lookups",
    "sim_time_s": "simulated seconds the trial covered",
    "steps": "simulator steps run",
    "compaction_pause_wall_s": "measured wall time of compaction pauses (varies run to run)",
    "trial_wall_s": "measured wall time of the whole trial (varies run to run)",
}
WALL_COLUMNS = ("compaction_pause_wall_s", "trial_wall_s")
# Metric column -> key of `ServingSim.summary()` where the names differ; the others share the name.
_RENAMED = {"tpot_p50_s": "per_token_latency_p50_s", "tpot_p99_s": "per_token_latency_p99_s",
            "compaction_pause_wall_s": "compaction_pause_s"}
_FROM_SUMMARY = {c: _RENAMED.get(c, c) for c in METRICS if c not in ("mean_utilisation", "trial_wall_s")}


def run_trial(trial: Trial, workload: Workload) -> dict[str, Any]:
    """Metrics of one trial as a flat dict: ``trial``, the trial's parameters, then `METRICS`."""
    t0 = time.perf_counter()
    pool = PagedPool(trial.pool)
    sim = ServingSim(pool, trial.serving, requests=workload.requests())
    summary = sim.run(workload.steps, until=workload.until_s, progress=False)
    steps = sim.results()
    busy = steps["batch_size"].to_numpy() > 0
    util = steps["utilisation"].to_numpy()[busy]
    row: dict[str, Any] = {"trial": trial.index, **dict(trial.params)}
    row["mean_utilisation"] = float(np.mean(util)) if util.size else 0.0
    for column, key in _FROM_SUMMARY.items():
        row[column] = summary[key]
    row["trial_wall_s"] = time.perf_counter() - t0
    return row
