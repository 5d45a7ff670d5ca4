"""`tune`: run a sweep of trials on any `concurrent.futures.Executor` and collect a `TuneResult`.

```
space + base configs --grid/random--> trials --executor.submit(run_trial)--> rows --sort by trial--> DataFrame
```

Rows are put back in trial order, so the table is the same whichever executor ran the trials and in
whatever order they finished.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from tqdm.auto import tqdm

from ..pool import PoolConfig
from ..workload import ServingConfig
from . import _trial as _trial_module
from ._pareto import Objective, objective_scores, pareto_front
from ._space import DEFAULT_POOL, DEFAULT_SERVING, MAX_TRIALS, Trial, build_configs, grid_trials, random_trials
from ._trial import WALL_COLUMNS, run_trial
from ._workload import Workload

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["tune", "TuneResult", "default_executor"]

_MAX_WORKERS = 1024


@dataclass(frozen=True)
class TuneResult:
    """What a sweep found. ``results``: one row per trial (``trial``, the parameters, the metrics)."""

    results: pd.DataFrame
    space: dict[str, Any]
    objective: Objective
    pool_config: PoolConfig
    serving_config: ServingConfig
    workload: Workload
    method: str
    seed: int
    params: tuple[str, ...] = field(default=())

    def pareto(self, x: str = "mean_utilisation", y: str = "ttft_p99_s") -> pd.DataFrame:
        """Trials no other trial beats on both memory utilisation (higher) and latency (lower)."""
        return pareto_front(self.results, x, y)

    def best(self, objective: Objective | None = None) -> pd.Series:
        """The row with the best score for ``objective`` (default: the sweep's); ties: lowest trial."""
        scores = objective_scores(self.results, self.objective if objective is None else objective)
        return self.results.loc[scores.idxmin()]

    def best_config(self, objective: Objective | None = None) -> tuple[PoolConfig, ServingConfig]:
        """The configurations of the best trial, ready for ``PagedPool(pool_cfg)`` and ``ServingSim``."""
        row = self.best(objective)
        return build_configs([(p, _plain(row[p])) for p in self.params], self.pool_config, self.serving_config)

    def comparable(self) -> pd.DataFrame:
        """``results`` without the measured wall-time columns: equal for equal seeds, wherever run."""
        return self.results.drop(columns=[c for c in WALL_COLUMNS if c in self.results.columns])

    def figure(self, x: str = "mean_utilisation", y: str = "ttft_p99_s", *, title: str | None = None) -> go.Figure:
        """A plotly scatter of every trial with the Pareto front highlighted and the best trial marked."""
        from ._figure import tradeoff_figure

        return tradeoff_figure(self, x=x, y=y, title=title)


def _plain(value: Any) -> Any:
    """numpy scalars from a DataFrame back to Python values (configs validate exact types)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one trial per core: no oversubscription from torch's own threads


def default_executor(max_workers: int | None = None) -> cf.ProcessPoolExecutor:
    """Processes on this machine (at most 2 by default: trials are small and cores are shared).

    Workers fork from a "forkserver" process, a clean single-threaded interpreter that imports the
    simulator once (torch included), so they start in milliseconds and never inherit the threads of
    the caller (a notebook, a dashboard loop). As with any non-fork start method, a script that calls
    `tune` needs the ``if __name__ == "__main__":`` guard.
    """
    workers = max_workers if max_workers is not None else max(1, min(2, os.cpu_count() or 1))
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([_trial_module.__name__])
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)


def tune(space: Mapping[str, Any], workload: Workload | None = None, *, objective: Objective = "ttft_p99_s",
         n_trials: int | None = None, method: Literal["grid", "random"] = "grid", seed: int = 0,
         executor: cf.Executor | Literal["serial"] | None = None, progress: bool = True,
         pool_config: PoolConfig | None = None, serving_config: ServingConfig | None = None,
         max_workers: int | None = None) -> TuneResult:
    """Run one trial per point of ``space`` and return the table, Pareto front and best configs.

    space: PoolConfig/ServingConfig field -> values (see `autoglm_lab.tuning._space`).
    workload: the seeded requests and run length every trial serves (default `Workload()`).
    objective: what `TuneResult.best` optimises: a metric column (`SENSES` gives its direction),
        ``"min:col"``/``"max:col"``, or a callable of the results table returning scores to minimise.
    method: "grid" (every point; ``n_trials`` is then an upper bound) or "random" (``n_trials``
        distinct points, default 20, drawn with ``seed``).
    executor: any `concurrent.futures.Executor` (e.g. a Dask ``client.get_executor()``); None starts a
        process pool of ``max_workers`` (default 2) for this call; "serial" runs in this process.
    pool_config, serving_config: the base configs the space's values replace (defaults: a fixed
        4 MiB pool of 16 KiB pages, device="auto"; contiguous KV, LRU reuse, compute="none"); a `PoolConfig` /
        `ServingConfig`, not a dict (TypeError).
    Bad arguments raise TypeError/ValueError naming the argument before any trial runs.
    """
    wl = Workload() if workload is None else workload
    if not isinstance(wl, Workload):
        raise TypeError(f"workload={_short(wl)} is not allowed: use a Workload, not {type(wl).__name__}")
    base_pool = DEFAULT_POOL if pool_config is None else pool_config
    base_serving = DEFAULT_SERVING if serving_config is None else serving_config
    # configs, not dicts: a dict would leave open which base its fields change (use the space for that)
    for name, value, kind in (("pool_config", base_pool, PoolConfig), ("serving_config", base_serving, ServingConfig)):
        if not isinstance(value, kind):
            raise TypeError(f"{name}={_short(value)} is not allowed: use None or a {kind.__name__}, not "
                            f"{type(value).__name__} (e.g. {kind.__name__}(**fields), or put the fields to vary "
                            f"in the space)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not allowed: use an integer >= 0")
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int)
                                 or not 1 <= n_trials <= MAX_TRIALS):
        raise ValueError(f"n_trials={n_trials!r} is not allowed: use None or an integer from 1 to {MAX_TRIALS:,}")
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                    or not 1 <= max_workers <= _MAX_WORKERS):
        raise ValueError(f"max_workers={max_workers!r} is not allowed: use None or an integer from 1 to "
                         f"{_MAX_WORKERS}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} is not allowed: use True or False")
    if not (executor is None or executor == "serial" or isinstance(executor, cf.Executor)
            or (not isinstance(executor, str) and hasattr(executor, "submit"))):
        raise TypeError(f"executor={_short(executor)} is not allowed: executor must be a "
                        f"concurrent.futures.Executor, 'serial' or None, not {type(executor).__name__}")
    if method == "grid":
        trials = grid_trials(space, base_pool, base_serving, n_trials)
    elif method == "random":
        trials = random_trials(space, base_pool, base_serving, 20 if n_trials is None else n_trials, seed)
    else:
        raise ValueError(f"method={method!r} is not allowed: choose 'grid' or 'random'")
    objective_scores(pd.DataFrame({c: [] for c in _metric_names()}), objective)  # fail early on a bad name
    wl.check()
    rows = _run_all(trials, wl, executor, progress, max_workers)
    params = tuple(name for name, _ in trials[0].params)
    table = pd.DataFrame(sorted(rows, key=lambda r: r["trial"]))
    return TuneResult(table, {k: list(v) if isinstance(v, list | tuple | range) else v for k, v in space.items()},
                      objective, base_pool, base_serving, wl, method, seed, params)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _metric_names() -> list[str]:
    from ._trial import METRICS

    return list(METRICS)


def _run_all(trials: list[Trial], wl: Workload, executor: cf.Executor | str | None, progress: bool,
             max_workers: int | None) -> list[dict[str, Any]]:
    bar = tqdm(total=len(trials), disable=not progress, desc="tuning", unit="trial")
    try:
        if executor == "serial":
            rows = []
            for t in trials:
                rows.append(run_trial(t, wl))
                bar.update(1)
            return rows
        own = executor is None
        ex = default_executor(max_workers) if own else executor
        try:
            futures = [ex.submit(run_trial, t, wl) for t in trials]  # type: ignore[union-attr]
            rows = []
            for fut in cf.as_completed(futures):
                rows.append(fut.result())
                bar.update(1)
            return rows
        finally:
            if own:
                ex.shutdown(wait=True, cancel_futures=True)  # type: ignore[union-attr]
    finally:
        bar.close()
