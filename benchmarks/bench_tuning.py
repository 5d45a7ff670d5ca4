"""Tuning throughput: trials per second of one sweep, serial vs processes vs a Dask LocalCluster.

Every executor must give the same table (wall-time columns aside); the script checks it.
"""

from __future__ import annotations

import argparse
import time

from _common import machine

from autoglm_lab.tuning import Workload, tune

SPACE = {"memory_pool_initial_size": ["2MiB", "4MiB"], "page_size": ["16KiB", "64KiB"],
         "compaction": ["off", "eager"], "cache_reuse_strategy": ["none", "lru"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    wl = Workload(num_sessions=args.sessions, seed=1)
    print(f"machine: {machine()}; {len(SPACE)} parameters, 16 trials, {args.sessions} sessions per trial")
    runs = {}

    def timed(name: str, **kw: object) -> None:
        t0 = time.perf_counter()
        res = tune(SPACE, wl, progress=False, **kw)
        wall = time.perf_counter() - t0
        runs[name] = res
        print(f"{name:28s} {wall:6.2f} s  {len(res.results) / wall:6.2f} trials/s  "
              f"(mean trial {res.results['trial_wall_s'].mean() * 1e3:.0f} ms)")

    timed("serial", executor="serial")
    timed("processes (cold forkserver)", max_workers=args.workers)
    timed("processes (warm forkserver)", max_workers=args.workers)
    import dask
    from distributed import Client, LocalCluster

    for processes in (False, True):
        with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), \
                LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=processes,
                             dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
            timed(f"dask LocalCluster processes={processes}", executor=client.get_executor())
    ref = runs["serial"].comparable()
    same = all(r.comparable().equals(ref) for r in runs.values())
    print(f"identical results across executors: {same}")


if __name__ == "__main__":
    main()
