"""Serving simulator throughput and paged vs contiguous decode latency. A script, not a test.

    python benchmarks/bench_workload.py [--trace data/azure_llm_2023_conv.csv] [--requests 3000] [--rounds 7]

compute="none": simulated tokens (prefill + decode) per wall second on one CPU core, both KV layouts
(target >= 50k/s). compute="model": TPOT (one decode step of the default TinyGLM, one token per
sequence) with the KV cache in the pool, paged vs contiguous, at 1k and 4k context, batch 1 and 8:
each round times ``--steps`` decode steps of each layout back to back (order alternating), the ratio
is paged / contiguous of the round's medians, and the figure is the median ratio over the rounds
(target <= 1.1 at every point: paged attention reads its blocks in place, see `workload._kv`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import autoglm_lab as al
from autoglm_lab.workload import ModelConfig, Request, ServingConfig, ServingSim, TinyGLM, load_trace
from autoglm_lab.workload._kv import KVHandle, make_layout

ROOT = Path(__file__).resolve().parents[1]


def throughput(layout: str, requests: list[Request], device: str) -> tuple[float, dict]:
    pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size="64MiB", max_size="64MiB", compaction="lazy",
                                      device=device))
    sim = ServingSim(pool, ServingConfig(kv_layout=layout, compute="none"), requests=requests)
    t0 = time.perf_counter()
    summary = sim.run(progress=False)
    wall = time.perf_counter() - t0
    return summary["tokens"] / wall, summary


class Decoder:
    """``batch`` sequences with ``context`` tokens of KV in a pool of ``layout``, ready to decode."""

    def __init__(self, model: TinyGLM, layout: str, batch: int, context: int, steps: int, device: str) -> None:
        self.model, self.context = model, context
        need = batch * (context + steps + 64) * model.config.kv_bytes_per_token
        size = f"{-(-need // (1 << 20)) + 8}MiB"
        self.pool = al.PagedPool(al.PoolConfig(memory_pool_initial_size=size, compaction="off", device=device))
        self.layout = make_layout(layout, self.pool, model.config, None, "kv")
        self.seqs = []
        for i in range(batch):
            seq = self.layout.new(owner=i)
            self.layout.reserve(seq, context + steps, 0)  # room for every decoded token: no growth timed
            for blk in seq.blocks:
                blk.tensor.normal_()
            self.seqs.append(seq)
        self.tokens = [torch.tensor([1], device=model.device) for _ in range(batch)]

    def tpot(self, steps: int) -> float:
        """Median seconds of one decode step (one token per sequence), positions context .. context + steps."""
        times = []
        for k in range(steps):
            t0 = time.perf_counter()
            self.model.step(self.tokens, [self.context + k] * len(self.seqs), [KVHandle(s) for s in self.seqs])
            if self.pool.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)


def paged_vs_contiguous(model: TinyGLM, batch: int, context: int, rounds: int, steps: int,
                        device: str) -> tuple[float, float, float, list[float]]:
    """Median paged / contiguous TPOT ratio over interleaved rounds; also the medians (s) of each."""
    dec = {name: Decoder(model, name, batch, context, steps, device) for name in ("contiguous", "paged")}
    for d in dec.values():
        d.tpot(2)  # warm up
    ratios, times = [], {"contiguous": [], "paged": []}
    for r in range(rounds):
        for name in (("contiguous", "paged") if r % 2 == 0 else ("paged", "contiguous")):
            times[name].append(dec[name].tpot(steps))
        ratios.append(times["paged"][-1] / times["contiguous"][-1])
    return (statistics.median(ratios), statistics.median(times["contiguous"]), statistics.median(times["paged"]),
            ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=str(ROOT / "data" / "azure_llm_2023_conv.csv"))
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--time-scale", type=float, default=4.0)
    ap.add_argument("--token-scale", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=48, help="decode steps per layout per round")
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
    model = TinyGLM(ModelConfig(), device=args.device)
    print(f"compute=model TPOT, paged / contiguous (median of {args.rounds} interleaved rounds of {args.steps} "
          f"decode steps each; target <= 1.10):")
    worst = 0.0
    for ctx in (1024, 4096):
        for batch in (1, 8):
            ratio, cont, paged, ratios = paged_vs_contiguous(model, batch, ctx, args.rounds, args.steps, args.device)
            worst = max(worst, ratio)
            print(f"  context={ctx:5d} batch={batch}: contiguous {cont * 1e3:6.2f} ms, paged {paged * 1e3:6.2f} ms "
                  f"per step; ratio {ratio:.2f} ({'ok' if ratio <= 1.1 else 'MISSED'}; rounds "
                  f"{' '.join(f'{x:.2f}' for x in ratios)})")
    print(f"worst paged / contiguous TPOT ratio: {worst:.2f}")


if __name__ == "__main__":
    main()
