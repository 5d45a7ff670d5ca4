"""The default demo setup, shared by `Dashboard.demo()`, the command line and the notebooks."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Any

from ..pool import PagedPool, PoolConfig
from ._config import ServingConfig
from ._requests import Request, synthetic_requests
from ._sim import ServingSim
from ._trace import load_trace

__all__ = ["shipped_trace_path", "demo_requests", "demo_setup"]

log = logging.getLogger(__name__)

TRACE_NAME = "azure_llm_2023_conv.csv"
DEMO_POOL = {"page_size": "64KiB", "memory_pool_initial_size": "64MiB", "max_size": "64MiB",
             "device": "auto", "compaction": "lazy"}  # auto: CUDA when torch sees a GPU, else the CPU


def shipped_trace_path() -> Path:
    """The real one-hour conversation trace shipped inside the package (Azure LLM inference trace
    2023, CC-BY 4.0; see ``autoglm_lab/data/README.md`` for the attribution)."""
    return Path(str(resources.files("autoglm_lab") / "data" / TRACE_NAME))


def demo_requests(*, limit: int = 2000, time_scale: float = 4.0, seed: int = 0) -> list[Request]:
    """The first ``limit`` requests of the shipped trace, ``time_scale`` times faster; a seeded
    synthetic trace if the shipped file is missing or unreadable."""
    try:
        return load_trace(shipped_trace_path(), limit=limit, time_scale=time_scale)
    except (OSError, ValueError) as err:
        log.warning("demo: shipped trace unusable (%s); using a synthetic one", err)
        return synthetic_requests(limit, rate_per_s=8.0 * time_scale, seed=seed)


def demo_setup(*, kv_layout: str = "contiguous", cache_reuse_strategy: str = "lru", seed: int = 0,
               limit: int = 2000, time_scale: float = 4.0, **pool_overrides: Any) -> tuple[PagedPool, ServingSim]:
    """A 64 MiB pool of 64 KiB pages with lazy compaction (on the GPU when torch sees one, else the
    CPU; ``device="cpu"`` forces it), and a simulator replaying the shipped trace with contiguous KV
    and LRU reuse: the lab's ready-to-play default."""
    pool = PagedPool(PoolConfig(**{**DEMO_POOL, **pool_overrides}))
    sim = ServingSim(pool, ServingConfig(kv_layout=kv_layout, cache_reuse_strategy=cache_reuse_strategy, seed=seed),
                     requests=demo_requests(limit=limit, time_scale=time_scale, seed=seed))
    return pool, sim
