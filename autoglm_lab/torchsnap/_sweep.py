"""`sweep`: what-if replays of one snapshot over pool configurations and device capacities, on any
`concurrent.futures` executor (the tuning layer's process pool by default, a Dask cluster's
``client.get_executor()``, or ``"serial"``). Rows come back in task order, whoever ran them."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..pool import PoolConfig, parse_size
from ._load import load_torch_snapshot
from ._replay import DEFAULT_BANDWIDTH, pick_device, pool_config, replay_pool
from ._schema import Action, TorchSnapshot

__all__ = ["sweep", "sweep_row"]

_CACHE: dict[str, TorchSnapshot] = {}  # per worker process: each file is loaded once


def sweep_row(source: TorchSnapshot | str, device: int, config: PoolConfig, capacity: int | None,
              bandwidth: float) -> dict[str, Any]:
    """One replay as a table row (run in a worker: ``source`` is then the snapshot's path)."""
    if isinstance(source, str):
        snap = _CACHE.get(source)
        if snap is None:
            snap = _CACHE[source] = load_torch_snapshot(source, max_bytes=None)
    else:
        snap = source
    rep = replay_pool(snap, device, config, capacity=capacity, bandwidth=bandwidth)
    trace = snap.trace_of(device)
    oom_idx = set(trace.indices(Action.OOM).tolist()) if trace is not None else set()
    ooms = [o for i, o in rep.outcomes.items() if i in oom_idx]
    return {"page_size": int(rep.config.page_size), "fit": rep.config.fit,
            "coalesce": rep.config.coalesce, "compaction": rep.config.compaction,
            "capacity": rep.capacity_bytes, "failed_allocs": rep.failed_allocs, "allocs": rep.allocs,
            "ooms_served": sum(o.served for o in ooms), "ooms": len(ooms), "compactions": rep.compactions,
            "bytes_moved": rep.bytes_moved, "pause_estimate_s": rep.bytes_moved / bandwidth,
            "peak_used_bytes": rep.peak_used_bytes, "complete": not rep.notes, "label": rep.label}


def sweep(snapshot: TorchSnapshot | str | os.PathLike[str], configs: Sequence[PoolConfig | Mapping[str, Any]], *,
          capacities: Sequence[int | str | None] = (None,), device: int | None = None,
          executor: cf.Executor | str | None = "serial", max_workers: int | None = None,
          bandwidth: float = DEFAULT_BANDWIDTH) -> pd.DataFrame:
    """Replay ``snapshot`` into a paged pool for every (config, capacity) pair; one row each.

    capacities: device sizes to try (None: `device_capacity`). executor: "serial", any
    `concurrent.futures.Executor`, or None for the tuning layer's process pool. Other processes
    read the snapshot from its file, so give a path (or a snapshot loaded from one).
    Columns: page_size, fit, coalesce, compaction, capacity, failed_allocs (allocations torch served
    that the pool could not), allocs, ooms_served, ooms, compactions, bytes_moved, pause_estimate_s,
    peak_used_bytes, complete (False when allocations from before the trace did not fit), label.
    """
    path: str | None
    if isinstance(snapshot, str | os.PathLike):
        path = os.fspath(snapshot)
        snap = load_torch_snapshot(snapshot, max_bytes=None)
    else:
        snap = snapshot
        path = snap.source if os.path.isfile(snap.source) else None
    device = pick_device(snap, device)
    cfgs = [pool_config(c) for c in configs]
    caps = [None if c is None else parse_size(c, name="capacity") for c in capacities]
    tasks = list(itertools.product(cfgs, caps))
    if executor == "serial":
        rows = [sweep_row(snap, device, c, cap, bandwidth) for c, cap in tasks]
    else:
        if isinstance(executor, str) or not (executor is None or hasattr(executor, "submit")):
            raise ValueError(f"executor={executor!r} is not allowed: 'serial', a concurrent.futures.Executor or None")
        if path is None:
            raise ValueError("a sweep on other processes reads the snapshot from its file: pass its path, or use "
                             "executor='serial'")
        own = executor is None
        if own:
            from ..tuning import default_executor

            executor = default_executor(max_workers)
        try:
            futures = [executor.submit(sweep_row, path, device, c, cap, bandwidth)  # type: ignore[union-attr]
                       for c, cap in tasks]
            rows = [f.result() for f in futures]
        finally:
            if own:
                executor.shutdown()  # type: ignore[union-attr]
    return pd.DataFrame(rows)
