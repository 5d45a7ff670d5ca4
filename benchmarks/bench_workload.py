"""Serving simulator throughput and decode latency (issue 4 §5). A script, not a test.

    python benchmarks/bench_workload.py [--trace data/azure_llm_2023_conv.csv] [--requests 3000]

compute="none": simulated tokens (prefill + decode) per wall second on one CPU core, both KV layouts
(target >= 50k/s). compute="model": decode step latency of the default TinyGLM, batch 1 and 8.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import autoglm_lab as al
from autoglm_lab.workload import Request, ServingConfig, ServingSim, load_trace

ROOT = Path(__file__).resolve().parents[1]


def throughput(layout: str, requests: list[Request], device: str) -> tuple[float, dict]:
    pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="64MiB", max_size="64MiB", compaction="lazy",
                                      device=device))
    sim = ServingSim(pool, ServingConfig(kv_layout=layout, compute="none"), requests=requests)
    t0 = time.perf_counter()
    summary = sim.run(progress=False)
    wall = time.perf_counter() - t0
    return summary["tokens"] / wall, summary


def decode_latency(batch: int, context: int, layout: str, device: str) -> float:
    pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="64MiB", compaction="off", device=device))
    reqs = [Request(id=i, arrival_s=0.0, prompt_tokens=context, output_tokens=64, session_id=i) for i in range(batch)]
    sim = ServingSim(pool, ServingConfig(kv_layout=layout, compute="model", max_batched_tokens=65536), requests=reqs)
    sim.run(progress=False)
    df = sim.results()
    return float(statistics.median(df.step_latency_s[df.decode_tokens == batch]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(ROOT / "data" / "azure_llm_2023_conv.csv"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--time-scale", type=float, default=4.0)
    ap.add_argument("--token-scale", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    reqs = load_trace(args.trace, limit=args.requests, time_scale=args.time_scale, token_scale=args.token_scale)
    print(f"torch {torch.__version__}, device {args.device}, 1 thread; {len(reqs)} trace requests "
          f"(time x{args.time_scale}, tokens x{args.token_scale}), 64 MiB pool, compaction=lazy")
    rates = {}
    for layout in ("contiguous", "paged"):
        rate, s = throughput(layout, reqs, args.device)
        rates[layout] = rate
        print(f"compute=none  {layout:10s} {rate:10,.0f} simulated tokens/s  (target >= 50,000: "
              f"{'ok' if rate >= 50_000 else 'MISSED'})  steps={s['steps']} tokens={s['tokens']} "
              f"wall={s['wall_s']:.2f}s failures={s['failures']} preemptions={s['preemptions']} "
              f"compactions={s['compactions']} peak_util={s['peak_utilisation']:.2f}")
    print(f"paged / contiguous throughput ratio: {rates['paged'] / rates['contiguous']:.2f}")
    decode_latency(1, 16, "paged", args.device)  # warm up
    for layout in ("contiguous", "paged"):
        for batch, ctx in ((1, 128), (8, 128), (8, 2048)):
            lat = decode_latency(batch, ctx, layout, args.device)
            print(f"compute=model {layout:10s} batch={batch} context={ctx:5d}: decode step {lat * 1e3:7.2f} ms "
                  f"({lat / batch * 1e6:8.1f} us/token)")


if __name__ == "__main__":
    main()
