"""PyTorch memory snapshots at scale (issue 16 §6): load + replay of about a million trace entries.

A seeded synthetic snapshot (``synthetic_snapshot``, ~1M entries, pickled as ``_dump_snapshot``
would) is written to a temporary file; a fresh child process (so its peak RSS is its own) then:

- loads it (`load_torch_snapshot`: the streaming data-only reader, validation, numpy columns as the
  entries stream in);
- analyses it (`analyze`: timeline and stats, the caching-allocator model replay, and two paged-pool
  replays on the meta device: without compaction, and with compaction on every failure).

Printed: seconds per phase and in total [target: <= 20 s on one core], entries per second, the peak
RSS above the interpreter's baseline per entry, and the columns kept per entry. For comparison a
third child loads the same file whole (the C unpickler builds every entry's dict before conversion,
as ``pickle.load`` would): its time and peak per entry.

Then the page map of an 80 GB device (``--device-gib``): a serving-like allocation program (weights,
then KV blocks of 2-64 MiB coming and going until the device is full) run on the allocator model;
printed: its segments, the time to build the segment map at 2 MiB, `replay_frames` (300 frames,
both sides), the `SnapshotPlayer` built on them, and the time one slider move takes to draw both
page maps, heatmaps and traces (median over 60 moves, no browser) [interactive: well under 100 ms].

Usage: python benchmarks/bench_torchsnap.py [--entries N] [--seed S] [--keep PATH] [--device-gib G]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def measure(path: str, whole: bool = False) -> dict[str, float]:
    """Run in the child: load, then analyse; times and memory. whole: only load, without streaming."""
    import torch

    torch.set_num_threads(1)
    from autoglm_lab.torchsnap import _load, analyze, load_torch_snapshot

    _load.STREAMING = not whole
    base = _status("VmRSS")
    t0 = time.perf_counter()
    snap = load_torch_snapshot(path, max_bytes=None)
    t1 = time.perf_counter()
    peak_load = _status("VmHWM")
    if whole:
        return {"load_s": t1 - t0, "peak_rss_per_entry": (peak_load - base) / snap.num_entries}
    res = analyze(snap)
    t2 = time.perf_counter()
    n = snap.num_entries
    return {"entries": n, "load_s": t1 - t0, "analyze_s": t2 - t1, "total_s": t2 - t0,
            "timeline_stats_s": res.seconds - res.torch.seconds - sum(p.seconds for p in res.pools),
            "model_s": res.torch.seconds, "pools_s": [p.seconds for p in res.pools],
            "peak_rss_per_entry": (peak_load - base) / n, "after_rss_per_entry": (_status("VmRSS") - base) / n,
            "peak_total_per_entry": (_status("VmHWM") - base) / n,
            "columns_per_entry": sum(t.nbytes for t in snap.traces) / n, "file_bytes": os.path.getsize(path),
            "ooms": len(res.ooms), "same_address": res.torch.same_address_ratio,
            "served": [sum(o.served for _, o in v.paged) for v in res.ooms].count(len(res.pools))}


def big_device(gib: int, seed: int) -> None:
    """The page map of a ``gib`` GiB device, for the slider."""
    import random
    import statistics

    from autoglm_lab.torchsnap import load_torch_snapshot, replay_frames, run_program, segment_map_cells
    from autoglm_lab.widget import SnapshotPlayer

    rng = random.Random(seed)
    cap = gib << 30
    ops: list[tuple] = [("alloc", f"w{k}", 1 << 30) for k in range(gib // 8)]   # weights: an eighth
    live: list[tuple[str, int]] = []
    used = (gib // 8) << 30
    for k in range(30000):
        if used < 0.98 * cap and (not live or rng.random() < 0.6):
            size = rng.choice([2, 4, 8, 16, 32, 64]) << 20
            ops.append(("alloc", f"kv{k}", size))
            live.append((f"kv{k}", size))
            used += size
        else:
            name, size = live.pop(rng.randrange(len(live)))
            ops.append(("free", name))
            used -= size
    snap = load_torch_snapshot(run_program(ops, capacity=cap))
    t0 = time.perf_counter()
    cells = segment_map_cells(snap, 0, "2MiB")
    t1 = time.perf_counter()
    frames = replay_frames(snap, 0, frames=300)
    t2 = time.perf_counter()
    player = SnapshotPlayer(frames)
    t3 = time.perf_counter()
    n = len(frames.entry_index)
    moves = []
    for _ in range(60):
        i = rng.randrange(n)
        t = time.perf_counter()
        player.show(i)
        moves.append(time.perf_counter() - t)
    reserved = sum(s.total_size for s in snap.segments_of(0))
    print(f"{gib} GiB device: {len(snap.segments_of(0)):,} segments, {reserved / 2**30:.1f} GiB reserved, "
          f"{sum(len(c) for c in cells):,} cells of 2 MiB in the segment map ({(t1 - t0) * 1e3:.0f} ms); "
          f"{snap.num_entries:,} trace entries, {snap.traces[0].count('oom')} OOM(s)")
    print(f"replay_frames: {n} frames in {t2 - t1:.2f} s; SnapshotPlayer built in {t3 - t2:.2f} s; one slider "
          f"move (both sides: page map, heatmap, trace) median {statistics.median(moves) * 1e3:.1f} ms, max "
          f"{max(moves) * 1e3:.1f} ms over 60 moves [interactive: well under 100 ms]")
    player.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stack-depth", type=int, default=24,
                    help="frames per captured stack (each allocation its own list, as torch records them)")
    ap.add_argument("--keep", type=Path, default=None, help="write the snapshot here and keep it")
    ap.add_argument("--device-gib", type=int, default=80, help="the big device's size for the page-map part")
    ap.add_argument("--only", choices=("load", "device"), default=None, help="run one part")
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        sys.stdout.write(json.dumps(measure(args.measure, args.whole)) + "\n")
        return
    from autoglm_lab.torchsnap import write_synthetic_snapshot

    print(f"machine: {machine()}")
    if args.only != "load":
        big_device(args.device_gib, args.seed)
    if args.only == "device":
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.pickle"
        t0 = time.perf_counter()
        write_synthetic_snapshot(path, args.seed, steps=10**9, max_entries=args.entries, stack_depth=args.stack_depth)
        print(f"generated {path.stat().st_size / 2**20:.1f} MiB of pickle in {time.perf_counter() - t0:.1f} s, "
              f"{args.stack_depth} frames a stack (not part of the figures below)")
        r, w = (json.loads(subprocess.run([sys.executable, __file__, "--measure", str(path), *extra], check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1])
                for extra in ([], ["--whole"]))
    n = r["entries"]
    print(f"{n:,} trace entries, {r['ooms']} OOM(s); allocator model at torch's address for "
          f"{r['same_address']:.1%} of allocations; {r['served']} OOM(s) served by both paged pools")
    print(f"load {r['load_s']:.2f} s + analyse {r['analyze_s']:.2f} s (timeline and stats "
          f"{r['timeline_stats_s']:.2f} s, allocator model {r['model_s']:.2f} s, paged pools "
          f"{' + '.join(f'{s:.2f}' for s in r['pools_s'])} s) = {r['total_s']:.2f} s "
          f"[target <= 20 s]: {n / r['total_s'] / 1e3:.0f}k entries/s")
    print(f"memory per entry: peak while loading {r['peak_rss_per_entry']:.0f} B, "
          f"peak overall {r['peak_total_per_entry']:.0f} B, kept after analysis {r['after_rss_per_entry']:.0f} B "
          f"(of which trace columns {r['columns_per_entry']:.0f} B); file {r['file_bytes'] / n:.0f} B per entry")
    print(f"read whole instead (pickle.load's way, every entry a dict until converted): load {w['load_s']:.2f} s, "
          f"peak {w['peak_rss_per_entry']:.0f} B per entry: streaming peaks at "
          f"{r['peak_rss_per_entry'] / w['peak_rss_per_entry']:.2f}x the memory in {r['load_s'] / w['load_s']:.1f}x "
          f"the time")


if __name__ == "__main__":
    main()
