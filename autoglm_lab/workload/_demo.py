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

__all__ = ["shipped_trace_path", "mooncake_trace_path", "demo_trace_path", "demo_requests", "demo_setup",
           "DEMO_LIMIT"]

log = logging.getLogger(__name__)

TRACE_NAME = "azure_llm_2023_conv.csv"
MOONCAKE_NAME = "mooncake_conversation_trace.jsonl"
DEMO_TRACES = ("mooncake", "azure")
DEMO_LIMIT = 2000  # requests replayed: enough for the pool to fill, fragment and recover several times
# arrivals this many times faster than recorded: one 64 MiB pool then sees a busy server's pressure (at the
# recorded rate the shipped traces leave it mostly idle: no fragmentation to see); the CLI's replay default
DEMO_TIME_SCALE = 8.0
DEMO_POOL = {"page_size": "64KiB", "memory_pool_initial_size": "64MiB", "max_size": "64MiB",
             "device": "auto", "compaction": "lazy"}  # auto: CUDA when torch sees a GPU, else the CPU


def shipped_trace_path() -> Path:
    """The real one-hour conversation trace shipped inside the package (Azure LLM inference trace
    2023, CC-BY 4.0; see ``autoglm_lab/data/README.md`` for the attribution)."""
    return Path(str(resources.files("autoglm_lab") / "data" / TRACE_NAME))


def mooncake_trace_path() -> Path:
    """The real one-hour Mooncake conversation trace with prefix block hashes, shipped inside the
    package (Apache-2.0; see ``autoglm_lab/data/README.md`` for the attribution)."""
    return Path(str(resources.files("autoglm_lab") / "data" / MOONCAKE_NAME))


def demo_requests(*, limit: int = DEMO_LIMIT, time_scale: float = DEMO_TIME_SCALE, token_scale: float = 0.125,
                  seed: int = 0, trace: str = "mooncake") -> list[Request]:
    """The first ``limit`` requests of a shipped trace, ``time_scale`` times faster and ``token_scale``
    times shorter: ``trace="mooncake"`` (prefix block hashes: real KV reuse; 1/8 makes each 512-token
    prefix block 64 tokens, one 64 KiB page of the default model's KV) or ``"azure"`` (no prefixes);
    a seeded synthetic trace if the file is missing or unreadable."""
    if trace not in DEMO_TRACES:
        raise ValueError(f"trace={trace!r} is not allowed: choose one of {', '.join(map(repr, DEMO_TRACES))}")
    path = mooncake_trace_path() if trace == "mooncake" else shipped_trace_path()
    try:
        return load_trace(path, limit=limit, time_scale=time_scale, token_scale=token_scale)
    except (OSError, ValueError) as err:
        log.warning("demo: shipped trace unusable (%s); using a synthetic one", err)
        return synthetic_requests(limit, rate_per_s=3.4 * time_scale, prompt_median=max(1, 6909 * token_scale),
                                  output_median=max(1, 350 * token_scale), seed=seed)


def demo_trace_path(trace: str = "mooncake") -> Path:
    """The file `demo_setup` replays for ``trace``."""
    return mooncake_trace_path() if trace == "mooncake" else shipped_trace_path()


def demo_setup(*, kv_layout: str = "contiguous", cache_reuse_strategy: str = "lru", seed: int = 0,
               limit: int = DEMO_LIMIT, time_scale: float = DEMO_TIME_SCALE, token_scale: float = 0.125,
               trace: str = "mooncake", **pool_overrides: Any) -> tuple[PagedPool, ServingSim]:
    """A 64 MiB pool of 64 KiB pages with lazy compaction (on the GPU when torch sees one, else the
    CPU; ``device="cpu"`` forces it), and a simulator replaying the first 2,000 requests of the
    Mooncake trace 8x faster with prompts scaled to 1/8, contiguous KV and LRU prefix reuse: the
    lab's ready-to-play default, under real pressure (the running requests' KV and fragmentation,
    with reused prefix blocks kept as evictable cache). ``trace="azure"`` replays the Azure trace
    (no prefixes: pair it with ``cache_reuse_strategy="none"``)."""
    pool = PagedPool(PoolConfig(**{**DEMO_POOL, **pool_overrides}))
    reqs = demo_requests(limit=limit, time_scale=time_scale, token_scale=token_scale, seed=seed, trace=trace)
    sim = ServingSim(pool, ServingConfig(kv_layout=kv_layout, cache_reuse_strategy=cache_reuse_strategy, seed=seed),
                     requests=reqs)
    return pool, sim
