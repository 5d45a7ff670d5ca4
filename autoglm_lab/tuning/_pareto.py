"""Pareto fronts and objectives over a results table (pure pandas/numpy; no simulator needed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import numpy as np
import pandas as pd

__all__ = ["pareto_front", "pareto_mask", "objective_scores", "SENSES", "Objective"]

# Columns with a natural direction: "min" = lower is better.
SENSES: dict[str, str] = {
    "mean_utilisation": "max", "peak_utilisation": "max", "requests_done": "max", "tokens_per_sim_s": "max",
    "cache_hit_rate": "max",
    "mean_external_fragmentation": "min", "failures": "min", "preemptions": "min",
    "ttft_p50_s": "min", "ttft_p99_s": "min", "tpot_p50_s": "min", "tpot_p99_s": "min",
    "step_latency_p50_s": "min", "step_latency_p99_s": "min", "compactions": "min", "requests_rejected": "min",
    "compaction_bytes_moved": "min", "compaction_pause_wall_s": "min", "trial_wall_s": "min",
}
Objective = Union[str, Callable[[pd.DataFrame], "pd.Series[float]"]]  # noqa: UP007 (runtime alias on 3.10)


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        raise ValueError(f"results have no column {name!r}: use one of {', '.join(map(str, df.columns))}")
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


def pareto_mask(df: pd.DataFrame, x: str = "mean_utilisation", y: str = "ttft_p99_s", *,
                maximize_x: bool = True, minimize_y: bool = True) -> np.ndarray:
    """True for rows no other row dominates (at least as good in both, better in one). NaN counts as
    the worst value; equal points are all kept."""
    xs = _column(df, x) * (1.0 if maximize_x else -1.0)   # larger is better
    ys = _column(df, y) * (1.0 if minimize_y else -1.0)   # smaller is better
    xs = np.where(np.isnan(xs), -np.inf, xs)
    ys = np.where(np.isnan(ys), np.inf, ys)
    ge = xs[None, :] >= xs[:, None]   # [i, j]: j at least as good as i in x
    le = ys[None, :] <= ys[:, None]
    strict = (xs[None, :] > xs[:, None]) | (ys[None, :] < ys[:, None])
    return ~np.any(ge & le & strict, axis=1)


def pareto_front(df: pd.DataFrame, x: str = "mean_utilisation", y: str = "ttft_p99_s", *,
                 maximize_x: bool = True, minimize_y: bool = True) -> pd.DataFrame:
    """The non-dominated rows of ``df`` for (``x``, ``y``), sorted by ``x`` (default: utilisation up,
    p99 time to first token down)."""
    front = df[pareto_mask(df, x, y, maximize_x=maximize_x, minimize_y=minimize_y)]
    return front.sort_values([x, y], kind="stable")


def objective_scores(df: pd.DataFrame, objective: Objective) -> pd.Series:
    """A score per row, lower is better (NaN -> +inf). ``objective``: a column with a known direction
    (see `SENSES`), ``"min:col"`` or ``"max:col"`` for any numeric column, or a callable of the table
    returning a Series to minimise."""
    if callable(objective):
        score = pd.Series(objective(df), index=df.index, dtype=float)
    elif isinstance(objective, str):
        sense, _, name = objective.rpartition(":")
        if not sense:
            sense = SENSES.get(name, "")
            if not sense:
                raise ValueError(f"objective {objective!r} has no known direction: write 'min:{name}' or "
                                 f"'max:{name}', or one of {', '.join(SENSES)}")
        if sense not in ("min", "max"):
            raise ValueError(f"objective {objective!r}: the prefix must be 'min:' or 'max:'")
        values = _column(df, name)
        score = pd.Series(values if sense == "min" else -values, index=df.index, dtype=float)
    else:
        raise ValueError(f"objective={objective!r} must be a column name, 'min:col', 'max:col' or a callable")
    return score.fillna(np.inf)
