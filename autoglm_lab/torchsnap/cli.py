"""``autoglm-lab torch-snapshot FILE.pickle``: the verdict per OOM, and an offline HTML report.

Wired into ``autoglm_lab.cli`` by two calls: `add_parser(subparsers)` (sets ``func=run``) and
nothing else: ``main`` dispatches to ``args.func``. Bad input raises ValueError / OSError, which the
main command line turns into one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]

_DESCRIPTION = ("Load a PyTorch memory snapshot (torch.cuda.memory._dump_snapshot) without running code from it, "
                "replay its trace into a model of torch's caching allocator and into paged pools, and say for every "
                "OOM (and the peak) whether paging or compaction would have served it. Writes a standalone HTML "
                "report with --html.")


def _size(text: str) -> int:
    from ..pool import parse_size

    try:
        value = parse_size(text, name="size")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte")
    return value


def _bandwidth(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Add the ``torch-snapshot`` subcommand to ``subparsers`` (its ``func`` is `run`)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "torch-snapshot", help="judge the OOMs of a PyTorch memory snapshot", description=_DESCRIPTION)
    p.add_argument("snapshot", type=Path, metavar="FILE.pickle")
    p.add_argument("--page-size", type=_size, default=2 << 20, help="paged pool page size (default 2MiB)")
    p.add_argument("--capacity", type=_size, default=None,
                   help="device bytes the pools get (default: reserved + free at the OOMs, at least the peak)")
    p.add_argument("--device", type=int, default=None, help="device index (default: the longest trace)")
    p.add_argument("--bandwidth", type=_bandwidth, default=1.0e12,
                   help="copy bytes/s for compaction pause estimates (default 1e12)")
    p.add_argument("--granularity", type=_size, default=2 << 20, help="segment map cell size in the report")
    p.add_argument("--max-bytes", type=_size, default=None,
                   help="refuse a pickle larger than this (default 2GiB)")
    p.add_argument("--html", type=Path, default=None, help="write the standalone HTML report here")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the summary and one verdict per OOM; write the report if ``--html``. Returns 0."""
    from . import DEFAULT_MAX_BYTES, analyze, load_torch_snapshot

    if args.snapshot.is_dir():
        raise ValueError(f"snapshot file {str(args.snapshot)!r} is a folder: give the .pickle that "
                         f"torch.cuda.memory._dump_snapshot wrote")
    if not args.snapshot.is_file():
        raise ValueError(f"snapshot file {str(args.snapshot)!r} does not exist")
    if args.html is not None and args.html.is_dir():
        raise ValueError(f"--html {str(args.html)!r} is a directory: give a file path")
    try:
        snap = load_torch_snapshot(args.snapshot, max_bytes=args.max_bytes or DEFAULT_MAX_BYTES)
    except ValueError as exc:
        name = str(args.snapshot)
        raise ValueError(str(exc) if name in str(exc) else f"{name!r}: {exc}") from None
    res = analyze(snap, args.device, page_size=args.page_size, capacity=args.capacity, bandwidth=args.bandwidth)
    out = sys.stdout
    for line in res.summary_lines():
        out.write(line + "\n")
    if args.html is not None:
        from ._report import write_html_report

        path = write_html_report(res, snap, args.html, granularity=args.granularity)
        out.write(f"report written to {path.resolve()}\n")
    return 0
