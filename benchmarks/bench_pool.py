"""Pool benchmarks (issue 2 §3.4), printed as figures and ratios measured in one run.

- alloc + free bookkeeping on a fragmented pool of 1k, 64k and 1M pages (best and first fit):
  median per alloc+free pair; targets <= 2 us at 1M pages and 1M / 1k ratio <= 1.5.
- alloc returning a tensor view (alloc + .tensor + free) against torch.empty + del on the same
  device: target <= 2x on CPU.

Each size is measured in --rounds interleaved rounds (1k, 64k, 1M, 1k, 64k, 1M, ...) and the median
of the rounds' medians is reported, so a burst of load on a shared machine does not decide a ratio.
The pool's bookkeeping runs on its compiled core; ``--core python`` measures the pure-Python
reference instead.

Usage: python benchmarks/bench_pool.py [--device cpu|cuda] [--pairs N] [--rounds R] [--core c|python]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch
from _common import machine, median_ns

import autoglm_lab as al

PAGE = 256  # bytes: the bookkeeping does not depend on the page size; small pages keep 1M pages at 256 MiB


def fragmented_pool(pages: int, fit: str, device: str, seed: int = 0) -> tuple[al.PagedPool, list[al.Block]]:
    pool = al.PagedPool(al.PoolConfig(page_size=PAGE, memory_pool_initial_size=pages * PAGE,
                                      max_size=pages * PAGE, device=device, fit=fit, compaction="off",
                                      event_capacity=1024))
    rng = random.Random(seed)
    live: list[al.Block] = []
    while True:  # fill to ~90 %, then free half at random: many runs of many lengths
        try:
            live.append(pool.alloc_bytes(rng.randint(1, 8) * PAGE))
        except al.PoolExhausted:
            break
        if pool.stats().free_pages < pages // 10 if len(live) % 1024 == 0 else False:
            break
    rng.shuffle(live)
    for blk in live[len(live) // 2:]:
        pool.free(blk)
    return pool, live[: len(live) // 2]


def bookkeeping(pages: int, fit: str, device: str, pairs: int) -> tuple[float, float, float, int]:
    """Median ns of one alloc+free pair, of the alloc alone and of the free alone, and the free runs."""
    pool, _live = fragmented_pool(pages, fit, device)
    rng = random.Random(1)
    sizes = [rng.randint(1, 8) * PAGE for _ in range(pairs)]
    clock = time.perf_counter_ns
    pair, alloc_ns, free_ns = [], [], []
    alloc, free = pool.alloc_bytes, pool.free
    for nbytes in sizes:  # steady state: each pair allocates one block and frees one
        t0 = clock()
        blk = alloc(nbytes)
        t1 = clock()
        free(blk)
        t2 = clock()
        pair.append(t2 - t0)
        alloc_ns.append(t1 - t0)
        free_ns.append(t2 - t1)
    pool.check_invariants()
    med = statistics.median
    return med(pair), med(alloc_ns), med(free_ns), pool.stats().free_runs


def view_ratio(device: str, n: int) -> tuple[float, float]:
    pool = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="64MiB", max_size="64MiB",
                                      device=device, compaction="off"))
    shape = (64, 128)

    def pooled() -> None:
        blk = pool.alloc(shape, torch.float16)
        blk.tensor  # noqa: B018 - the view is what is measured
        pool.free(blk)

    def plain() -> None:
        t = torch.empty(shape, dtype=torch.float16, device=device)
        del t

    return median_ns(pooled, n), median_ns(plain, n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pairs", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--core", choices=("c", "python"), default=al.PagedPool.core_kind)
    args = ap.parse_args()
    al.PagedPool.core_kind = args.core
    print(f"machine: {machine()}; device {args.device}; pool core: {args.core}")
    sizes = (1 << 10, 1 << 16, 1 << 20)
    for fit in ("best", "first"):
        rounds: dict[int, list[tuple[float, float, float, int]]] = {p: [] for p in sizes}
        for _ in range(args.rounds):
            for pages in sizes:
                rounds[pages].append(bookkeeping(pages, fit, args.device, args.pairs))
        med: dict[int, float] = {}
        for pages in sizes:
            rs = rounds[pages]
            med[pages] = statistics.median(r[0] for r in rs)
            a = statistics.median(r[1] for r in rs)
            f = statistics.median(r[2] for r in rs)
            spread = ", ".join(f"{r[0] / 1e3:.2f}" for r in rs)
            print(f"alloc+free bookkeeping, fit={fit:5s}, {pages:>8d} pages ({rs[0][3]:>6d} free runs): "
                  f"median {med[pages] / 1e3:5.2f} us per alloc+free pair "
                  f"(alloc {a / 1e3:.2f} us, free {f / 1e3:.2f} us; rounds {spread})")
        ratio = med[1 << 20] / med[1 << 10]
        ok = "OK" if med[1 << 20] <= 2000 and ratio <= 1.5 else "MISSED"
        print(f"  fit={fit}: 1M pages {med[1 << 20] / 1e3:.2f} us per pair (target <= 2 us); "
              f"1M/1k ratio {ratio:.2f} (target <= 1.5) -> {ok}")
    views = [view_ratio(args.device, 20_000) for _ in range(args.rounds)]
    pooled = statistics.median(v[0] for v in views)
    plain = statistics.median(v[1] for v in views)
    print(f"alloc+view+free {pooled / 1e3:.2f} us vs torch.empty+del {plain / 1e3:.2f} us: "
          f"ratio {pooled / plain:.2f} (target <= 2.0) -> {'OK' if pooled / plain <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
