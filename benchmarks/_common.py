"""Small helpers shared by the benchmark scripts (timing, machine description)."""

from __future__ import annotations

import os
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch

import autoglm_lab as al


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}"


def median_ns(fn: Callable[[], object], n: int, *, warmup: int = 200) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return statistics.median(samples)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def fragmented(device: str, pool_bytes: int, page: str, max_block_pages: int, seed: int) -> al.PagedPool:
    """A full pool of random 1..max_block_pages-page blocks with half of them freed at random."""
    pool = al.PagedPool(al.PoolConfig(page_size=page, memory_pool_initial_size=pool_bytes, max_size=pool_bytes,
                                      device=device, compaction="off"))
    pool.segment_storage()[0].data.random_(0, 255)  # every page written once: no first-touch cost in a timing
    rng = random.Random(seed)
    live = []
    while True:
        try:
            live.append(pool.alloc_bytes(rng.randint(1, max_block_pages) * pool.page_size))
        except al.PoolExhausted:
            break
    rng.shuffle(live)
    for blk in live[: len(live) // 2]:
        pool.free(blk)
    return pool
