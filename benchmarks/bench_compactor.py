"""Compactor benchmarks (issue 3 §5), printed as figures and ratios measured in one run.

1. Data path: bytes/s of the copies of a full compaction of a fragmented pool against one ``copy_``
   of the same number of bytes on the same device (target >= 0.8x), for two_finger and sliding;
   also with the pool's bookkeeping of the moves, and end to end.
2. Incremental compaction of a fragmented 1 GiB pool with the default step budget: p50/p99 pause
   per step (target p99 <= 1 ms on CPU).
3. Planning time for 1M pages (pure planner, no device).

Usage: python benchmarks/bench_compactor.py [--device cpu|cuda] [--pool-mib 1024] [--executor auto|triton|torch]
(--executor: who copies, see autoglm_lab/compactor/_triton.py; each data-path line names the one used.
benchmarks/gpu_check.sh runs the GPU path's checks in one go.)
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np
import torch
from _common import fragmented, machine, percentile, sync

from autoglm_lab.compactor import (
    DEFAULT_STEP_BUDGET_BYTES,
    Layout,
    _triton,
    plan_sliding,
    plan_targeted,
    plan_two_finger,
)


def copy_time(device: str, nbytes: int, repeats: int = 5) -> float:
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).random_(0, 255)
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        best = min(best, _timed_copy(device, src, dst))
    return best


_SCRATCH: list[np.ndarray] = []


def flush_caches() -> None:
    """Write 64 MiB (twice the last-level cache) so that neither side starts with its bytes cached."""
    if not _SCRATCH:
        _SCRATCH.append(np.zeros(64 << 17, dtype=np.int64))
    _SCRATCH[0] += 1


def _timed_copy(device: str, src: torch.Tensor, dst: torch.Tensor) -> float:
    flush_caches()
    sync(device)
    t0 = time.perf_counter()
    dst.copy_(src)
    sync(device)
    return time.perf_counter() - t0


def data_path(device: str, pool_bytes: int, rounds: int = 7) -> None:
    """Copies: the execution of the moves (``report.copy_s``) against one copy_ of the same number of
    bytes, in the same run, interleaved: each round is one compaction of the same seeded pool
    (rebuilt) and then one copy_ of the same buffers (their pages faulted in before any timing), the
    caches flushed before each side (on a CPU a 63 MiB copy_ of the same buffers again ran at up to
    34 GB/s from the 32 MiB cache). Ratio checked against the target: the median of the rounds' own
    ratios (each round's two sides ran back to back, so a busy or a quiet moment of the shared
    machine hits both); beside it best against best of ``rounds``, which swings with the one round
    in which torch's two-thread copy_ found the second vCPU free (18 -> 27-30 GB/s here, while both
    sides run at ~18 GB/s side by side). Also: pause minus planning (copies plus the pool's
    bookkeeping of the moved blocks) and end to end (planning included), each against the best copy_."""
    for strategy, max_pages in (("two_finger", 16), ("two_finger", 1), ("sliding", 16)):
        copies: list[float] = []
        refs: list[float] = []
        best_exec = best_pause = float("inf")
        src = dst = None
        for _ in range(rounds):
            pool = fragmented(device, pool_bytes, "64KiB", max_pages, 0)
            flush_caches()
            rep = pool.compact(strategy)
            copies.append(rep.copy_s)
            best_exec = min(best_exec, rep.pause_s - rep.plan_s)
            best_pause = min(best_pause, rep.pause_s)
            del pool
            if src is None:
                src = torch.empty(rep.bytes_moved, dtype=torch.uint8, device=device).random_(0, 255)
                dst = torch.empty_like(src)
                dst.copy_(src)  # fault the destination in before any timing
            refs.append(_timed_copy(device, src, dst))
        del src, dst
        best_copy, best_ref = min(copies), min(refs)
        ratio = best_ref / best_copy
        paired = statistics.median(r / c for r, c in zip(refs, copies, strict=True))
        gbs = rep.bytes_moved / 1e9
        print(f"data path {strategy:10s} blocks of 1..{max_pages:2d} pages [{rep.executor}]: "
              f"{rep.bytes_moved / 2**20:6.1f} MiB in "
              f"{len(rep.moves)} moves: copies {best_copy * 1e3:6.2f} ms = {gbs / best_copy:5.2f} GB/s; "
              f"one copy_ {gbs / best_ref:5.2f} GB/s; ratio, median of the paired rounds {paired:.2f}x (target >= 0.8) "
              f"-> {'OK' if paired >= 0.8 else 'MISSED'}; best against best {ratio:.2f}x; with the pool's bookkeeping "
              f"(pause - planning) {best_ref / best_exec:.2f}x; end to end with planning {best_ref / best_pause:.2f}x; "
              f"pages moved {rep.pages_moved} vs lower bound {rep.lower_bound_pages}")


def incremental(device: str, pool_bytes: int, rounds: int = 3) -> None:
    """Step a fragmented pool to done with the default budget, ``rounds`` times on fresh pools.

    Each step's pause is wall time (what a serving loop waits); beside it the calling thread's CPU
    time for the same step, which a burst of other processes on these shared cores cannot inflate.
    Every step counts in the percentiles, the first of each pool too (it plans the whole pool, so it
    is the slowest; its own median is printed beside them).
    """
    pauses, cpu, first = [], [], []
    runs = ""
    for r in range(rounds):
        pool = fragmented(device, pool_bytes, "64KiB", 8, 7 + r)
        before = pool.stats()
        step = 0
        while True:
            c0 = time.thread_time()
            rep = pool.compact(budget_bytes=DEFAULT_STEP_BUDGET_BYTES)
            c1 = time.thread_time()
            pauses.append(rep.pause_s)
            cpu.append(c1 - c0)
            if step == 0:
                first.append(rep.pause_s)
            step += 1
            if rep.done:
                break
        runs = f"free runs {before.free_runs} -> {pool.stats().free_runs}"
    p50, p99 = statistics.median(pauses), percentile(pauses, 99)
    print(f"incremental {pool_bytes >> 20} MiB pool, budget {DEFAULT_STEP_BUDGET_BYTES >> 20} MiB/step, "
          f"{rounds} pools, {len(pauses)} steps (the first of each pool included): pause p50 {p50 * 1e3:.3f} ms, "
          f"p99 {p99 * 1e3:.3f} ms, "
          f"max {max(pauses) * 1e3:.3f} ms (target p99 <= 1 ms) -> {'OK' if p99 <= 1e-3 else 'MISSED'}; "
          f"on-CPU p50 {statistics.median(cpu) * 1e3:.3f} ms, p99 {percentile(cpu, 99) * 1e3:.3f} ms; "
          f"first step (plans the whole pool) {statistics.median(first) * 1e3:.1f} ms; {runs}")


def interleaved(device: str, pool_bytes: int, rounds: int = 3) -> None:
    """One compaction cycle as the eager policy runs it under serving: budgeted steps with a free and an
    allocation between them, until the cycle's plan has run (``report.plan_done``). Each step goes on
    with the plan, its moves checked against the pool as it is (unsafe ones skipped); the pool is
    planned again only when no move of a step is safe. ``rounds`` fresh pools."""
    pauses, plans, firsts = [], [], []
    frag = []
    for r in range(rounds):
        pool = fragmented(device, pool_bytes, "64KiB", 8, 7 + r)
        rng = random.Random(r)
        before = pool.stats()
        step = 0
        while True:
            rep = pool.compact(budget_bytes=DEFAULT_STEP_BUDGET_BYTES)
            pauses.append(rep.pause_s)
            plans.append(rep.plan_s)
            if step == 0:
                firsts.append(rep.pause_s)
            step += 1
            if rep.plan_done:
                break
            blocks = pool.blocks()
            pool.free(blocks[rng.randrange(len(blocks))])
            pool.alloc_bytes(pool.page_size)
        after = pool.stats()
        frag.append(f"{before.external_fragmentation:.2f} -> {after.external_fragmentation:.3f}")
    replans = sum(p > 1e-3 for p in plans) - rounds
    print(f"interleaved {pool_bytes >> 20} MiB pool, one free + one allocation between budgeted steps, one cycle "
          f"(until its plan has run) on {rounds} pools, {len(pauses)} steps, the first of each included: pause p50 "
          f"{statistics.median(pauses) * 1e3:.3f} ms, p99 {percentile(pauses, 99) * 1e3:.3f} ms, max "
          f"{max(pauses) * 1e3:.2f} ms; first steps {statistics.median(firsts) * 1e3:.1f} ms; {replans} later steps "
          f"planned again; external fragmentation {', '.join(frag)}")


def planning(pages: int = 1 << 20) -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 9, size=pages // 4)
    gaps = rng.integers(0, 9, size=sizes.size) * (rng.random(sizes.size) < 0.3)
    starts = np.cumsum(np.concatenate(([0], (sizes + gaps)[:-1])))
    keep = starts + sizes <= pages
    ids = np.arange(keep.sum())
    blocks = np.stack([ids, starts[keep], sizes[keep], np.zeros_like(ids)], axis=1)
    lay = Layout.from_arrays(256, [(0, pages)], blocks[:, 0], blocks[:, 1], blocks[:, 2], blocks[:, 3] > 0)
    for name, fn in (("two_finger", plan_two_finger), ("sliding", plan_sliding),
                     ("targeted(64)", lambda lay: plan_targeted(lay, 64))):
        t0 = time.perf_counter()
        p = fn(lay)
        dt = time.perf_counter() - t0
        print(f"planning {name:12s} at {pages} pages, {len(ids)} blocks: {dt * 1e3:8.1f} ms, "
              f"{len(p.moves)} moves, {p.pages_moved} pages (bound {p.lower_bound_pages})"
              + (f"; unreachable: {p.unreachable}" if p.unreachable else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--pool-mib", type=int, default=1024)
    ap.add_argument("--executor", choices=_triton.EXECUTORS, default=None)
    args = ap.parse_args()
    _triton.EXECUTOR = args.executor
    print(f"machine: {machine()}; device {args.device}")
    data_path(args.device, 256 << 20)
    incremental(args.device, args.pool_mib << 20)
    interleaved(args.device, args.pool_mib << 20)
    planning()


if __name__ == "__main__":
    main()
