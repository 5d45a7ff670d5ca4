#!/usr/bin/env python3
"""Run a command and report the peak resident memory of its whole process tree (the command, and
every process it starts, such as Jupyter kernels), sampled every 50 ms with psutil.

    scripts/peakmem.py [--limit-mib N] [--record FILE] -- COMMAND ...

Exits with the command's status, or 3 when the command passed but its peak exceeded ``--limit-mib``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-mib", type=float, default=None, help="fail (exit 3) when the peak is above this")
    ap.add_argument("--record", type=Path, default=None, help="also write the result line to this file")
    ap.add_argument("--interval-s", type=float, default=0.05)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given")
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(proc))
        time.sleep(args.interval_s)
    wall_s = time.perf_counter() - t0
    mib = peak / 2**20
    line = (f"peak RSS of the process tree: {mib:.0f} MiB (sampled every {args.interval_s * 1e3:.0f} ms) "
            f"over {wall_s:.0f} s: {' '.join(cmd)}")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if args.record is not None:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(line + "\n")
    if child.returncode:
        return child.returncode
    if args.limit_mib is not None and mib > args.limit_mib:
        sys.stderr.write(f"peak {mib:.0f} MiB is above the limit of {args.limit_mib:.0f} MiB\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
