"""The GPU path's figures (issue 17 §3): one table of ratios, every one measured in this run.

  data path    compaction copies (report.copy_s) against one copy_ of the same bytes, >= 1 GiB moved,
               64 KiB and 2 MiB pages, two_finger and sliding; target >= 0.9x (the Triton executor);
               the torch executor beside it for context
  incremental  an 8 GiB pool compacted in 64 MiB steps: p99 pause; target <= 1 ms
  alloc+view   pool.alloc + block.tensor + pool.free against torch.empty + del; target <= 1.5x
  serving      compute="model" tokens/s, paged KV against contiguous (no target: reported)

Usage: python benchmarks/gpu_check.py [--device cuda] [--small]
  --device cpu --small  the same code on small sizes on a CPU (the kernel interpreted when Triton
                        is installed): checks this script, its figures mean nothing
Exit status: 0 when every targeted row is OK, 1 when one missed, 2 without the device asked for.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's package, installed or not
from _common import fragmented, machine, percentile, sync

import autoglm_lab as al

GiB = 1 << 30
MiB = 1 << 20


@dataclass
class Row:
    name: str
    value: float
    unit: str
    target: str = "-"
    ok: bool | None = None  # None: no target
    note: str = ""


def timed_copy(device: str, src: torch.Tensor, dst: torch.Tensor) -> float:
    """Seconds of one copy_, by CUDA events on a GPU (the same clock as report.copy_s)."""
    sync(device)
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = time.perf_counter()
    dst.copy_(src)
    return time.perf_counter() - t0


def data_path(device: str, page: str, strategy: str, pool_bytes: int, rounds: int, executor: str,
              min_moved: int) -> Row:
    """Median over rounds of (one copy_ of the bytes moved) / (the compaction's copies), each round a
    fresh pool of the same seed, its copy_ right after it."""
    from autoglm_lab.compactor import _triton

    _triton.EXECUTOR = executor
    ratios, pause_ratios, rates = [], [], []
    src = dst = None
    used: set[str] = set()
    moved = 0
    for _ in range(rounds):
        pool = fragmented(device, pool_bytes, page, 16, 0)
        sync(device)
        rep = pool.compact(strategy)
        used.add(rep.executor)
        moved = rep.bytes_moved
        del pool
        if not moved:
            raise RuntimeError(f"{strategy} on a {page} pool moved nothing: no ratio to measure")
        if src is None:
            src = torch.empty(moved, dtype=torch.uint8, device=device).random_(0, 255)
            dst = torch.empty_like(src)
            dst.copy_(src)
        assert src is not None and dst is not None
        ref = timed_copy(device, src, dst)
        ratios.append(ref / rep.copy_s)
        pause_ratios.append(ref / (rep.pause_s - rep.plan_s))
        rates.append(moved / rep.copy_s / 1e9)
    del src, dst
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    _triton.EXECUTOR = None
    ratio = statistics.median(ratios)
    big = moved >= min_moved
    targeted = executor != "torch"
    return Row(f"data path {page:>5s} {strategy:10s} [{'/'.join(sorted(used))}]", ratio, "x copy_",
               ">= 0.9" if targeted else "-", (ratio >= 0.9 and big) if targeted else None,
               f"{moved / GiB:.2f} GiB moved{'' if big else ' (< 1 GiB: too little)'}, {statistics.median(rates):.0f} "
               f"GB/s; with planning and bookkeeping {statistics.median(pause_ratios):.2f}x")


def incremental(device: str, pool_bytes: int, budget: int, pools: int) -> list[Row]:
    pauses: list[float] = []
    later: list[float] = []
    copies: list[float] = []
    firsts: list[float] = []
    used: set[str] = set()
    for seed in range(pools):
        pool = fragmented(device, pool_bytes, "64KiB", 8, 7 + seed)
        step = 0
        while True:
            rep = pool.compact(budget_bytes=budget)
            used.add(rep.executor)
            pauses.append(rep.pause_s)
            copies.append(rep.copy_s)
            (firsts if step == 0 else later).append(rep.pause_s)
            step += 1
            if rep.done or step > 100_000:
                break
        del pool
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    p99, p99_later = percentile(pauses, 99), percentile(later or [0.0], 99)
    label = (f"incremental {al.format_size(pool_bytes)} pool, {al.format_size(budget)} steps "
             f"[{'/'.join(sorted(used))}]")
    note = (f"{len(pauses)} steps on {pools} pools; p50 {statistics.median(pauses) * 1e3:.3f} ms, max "
            f"{max(pauses) * 1e3:.2f} ms; copies p99 {percentile(copies, 99) * 1e3:.3f} ms; first steps (plan "
            f"the whole pool) median {statistics.median(firsts) * 1e3:.1f} ms")
    return [Row(f"{label}: p99 pause, every step", p99 * 1e3, "ms", "<= 1", p99 <= 1e-3, note),
            Row(f"{label}: p99 pause, first steps left out", p99_later * 1e3, "ms", "<= 1", p99_later <= 1e-3)]


def alloc_view(device: str, n: int, rounds: int) -> Row:
    from bench_pool import view_ratio  # the same measurement as the CPU benchmark

    got = [view_ratio(device, n) for _ in range(rounds)]
    a = statistics.median(g[0] for g in got)
    b = statistics.median(g[1] for g in got)
    return Row("alloc + tensor view + free / torch.empty + del", a / b, "x", "<= 1.5", a / b <= 1.5,
               f"{a / 1e3:.2f} us vs {b / 1e3:.2f} us, 16 KiB fp16")


def serving(device: str, requests: int, steps: int) -> Row:
    from autoglm_lab.workload import Request, ServingConfig, ServingSim

    rng = random.Random(0)
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=rng.randint(32, 512), output_tokens=rng.randint(16, 256),
                    session_id=i) for i in range(requests)]
    rates = {}
    for layout in ("contiguous", "paged"):
        pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="256MiB", max_size="256MiB", compaction="lazy",
                                          device=device))
        sim = ServingSim(pool, ServingConfig(kv_layout=layout, compute="model"), requests=reqs)
        warm = sim.run(steps=max(2, steps // 10), progress=False)["tokens"]  # kernels compiled, caches warm
        sync(device)
        t0 = time.perf_counter()
        done = sim.run(steps=steps, progress=False)["tokens"]
        sync(device)
        rates[layout] = (done - warm) / (time.perf_counter() - t0)
    ratio = rates["paged"] / rates["contiguous"]
    return Row("serving compute=model tokens/s, paged / contiguous", ratio, "x", note=(
        f"{rates['paged']:,.0f} vs {rates['contiguous']:,.0f} tokens/s; {requests} requests at t=0, {steps} steps"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="small sizes: a check of the script, not figures")
    args = ap.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); nothing measured", file=sys.stderr)
        return 2
    if device == "cpu":  # the kernel on CPU tensors: interpreted, and asked for
        os.environ.setdefault("TRITON_INTERPRET", "1")
        os.environ.setdefault("AUTOGLM_LAB_EXECUTOR", "triton")
    from autoglm_lab.compactor import _triton
    from autoglm_lab.pool import _impl

    try:
        import triton
        tri = f"triton {triton.__version__}"
    except ImportError:
        tri = "Triton NOT installed (the compactor falls back to torch)"
    core = _impl.IMPL + (f" ({_impl.REASON})" if _impl.REASON else "")
    print(f"machine: {machine()}; device {device}; pool core: {core}; {tri}")
    small = args.small
    pool_bytes = 8 * MiB if small else 6 * GiB
    triton_exec = "triton" if device == "cpu" else "auto"
    rows: list[Row] = []
    jobs: list[Callable[[], list[Row]]] = []
    min_moved = 0 if small else GiB

    def one(fn: Callable[..., Row], *a: object) -> Callable[[], list[Row]]:
        return lambda: [fn(*a)]

    for page in ("64KiB", "2MiB"):
        for strategy in ("two_finger", "sliding"):
            size = 64 * MiB if small and page == "2MiB" else pool_bytes
            jobs.append(one(data_path, device, page, strategy, size, 1 if small else 3, triton_exec, min_moved))
    for strategy in ("two_finger", "sliding"):  # the torch executor, for context
        jobs.append(one(data_path, device, "64KiB", strategy, pool_bytes, 1, "torch", min_moved))
    jobs.append(partial(incremental, device, 16 * MiB if small else 8 * GiB, 1 * MiB if small else 64 * MiB,
                        1 if small else 2))
    jobs.append(one(alloc_view, device, 500 if small else 20_000, 1 if small else 3))
    jobs.append(one(serving, device, 8 if small else 64, 10 if small else 300))
    _triton.EXECUTOR = None
    failed = False
    for job in jobs:
        t0 = time.perf_counter()
        try:
            got = job()
        except Exception as exc:  # one failed measurement must not hide the others
            failed = True
            print(f"  a measurement failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        for row in got:
            rows.append(row)
            print(f"  measured {row.name}: {row.value:.3f} {row.unit} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print()
    width = max(len(r.name) for r in rows) if rows else 10
    print(f"{'check':{width}s}  {'ratio / figure':>16s}  {'target':>7s}  result  notes")
    for r in rows:
        result = "-" if r.ok is None else ("OK" if r.ok else "MISSED")
        print(f"{r.name:{width}s}  {r.value:11.3f} {r.unit:>4s}  {r.target:>7s}  {result:6s}  {r.note}")
    if small:
        print("(--small: sizes too small for the figures to mean anything)")
    missed = any(r.ok is False for r in rows) and not small
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
