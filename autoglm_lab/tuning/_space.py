"""Search spaces: which pool and serving fields a sweep varies, and the trials grid or random search picks.

A space maps a field name of `PoolConfig` or `ServingConfig` to the values to try::

    {"page_size": ["16KiB", "64KiB"], "memory_pool_initial_size": ["4MiB", "8MiB"],
     "cache_reuse_strategy": ["none", "lru"], "compaction": ["off", "lazy", "eager"]}

A single value (not a list or tuple) is held fixed. Every trial's configs are built and validated
before any trial runs, so a bad value fails at once with the trial's parameters in the message.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..pool import PoolConfig
from ..workload import ServingConfig

__all__ = ["Trial", "normalise_space", "grid_trials", "random_trials", "build_configs", "POOL_FIELDS",
           "SERVING_FIELDS", "DEFAULT_POOL", "DEFAULT_SERVING", "MAX_TRIALS"]

POOL_FIELDS = frozenset(f.name for f in dataclasses.fields(PoolConfig) if not f.name.startswith("_"))
SERVING_FIELDS = frozenset(f.name for f in dataclasses.fields(ServingConfig))
# A small fixed-size pool (on the GPU when there is one): sweeps run many trials, and a pool that
# cannot grow shows the trade-off.
DEFAULT_POOL = PoolConfig(page_size="16KiB", memory_pool_initial_size="4MiB", max_size=None, device="auto")
DEFAULT_SERVING = ServingConfig(kv_layout="contiguous", compute="none", cache_reuse_strategy="lru")
_MAX_ENUMERATED = 1_000_000
MAX_TRIALS = 100_000  # every trial's configs are built up front; a sweep this long is a typo


@dataclass(frozen=True)
class Trial:
    """One point of the space: its position, its parameters and the validated configs they give."""

    index: int
    params: tuple[tuple[str, Any], ...]
    pool: PoolConfig
    serving: ServingConfig


def normalise_space(space: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """name -> non-empty tuple of values; unknown names and empty lists raise ``ValueError``."""
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a non-empty mapping of PoolConfig/ServingConfig field -> values, "
                        f"not {type(space).__name__}")
    if not space:
        raise ValueError("space must be a non-empty mapping of PoolConfig/ServingConfig field -> values")
    out: dict[str, tuple[Any, ...]] = {}
    for name, values in space.items():
        if not isinstance(name, str) or (name not in POOL_FIELDS and name not in SERVING_FIELDS):
            known = ", ".join(sorted(POOL_FIELDS | SERVING_FIELDS))
            raise ValueError(f"space has unknown parameter {name!r}; use PoolConfig or ServingConfig fields: {known}")
        vals = tuple(values) if isinstance(values, list | tuple | range) else (values,)
        if not vals:
            raise ValueError(f"space[{name!r}] is empty: give at least one value")
        out[name] = vals
    return out


def grid_size(space: Mapping[str, tuple[Any, ...]]) -> int:
    return math.prod(len(v) for v in space.values())


def grid_points(space: Mapping[str, tuple[Any, ...]]) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination, the last parameter varying fastest (``itertools.product`` order)."""
    names = list(space)
    return [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*space.values())]


def random_points(space: Mapping[str, tuple[Any, ...]], n_trials: int, seed: int) -> list[tuple[tuple[str, Any], ...]]:
    """``n_trials`` distinct points drawn with ``numpy.random.default_rng(seed)`` (fewer when the grid is
    smaller), in the order drawn."""
    names, sizes = list(space), [len(v) for v in space.values()]
    total = math.prod(sizes)
    rng = np.random.default_rng(seed)
    k = min(n_trials, total)
    if total <= _MAX_ENUMERATED:
        flat = rng.choice(total, size=k, replace=False)
        coords = [tuple(int(i) for i in c) for c in zip(*np.unravel_index(flat, sizes), strict=True)]
    else:  # too many points to enumerate: draw coordinates and drop repeats
        seen: set[tuple[int, ...]] = set()
        coords = []
        while len(coords) < k:
            c = tuple(int(rng.integers(s)) for s in sizes)
            if c not in seen:
                seen.add(c)
                coords.append(c)
    return [tuple((n, space[n][i]) for n, i in zip(names, c, strict=True)) for c in coords]


def build_configs(params: Sequence[tuple[str, Any]], pool: PoolConfig, serving: ServingConfig
                  ) -> tuple[PoolConfig, ServingConfig]:
    """The base configs with ``params`` applied. When the space changes ``memory_pool_initial_size``
    but not ``max_size``, a fixed-size base pool stays fixed-size and a growable one grows at least
    to the new initial size."""
    pool_changes = {k: v for k, v in params if k in POOL_FIELDS}
    serving_changes = {k: v for k, v in params if k in SERVING_FIELDS}
    if "memory_pool_initial_size" in pool_changes and "max_size" not in pool_changes:
        if pool.max_size == pool.memory_pool_initial_size:
            pool_changes["max_size"] = None
        else:
            from ..pool import parse_size
            initial = parse_size(pool_changes["memory_pool_initial_size"], name="memory_pool_initial_size")
            pool_changes["max_size"] = max(pool.max_size, initial)
    resized = "page_size" in pool_changes or "memory_pool_initial_size" in pool_changes
    if resized and "segment_size" not in pool_changes and pool.segment_size == pool.memory_pool_initial_size:
        pool_changes["segment_size"] = None  # later segments keep following the initial size
    return pool.replace(**pool_changes), serving.replace(**serving_changes)


def make_trials(points: Sequence[tuple[tuple[str, Any], ...]], pool: PoolConfig, serving: ServingConfig
                ) -> list[Trial]:
    trials = []
    for i, params in enumerate(points):
        try:
            p, s = build_configs(params, pool, serving)
        except ValueError as err:
            raise ValueError(f"trial {i} {dict(params)} is not a valid configuration: {err}") from None
        trials.append(Trial(i, params, p, s))
    return trials


def grid_trials(space: Mapping[str, Any], pool: PoolConfig, serving: ServingConfig,
                n_trials: int | None = None) -> list[Trial]:
    norm = normalise_space(space)
    size = grid_size(norm)
    if size > MAX_TRIALS:
        raise ValueError(f"the grid has {size:,} points, more than the {MAX_TRIALS:,} a sweep may run: shrink the "
                         f"space or use method='random'")
    if n_trials is not None and n_trials < size:
        raise ValueError(f"the grid has {size} points but n_trials={n_trials}: raise n_trials, shrink the space "
                         f"or use method='random'")
    return make_trials(grid_points(norm), pool, serving)


def random_trials(space: Mapping[str, Any], pool: PoolConfig, serving: ServingConfig, n_trials: int,
                  seed: int) -> list[Trial]:
    norm = normalise_space(space)
    return make_trials(random_points(norm, n_trials, seed), pool, serving)
